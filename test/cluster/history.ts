// The history check of the fault drills: every stanza a sender saw acknowledged must be found delivered,
// stored offline, archived or answered with an error; duplicates and per-sender order are reported.
import pg from 'pg';
import { parseTrusted } from '@starling/xmpp';

/** What the drill observed after the fault, each list in the order it was seen. */
export interface Observations {
  /** Message ids each recipient (bare JID) received, in arrival order, repeats included. */
  readonly delivered: ReadonlyMap<string, readonly string[]>;
  /** Message ids stored offline for each recipient (bare JID), oldest first. */
  readonly offline: ReadonlyMap<string, readonly string[]>;
  /** Message ids found in any archive. */
  readonly archived: ReadonlySet<string>;
  /** Message ids answered to their sender with an error. */
  readonly errors: ReadonlySet<string>;
}

export interface HistoryReport {
  readonly sent: number;
  readonly acknowledged: number;
  /** Acknowledged and received by the recipient. */
  readonly delivered: number;
  /** Acknowledged, not received, stored offline. */
  readonly offline: number;
  /** Acknowledged, neither received nor stored offline, but archived. */
  readonly archivedOnly: number;
  /** Acknowledged, found nowhere else, answered with an error. */
  readonly errors: number;
  /** Acknowledged and found nowhere. */
  readonly lost: number;
  /** Copies beyond the first, received or stored offline, of any sent message. */
  readonly duplicates: number;
  /** Messages whose first copy reached the recipient after a later message of the same sender's. */
  readonly outOfOrder: number;
  readonly lostIds: readonly string[];
  readonly outOfOrderIds: readonly string[];
}

interface Sent {
  readonly id: string;
  readonly sender: string;
  readonly recipient: string;
  /** Position in the sender's stream, from 0. */
  readonly index: number;
}

/** The sending side of one drill: what each sender sent, in order, and how much of it was acknowledged. */
export class History {
  readonly name: string;
  readonly #byId = new Map<string, Sent>();
  readonly #bySender = new Map<string, Sent[]>();
  readonly #acked = new Map<string, number>();

  constructor(name: string) {
    this.name = name;
  }

