// XEP-0092: Software Version. Answers for the server with the configured name and version.
import { release, type } from 'node:os';
import { defineFeature } from '@starling/core';
import { NS_VERSION, xml } from '@starling/xmpp';

export default defineFeature({
  id: 'xep-0092-version',
  spec: { xep: 92, title: 'Software Version' },
  roles: ['router'],
  disco: { features: [NS_VERSION] },
  setup(ctx) {
    const { name, version, showOs } = ctx.config.server;
    // §4: the operating system helps attackers more than users, so it is opt-in.
    const os = showOs ? `${type()} ${release()}` : undefined;
    ctx.iq.onGet(NS_VERSION, 'query', () =>
      xml(
        'query',
        { xmlns: NS_VERSION },
        xml('name', null, name),
        xml('version', null, version),
        os === undefined ? null : xml('os', null, os),
      ),
    );
  },
});
