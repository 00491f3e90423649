// XEP-0199: XMPP Ping. Answers pings to the server, and to accounts' bare JIDs on their behalf.
import { defineFeature } from '@starling/core';
import { NS_PING } from '@starling/xmpp';

export default defineFeature({
  id: 'xep-0199-ping',
  spec: { xep: 199, title: 'XMPP Ping' },
  roles: ['router'],
  disco: { features: [NS_PING], accountFeatures: [NS_PING] },
  setup(ctx) {
    ctx.iq.onGet(NS_PING, 'ping', () => undefined, { targets: ['server', 'account'] });
  },
});