  /** Records a message `sender` wrote to its stream, for `recipient` (a bare JID). */
  sent(sender: string, recipient: string, id: string): void {
    if (this.#byId.has(id)) throw new Error(`message id ${id} sent twice`);
    const list = this.#bySender.get(sender) ?? [];
    const entry = { id, sender, recipient, index: list.length };
    list.push(entry);
    this.#bySender.set(sender, list);
    this.#byId.set(id, entry);
  }

  /** The server acknowledged the first `h` messages `sender` sent (XEP-0198 `<a h/>`). */
  acknowledged(sender: string, h: number): void {
    const count = this.#bySender.get(sender)?.length ?? 0;
    if (h > count) throw new Error(`${sender}: h=${h} acknowledges more than the ${count} messages sent`);
    this.#acked.set(sender, Math.max(h, this.#acked.get(sender) ?? 0));
  }

  /** Ids of the messages every sender saw acknowledged. */
  acknowledgedIds(): string[] {
    return [...this.#bySender].flatMap(([sender, list]) =>
      list.slice(0, this.#acked.get(sender) ?? 0).map((s) => s.id),
    );
  }

  sentCount(sender?: string): number {
    if (sender !== undefined) return this.#bySender.get(sender)?.length ?? 0;
    return this.#byId.size;
  }

  /** The recipients (bare JIDs) messages were sent to. */
  recipients(): string[] {
    return [...new Set([...this.#byId.values()].map((s) => s.recipient))];
  }

  /** Whether every acknowledged message is accounted for: the condition to wait for before checking. */
  settled(observed: Observations): boolean {
    return this.check(observed).lost === 0;
  }

  check(observed: Observations): HistoryReport {
    const copies = new Map<string, number>();
    const count = (ids: readonly string[]): void => {
      for (const id of ids) if (this.#byId.has(id)) copies.set(id, (copies.get(id) ?? 0) + 1);
    };
    const deliveredIds = new Set<string>();
    const offlineIds = new Set<string>();
    for (const ids of observed.delivered.values()) {
      count(ids);
      for (const id of ids) deliveredIds.add(id);
    }
    for (const ids of observed.offline.values()) {
      count(ids);
      for (const id of ids) offlineIds.add(id);
    }
    let delivered = 0;
    let offline = 0;
    let archivedOnly = 0;
    let errors = 0;
    const lostIds: string[] = [];
    const acknowledged = this.acknowledgedIds();
    for (const id of acknowledged) {
      if (deliveredIds.has(id)) delivered += 1;
      else if (offlineIds.has(id)) offline += 1;
      else if (observed.archived.has(id)) archivedOnly += 1;
      else if (observed.errors.has(id)) errors += 1;
      else lostIds.push(id);
    }
    let duplicates = 0;
    for (const n of copies.values()) duplicates += Math.max(0, n - 1);
    const outOfOrderIds = [...this.#outOfOrder(observed.delivered), ...this.#outOfOrder(observed.offline)];
    return {
      sent: this.#byId.size,
      acknowledged: acknowledged.length,
      delivered,
      offline,
      archivedOnly,
      errors,
      lost: lostIds.length,
      duplicates,
      outOfOrder: outOfOrderIds.length,
      lostIds,
      outOfOrderIds,
    };
  }

  /**
   * Per sender and recipient, the first copies must come in send order (later copies are replays). A
   * message counts as out of order when one the sender sent after it came first.
   */
  #outOfOrder(sequences: ReadonlyMap<string, readonly string[]>): string[] {
    const late: string[] = [];
    for (const [recipient, ids] of sequences) {
      const seen = new Set<string>();
      const highest = new Map<string, number>();
      for (const id of ids) {
        const entry = this.#byId.get(id);
        if (entry === undefined || entry.recipient !== recipient || seen.has(id)) continue;
        seen.add(id);
        const top = highest.get(entry.sender) ?? -1;
        if (entry.index < top) late.push(id);
        else highest.set(entry.sender, entry.index);
      }
    }
    return late;
  }
}

/** One line for the test output, e.g. "history (router kill): 500 acknowledged, 497 delivered, …". */
export function formatReport(name: string, report: HistoryReport): string {
  const line =
    `history (${name}): ${report.acknowledged} acknowledged of ${report.sent} sent, ` +
    `${report.delivered} delivered, ${report.offline} offline, ${report.archivedOnly} archived-only, ` +
    `${report.errors} errors, ${report.lost} lost, ${report.duplicates} duplicates, ` +
    `${report.outOfOrder} out of order`;
  const lost = report.lostIds.length > 0 ? `\n  lost: ${report.lostIds.slice(0, 50).join(' ')}` : '';
  const late =
    report.outOfOrderIds.length > 0 ? `\n  out of order: ${report.outOfOrderIds.slice(0, 50).join(' ')}` : '';
  return line + lost + late;
}

function messageId(stanza: string): string | undefined {
  try {
    const id: unknown = parseTrusted(stanza).attrs.id;
    return typeof id === 'string' ? id : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Reads, straight from PostgreSQL, the ids of the messages stored offline for each recipient (bare JIDs
 * of the store's domain; oldest first) and of every message in the archives of `owners` (bare JIDs).
 */
export async function storedMessages(
  postgresUrl: string,
  recipients: readonly string[],
  owners: readonly string[],
): Promise<{ offline: Map<string, string[]>; archived: Set<string> }> {
  const local = (bare: string): string => bare.slice(0, bare.indexOf('@'));
  const client = new pg.Client({ connectionString: postgresUrl });
  await client.connect();
  try {
    const offline = new Map<string, string[]>();
    const stored = await client.query<{ username: string; stanza: string }>(
      'SELECT username, stanza FROM offline_messages WHERE username = ANY($1) ORDER BY id',
      [recipients.map(local)],
    );
    for (const recipient of recipients) offline.set(recipient, []);
    const byLocal = new Map(recipients.map((r) => [local(r), r]));
    for (const row of stored.rows) {
      const id = messageId(row.stanza);
      const recipient = byLocal.get(row.username);
      if (id !== undefined && recipient !== undefined) offline.get(recipient)?.push(id);
    }
    const archived = new Set<string>();
    const rows = await client.query<{ stanza: string }>(
      'SELECT stanza FROM archive WHERE username = ANY($1)',
      [owners.map(local)],
    );
    for (const row of rows.rows) {
      const id = messageId(row.stanza);
      if (id !== undefined) archived.add(id);
    }
    return { offline, archived };
  } finally {
    await client.end();
  }
}
