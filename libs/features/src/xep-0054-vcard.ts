// XEP-0054: vcard-temp. Anyone may read an account's vCard; only the account may replace its own.
import { defineFeature } from '@starling/core';
import { NS_VCARD, parseTrusted, StanzaError, xml } from '@starling/xmpp';

/** The XmlStore key of the vCard document. */
const VCARD_KEY = '';

export default defineFeature({
  id: 'xep-0054-vcard',
  spec: { xep: 54, title: 'vcard-temp' },
  roles: ['router'],
  disco: { features: [NS_VCARD] },
  setup(ctx) {
    ctx.iq.onGet(
      NS_VCARD,
      'vCard',
      async ({ to }) => {
        const stored = await ctx.store.vcards.get(to.local, VCARD_KEY);
        // §3.1: an account without a vCard answers with an empty one.
        return stored === undefined ? xml('vCard', { xmlns: NS_VCARD }) : parseTrusted(stored);
      },
      { targets: ['account'] },
    );
    ctx.iq.onSet(
      NS_VCARD,
      'vCard',
      async ({ from, to, payload }) => {
        if (!to.equals(from.bare())) throw new StanzaError('forbidden', 'only the account may set its vCard');
        payload.attrs.xmlns = NS_VCARD;
        const document = payload.toString();
        if (Buffer.byteLength(document, 'utf8') > ctx.config.limits.storageBytes) {
          throw new StanzaError('policy-violation', 'the vCard is too large');
        }
        await ctx.store.vcards.set(from.local, VCARD_KEY, document);
        return undefined;
      },
      { targets: ['account'] },
    );
  },
});
