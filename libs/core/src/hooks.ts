// The hook catalogue: every in-process extension point, its payload, and the chain that runs it.
import type { Element, Jid } from '@starling/xmpp';
import type { SessionRecord } from '@starling/ports';

/** The stream a stanza came in on; both empty when the server sent it on a user's behalf. */
export interface StanzaOrigin {
  readonly edgeId: string;
  readonly sessionId: string;
}

/** What a hook handler may answer; `handled` stops the chain. */
export type HookResult = 'handled' | undefined;

/** Every hook and its payload. Handlers run by descending priority. */
export interface HookMap {
  /** Router: a stanza from a local user, before RFC 6121 routing (`to` is never absent here). */
  'stanza-outbound': { stanza: Element; from: Jid; to: Jid };
  /**
   * Router and presence: a stanza about to reach a local user's bare or full JID. `online` is set when
   * the recipient was seen with a session, which proves the account exists without asking the store.
   */
  'stanza-inbound': { stanza: Element; from: Jid; to: Jid; online?: boolean };
  /** Router: a message for a local account with no session to take it (RFC 6121 §8.5.2.2). */
  'message-undeliverable': { stanza: Element; to: Jid };
  /** Presence: a session sent its initial presence and is now an available resource. */
  'initial-presence': { session: SessionRecord; stanza: Element };
  /**
   * Presence: the router stored a message offline for `owner` while it had (or was getting) an available
   * session, which may have missed it (see OfflineStoredEnvelope).
   */
  'offline-stored': { owner: Jid };
  /** Presence: a session ended; contacts were told. */
  'session-ended': { session: SessionRecord };
  /** Router: an account was deleted (XEP-0077 remove or the CLI); drop what belongs to it. */
  'account-removed': { username: string };
  /**
   * Router: a get or set IQ a local session sent to its own account (its bare JID, or no 'to'), before
   * the IQ table answers it. A handler that has another role answer it says `handled`.
   */
  'account-iq': { stanza: Element; from: Jid; origin: StanzaOrigin };
}

export type HookName = keyof HookMap;
/** Anything but `'handled'` (including nothing) lets the chain go on. */
export type HookHandler<K extends HookName> = (payload: HookMap[K]) => unknown;

interface Entry<K extends HookName> {
  readonly handler: HookHandler<K>;
  readonly priority: number;
}

export class Hooks {
  private readonly chains = new Map<HookName, Entry<HookName>[]>();

  on<K extends HookName>(name: K, handler: HookHandler<K>, priority = 0): void {
    const chain = this.chains.get(name) ?? [];
    chain.push({ handler: handler as HookHandler<HookName>, priority });
    chain.sort((a, b) => b.priority - a.priority);
    this.chains.set(name, chain);
  }

  /** Runs the chain; resolves 'handled' if a handler stopped it. */
  async run<K extends HookName>(name: K, payload: HookMap[K]): Promise<HookResult> {
    const chain = this.chains.get(name);
    if (!chain) return undefined;
    for (const { handler } of chain) {
      // A handler that answers at once is not awaited: most stanzas pass every handler that way.
      const answer = handler(payload);
      if ((answer instanceof Promise ? await answer : answer) === 'handled') return 'handled';
    }
    return undefined;
  }

  has(name: HookName): boolean {
    return (this.chains.get(name)?.length ?? 0) > 0;
  }
}
