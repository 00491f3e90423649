// XEP-0012: Last Activity. Server uptime, and on an account's behalf the time since its last logout.
import { defineFeature } from '@starling/core';
import { NS_LAST, StanzaError, xml } from '@starling/xmpp';
import { mayViewPresence } from './rfc6121-roster/presence-access.ts';

function seconds(sinceMs: number, nowMs: number): string {
  return String(Math.max(0, Math.floor((nowMs - sinceMs) / 1000)));
}

export default defineFeature({
  id: 'xep-0012-last',
  spec: { xep: 12, title: 'Last Activity' },
  roles: ['router'],
  disco: { features: [NS_LAST], accountFeatures: [NS_LAST] },
  setup(ctx) {
    const startedAt = Date.now();
    // §6: to a host, the answer is its uptime.
    ctx.iq.onGet(NS_LAST, 'query', () =>
      xml('query', { xmlns: NS_LAST, seconds: seconds(startedAt, Date.now()) }),
    );
    ctx.iq.onGet(
      NS_LAST,
      'query',
      async ({ from, to }) => {
        // §4: only those allowed to see the user's presence may learn when it was last online.
        if (!(await mayViewPresence(ctx.store, to, from))) throw new StanzaError('forbidden');
        const sessions = await ctx.registry.resources(to.toString());
        if (sessions.some((session) => session.available)) {
          return xml('query', { xmlns: NS_LAST, seconds: '0' });
        }
        const last = await ctx.store.lastActivity.get(to.local);
        if (!last) throw new StanzaError('item-not-found', 'no last activity recorded');
        return xml('query', { xmlns: NS_LAST, seconds: seconds(last.at, Date.now()) }, last.status || null);
      },
      { targets: ['account'] },
    );
  },
});
