// XEP-0191: Blocking Command. The blocklist IQs, and the checks every stanza to or from a user passes.
import { randomUUID } from 'node:crypto';
import { defineFeature, type FeatureContext, type HookResult } from '@starling/core';
import type { Store } from '@starling/ports';
import {
  attr,
  BoundedMap,
  errorReply,
  Jid,
  NS_BLOCKING,
  NS_BLOCKING_ERRORS,
  parseTrusted,
  StanzaError,
  xml,
  type Element,
} from '@starling/xmpp';

/**
 * How long a cached blocklist is trusted. Changes made in this process invalidate at once; in a cluster,
 * other processes (which route the contact's stanzas) see a change within this time.
 */
const CACHE_TTL_MS = 30_000;
/** Users whose blocklists are kept in memory. */
const CACHE_USERS = 10_000;

type Blocklist = ReadonlySet<string>;

interface CachedBlocklist {
  readonly list: Promise<Blocklist>;
  readonly at: number;
  /** The list, once loaded. */
  loaded: Blocklist | undefined;
}

// Blocklists by username, loaded once and reused: the checks run on every routed stanza.
function createBlocklistCache(store: Store): {
  get(username: string): Promise<Blocklist>;
  /** The list if it is loaded and fresh, without waiting: the common case, answered synchronously. */
  peek(username: string): Blocklist | undefined;
  invalidate(username: string): void;
} {
  const entries = new BoundedMap<string, CachedBlocklist>(CACHE_USERS);
  const fresh = (username: string): CachedBlocklist | undefined => {
    const hit = entries.get(username);
    return hit && Date.now() - hit.at < CACHE_TTL_MS ? hit : undefined;
  };
  return {
    get(username) {
      const hit = fresh(username);
      if (hit) return hit.list;
      // Replaced in place rather than deleted and added: a refresh then keeps the user's one place in
      // the map's order, where a delete would leave a second one behind that evicts the user early.
      const entry: CachedBlocklist = {
        list: store.blocklists.list(username).then((jids) => (entry.loaded = new Set(jids))),
        at: Date.now(),
        loaded: undefined,
      };
      entries.set(username, entry);
      entry.list.catch(() => {
        if (entries.get(username) === entry) entries.delete(username);
      });
      return entry.list;
    },
    peek: (username) => fresh(username)?.loaded,
    invalidate(username) {
      entries.delete(username);
    },
  };
}

/**
 * XEP-0016 §2.1 matching: an item blocks exactly its full JID (user@domain/resource or domain/resource),
 * its bare JID with every resource, or its domain with everything there.
 */
export function isBlocked(list: Blocklist, jid: Jid): boolean {
  if (list.size === 0) return false;
  return (
    list.has(jid.toString()) ||
    list.has(jid.domain) ||
    (jid.local !== '' && list.has(`${jid.local}@${jid.domain}`))
  );
}

function itemsOf(command: Element): Jid[] {
  const jids: Jid[] = [];
  for (const item of command.getChildren('item')) {
    const value = attr(item, 'jid');
    const jid = value === undefined ? undefined : Jid.tryParse(value);
    if (jid === undefined) throw new StanzaError('jid-malformed', 'every item needs a valid jid');
    if (!jids.some((j) => j.equals(jid))) jids.push(jid);
  }
  return jids;
}

function itemElements(jids: readonly Jid[]): Element[] {
  return jids.map((jid) => xml('item', { jid: jid.toString() }));
}

/** Whether blocking `item` concerns the (bare) roster contact `contact`. */
function concerns(item: Jid, contact: Jid): boolean {
  if (item.resource !== '') return item.bare().equals(contact);
  return item.local === '' ? item.domain === contact.domain : item.equals(contact);
}

export default defineFeature({
  id: 'xep-0191-blocking',
  spec: { xep: 191, title: 'Blocking Command' },
  roles: ['router', 'presence'],
  disco: { features: [NS_BLOCKING] },
  setup(ctx) {
    const cache = createBlocklistCache(ctx.store);

    // §3.4: stanzas from a blocked entity never reach the user; the user appears offline to it.
    async function refuseInbound(stanza: Element): Promise<HookResult> {
      const type = attr(stanza, 'type');
      const answer =
        (stanza.name === 'message' && type !== 'error') ||
        (stanza.name === 'iq' && (type === 'get' || type === 'set'));
      if (answer) await ctx.routing.route(errorReply(stanza, 'service-unavailable'));
      return 'handled';
    }
    // Every routed stanza passes here: a loaded list answers at once, without a promise.
    ctx.hooks.on(
      'stanza-inbound',
      ({ stanza, from, to }) => {
        if (to.local === '') return undefined;
        const loaded = cache.peek(to.local);
        if (loaded !== undefined) return isBlocked(loaded, from) ? refuseInbound(stanza) : undefined;
        return cache
          .get(to.local)
          .then((list) => (isBlocked(list, from) ? refuseInbound(stanza) : undefined));
      },
      100,
    );

    if (ctx.role !== 'router') return;
    setupCommands(ctx, cache);

    async function refuseOutbound(stanza: Element, from: Jid): Promise<HookResult> {
      const type = attr(stanza, 'type');
      if (stanza.name === 'presence' || type === 'error' || type === 'result') return 'handled';
      const error = new StanzaError('not-acceptable', undefined, {
        type: 'cancel',
        extra: xml('blocked', { xmlns: NS_BLOCKING_ERRORS }),
      });
      // Straight to the session: routed, the reply would come "from" the blocked JID and be dropped.
      const session = await ctx.registry.get(from.toString());
      if (session) await ctx.routing.deliver(session, errorReply(stanza, error));
      return 'handled';
    }
    ctx.hooks.on(
      'stanza-outbound',
      ({ stanza, from, to }) => {
        const loaded = cache.peek(from.local);
        if (loaded !== undefined) return isBlocked(loaded, to) ? refuseOutbound(stanza, from) : undefined;
        return cache
          .get(from.local)
          .then((list) => (isBlocked(list, to) ? refuseOutbound(stanza, from) : undefined));
      },
      100,
    );
  },
});

