// XEP-0313 in the archive role: stores archive writes and answers each user's MAM requests to the session that asked.
import type { ArchiveWriteEnvelope, FeatureContext, MamQueryEnvelope } from '@starling/core';
import type { ArchiveEntry, DeliveryTarget } from '@starling/ports';
import {
  attr,
  errorReply,
  Jid,
  NS_CLIENT,
  NS_DELAY,
  NS_FORWARD,
  NS_MAM,
  parseTrusted,
  StanzaError,
  xml,
  type Element,
} from '@starling/xmpp';
import { rsmSet } from '../xep-0059-rsm.ts';
import { parseMamQuery, queryForm } from './query.ts';

/** The archive role's entry points into the feature, one per kind of envelope on the archive topic. */
export interface ArchiveHandler {
  /** Adds a message to its owner's archive; a write replayed by the bus changes nothing. */
  write(envelope: ArchiveWriteEnvelope): Promise<void>;
  /**
   * Answers a MAM request to the session that sent it: the results in order, then the IQ result; bad
   * requests get their stanza error.
   */
  query(envelope: MamQueryEnvelope): Promise<void>;
}

function stamp(ts: number): string {
  return new Date(ts).toISOString();
}

/** §4.2: one archived message, forwarded (XEP-0297) with the time the server routed it (XEP-0203). */
function resultMessage(
  entry: ArchiveEntry,
  to: string,
  from: string | undefined,
  queryId: string | undefined,
): Element {
  const message = parseTrusted(entry.stanza);
  message.attrs.xmlns = NS_CLIENT;
  return xml(
    'message',
    { to, from },
    xml(
      'result',
      { xmlns: NS_MAM, queryid: queryId, id: entry.id },
      xml(
        'forwarded',
        { xmlns: NS_FORWARD },
        xml('delay', { xmlns: NS_DELAY, stamp: stamp(entry.ts) }),
        message,
      ),
    ),
  );
}

/** The user's archive as one request sees it; `send` reaches the requesting session. */
interface Request {
  readonly username: string;
  readonly iq: Element;
  readonly payload: Element;
  readonly requester: string;
  /** The address the request went to, and so the one answers come from (none when it had no 'to'). */
  readonly archive: string | undefined;
  send(stanza: Element): Promise<boolean>;
}

/** §4: sends the matching messages, then returns the `<fin/>`; undefined if the session went away. */
async function search(ctx: FeatureContext, request: Request): Promise<Element | undefined> {
  const query = parseMamQuery(request.payload);
  const page = await ctx.store.archive.query(request.username, query.archive);
  if (page === undefined) throw new StanzaError('item-not-found', 'no such message in the archive');
  // §4.3.5: flipping changes the order the page is sent in, not which messages it holds.
  const items = query.flip ? [...page.items].reverse() : page.items;
  for (const entry of items) {
    const delivered = await request.send(
      resultMessage(entry, request.requester, request.archive, query.queryId),
    );
    if (!delivered) return undefined;
  }
  return xml('fin', { xmlns: NS_MAM, queryid: query.queryId, complete: String(page.complete) }, rsmSet(page));
}

/** §6: the oldest and the newest message of the archive. */
async function metadata(ctx: FeatureContext, username: string): Promise<Element> {
  const oldest = (await ctx.store.archive.query(username, { max: 1 }))?.items[0];
  const newest = (await ctx.store.archive.query(username, { max: 1, before: '' }))?.items[0];
  const bound = (name: string, entry: ArchiveEntry): Element =>
    xml(name, { id: entry.id, timestamp: stamp(entry.ts) });
  return xml(
    'metadata',
    { xmlns: NS_MAM },
    oldest === undefined ? null : bound('start', oldest),
    newest === undefined ? null : bound('end', newest),
  );
}

/** The answer's payload, or 'gone' when the session went away while the results were sent. */
async function answer(ctx: FeatureContext, request: Request): Promise<Element | undefined | 'gone'> {
  const { payload, iq } = request;
  const type = attr(iq, 'type');
  if (payload.is('query', NS_MAM) && type === 'get') return queryForm();
  if (payload.is('metadata', NS_MAM) && type === 'get') return metadata(ctx, request.username);
  if (payload.is('query', NS_MAM) && type === 'set') return (await search(ctx, request)) ?? 'gone';
  throw new StanzaError('service-unavailable');
}

interface PendingWrite {
  readonly username: string;
  readonly entry: ArchiveEntry;
  readonly done: { resolve: () => void; reject: (err: unknown) => void };
}

/**
 * Gathers the writes that arrive while the store is busy, or within one turn of the event loop, into one
 * `appendMany`: the bus hands over one record per partition at a time, so each commit covers a write of
 * many partitions. Every write still settles only once its entry is stored.
 */
function createWriteBatcher(ctx: FeatureContext): (username: string, entry: ArchiveEntry) => Promise<void> {
  let pending: PendingWrite[] = [];
  let scheduled = false;

  async function flush(): Promise<void> {
    while (pending.length > 0) {
      const batch = pending;
      pending = [];
      try {
        await ctx.store.archive.appendMany(batch);
        for (const write of batch) write.done.resolve();
      } catch (err) {
        for (const write of batch) write.done.reject(err);
      }
    }
    scheduled = false;
  }

  return (username, entry) =>
    new Promise<void>((resolve, reject) => {
      pending.push({ username, entry, done: { resolve, reject } });
      if (scheduled) return;
      scheduled = true;
      setImmediate(() => void flush());
    });
}

/** The handler for one feature context of the archive role. */
export function createArchiveHandler(ctx: FeatureContext): ArchiveHandler {
  const append = createWriteBatcher(ctx);
  return {
    async write(envelope) {
      const owner = Jid.tryParse(envelope.owner);
      if (owner === undefined || owner.local === '' || !ctx.isLocal(owner)) {
        ctx.log.warn({ owner: envelope.owner }, 'archive write for no local account dropped');
        return;
      }
      await append(owner.local, {
        id: envelope.stanzaId,
        with: envelope.with,
        ts: envelope.ts,
        direction: envelope.direction,
        stanza: envelope.xml,
      });
    },

    async query(envelope) {
      const target: DeliveryTarget = {
        edgeId: envelope.edgeId,
        sessionId: envelope.sessionId,
        jid: envelope.from,
      };
      const iq = parseTrusted(envelope.xml);
      iq.attrs.from = envelope.from;
      const archive = attr(iq, 'to');
      const send = (stanza: Element): Promise<boolean> => ctx.routing.deliver(target, stanza);
      let reply: Element;
      try {
        const owner = Jid.tryParse(envelope.owner);
        const payloads = iq.getChildElements();
        const payload = payloads[0];
        if (owner === undefined || owner.local === '' || !ctx.isLocal(owner))
          throw new StanzaError('forbidden');
        if (payloads.length !== 1 || payload === undefined) throw new StanzaError('bad-request');
        const request: Request = {
          username: owner.local,
          iq,
          payload,
          requester: envelope.from,
          archive,
          send,
        };
        const result = await answer(ctx, request);
        if (result === 'gone') return;
        reply = xml('iq', { type: 'result', id: attr(iq, 'id'), to: envelope.from, from: archive }, result);
      } catch (err) {
        // A failure answers this request only; the archive goes on with the next record.
        if (!(err instanceof StanzaError)) ctx.log.error({ err, iq: envelope.xml }, 'MAM request failed');
        reply = errorReply(iq, err instanceof StanzaError ? err : 'internal-server-error', archive);
      }
      await send(reply);
    },
  };
}
