// XEP-0030: Service Discovery. disco#info and disco#items of the server and of each account's bare JID.
import { defineFeature, type IqRequest } from '@starling/core';
import { attr, NS_DISCO_INFO, NS_DISCO_ITEMS, StanzaError, xml, type Element } from '@starling/xmpp';
import { mayViewPresence } from './rfc6121-roster/presence-access.ts';
import { CAPS_NODE, serverCaps, serverDiscoInfo } from './xep-0115-caps.ts';

function infoQuery(
  node: string | undefined,
  identities: readonly { category: string; type: string; name?: string }[],
  features: readonly string[],
): Element {
  return xml(
    'query',
    { xmlns: NS_DISCO_INFO, node },
    ...identities.map((identity) => xml('identity', { ...identity })),
    ...features.map((name) => xml('feature', { var: name })),
  );
}

/** The server's disco#info and its XEP-0115 hash are computed from the deployment's enabled features. */
export default defineFeature({
  id: 'xep-0030-disco',
  spec: { xep: 30, title: 'Service Discovery' },
  roles: ['router'],
  disco: { features: [NS_DISCO_INFO, NS_DISCO_ITEMS], accountFeatures: [NS_DISCO_INFO, NS_DISCO_ITEMS] },
  setup(ctx) {
    const all = ctx.features;
    const server = serverDiscoInfo(ctx.config, all);
    const caps = serverCaps(ctx.config, all);
    const capsNode = `${CAPS_NODE}#${caps.ver}`;
    const accountFeatures = new Set<string>();
    for (const feature of all) {
      if (!(feature.enabled?.(ctx.config) ?? true)) continue;
      for (const name of feature.disco?.accountFeatures ?? []) accountFeatures.add(name);
    }
    const accountInfo = [...accountFeatures].sort();

    /** §3.1 and RFC 6121 §8.5.1: an account's disco is for itself and its presence subscribers only. */
    async function checkAccount({ from, to, payload }: IqRequest): Promise<void> {
      if (!(await mayViewPresence(ctx.store, to, from))) throw new StanzaError('service-unavailable');
      if (attr(payload, 'node') !== undefined) throw new StanzaError('item-not-found');
    }

    ctx.iq.onGet(NS_DISCO_INFO, 'query', ({ payload }) => {
      const node = attr(payload, 'node');
      // XEP-0115 §6.2: the caps node#ver answers with the same info it was hashed from.
      if (node !== undefined && node !== capsNode) throw new StanzaError('item-not-found');
      return infoQuery(node, server.identities, server.features);
    });
    ctx.iq.onGet(NS_DISCO_ITEMS, 'query', ({ payload }) => {
      if (attr(payload, 'node') !== undefined) throw new StanzaError('item-not-found');
      return xml('query', { xmlns: NS_DISCO_ITEMS });
    });
    ctx.iq.onGet(
      NS_DISCO_INFO,
      'query',
      async (request) => {
        await checkAccount(request);
        return infoQuery(undefined, [{ category: 'account', type: 'registered' }], accountInfo);
      },
      { targets: ['account'] },
    );
    ctx.iq.onGet(
      NS_DISCO_ITEMS,
      'query',
      async (request) => {
        await checkAccount(request);
        return xml('query', { xmlns: NS_DISCO_ITEMS });
      },
      { targets: ['account'] },
    );
  },
});