function setupCommands(ctx: FeatureContext, cache: ReturnType<typeof createBlocklistCache>): void {
  const bareOf = (username: string): string => `${username}@${ctx.config.domain}`;

  async function push(username: string, command: Element): Promise<void> {
    const sessions = await ctx.registry.resources(bareOf(username));
    await Promise.all(
      sessions
        .filter((session) => session.blocklistRequested === true)
        .map((session) =>
          ctx.routing.deliver(
            session,
            xml('iq', { type: 'set', id: randomUUID(), to: session.jid }, command),
          ),
        ),
    );
  }

  /**
   * §3.3 and §3.4: blocked contacts that may see the user's presence get unavailable presence; unblocked
   * ones get the current presence of each available resource.
   */
  async function tellContacts(username: string, items: readonly Jid[], blocked: boolean): Promise<void> {
    if (items.length === 0) return;
    const roster = await ctx.store.rosters.get(username);
    const targets = new Set<string>();
    for (const rosterItem of roster.items) {
      if (rosterItem.subscription !== 'from' && rosterItem.subscription !== 'both') continue;
      const contact = Jid.tryParse(rosterItem.jid);
      if (contact === undefined) continue;
      for (const item of items) {
        if (concerns(item, contact)) targets.add(item.resource === '' ? contact.toString() : item.toString());
      }
    }
    if (targets.size === 0) return;
    const sessions = (await ctx.registry.resources(bareOf(username))).filter((s) => s.available);
    for (const to of targets) {
      for (const session of sessions) {
        const presence =
          blocked || session.presence === undefined ? xml('presence') : parseTrusted(session.presence);
        if (blocked) presence.attrs.type = 'unavailable';
        presence.attrs.from = session.jid;
        presence.attrs.to = to;
        await ctx.routing.route(presence);
      }
    }
  }

  ctx.iq.onGet(
    NS_BLOCKING,
    'blocklist',
    async ({ from, to }) => {
      if (!to.equals(from.bare())) throw new StanzaError('forbidden');
      // §3.3: pushes go to the resources that asked for the blocklist.
      const session = await ctx.registry.get(from.toString());
      if (session && session.blocklistRequested !== true) {
        await ctx.registry.update(session.jid, session.sessionId, { blocklistRequested: true });
      }
      const list = await ctx.store.blocklists.list(from.local);
      return xml('blocklist', { xmlns: NS_BLOCKING }, ...list.map((jid) => xml('item', { jid })));
    },
    { targets: ['account'] },
  );

  ctx.iq.onSet(
    NS_BLOCKING,
    'block',
    async ({ from, to, payload }) => {
      if (!to.equals(from.bare())) throw new StanzaError('forbidden');
      const items = itemsOf(payload);
      if (items.length === 0) throw new StanzaError('bad-request', 'block at least one JID');
      const username = from.local;
      await ctx.store.blocklists.add(
        username,
        items.map((jid) => jid.toString()),
      );
      cache.invalidate(username);
      await tellContacts(username, items, true);
      await push(username, xml('block', { xmlns: NS_BLOCKING }, ...itemElements(items)));
      return undefined;
    },
    { targets: ['account'] },
  );

  ctx.iq.onSet(
    NS_BLOCKING,
    'unblock',
    async ({ from, to, payload }) => {
      if (!to.equals(from.bare())) throw new StanzaError('forbidden');
      const username = from.local;
      const items = itemsOf(payload);
      let unblocked = items;
      if (items.length === 0) {
        // §3.5: an empty unblock lifts every block.
        const all = await ctx.store.blocklists.list(username);
        unblocked = all.map((jid) => Jid.tryParse(jid)).filter((jid) => jid !== undefined);
        await ctx.store.blocklists.remove(username);
      } else {
        await ctx.store.blocklists.remove(
          username,
          items.map((jid) => jid.toString()),
        );
      }
      cache.invalidate(username);
      await tellContacts(username, unblocked, false);
      await push(username, xml('unblock', { xmlns: NS_BLOCKING }, ...itemElements(items)));
      return undefined;
    },
    { targets: ['account'] },
  );
}
