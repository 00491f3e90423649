// XEP-0115 §5: the verification string, checked against the XEP's own example, and the server's inputs to it.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { defineFeature, parseConfig } from '@starling/core';
import { capsVerification, CAPS_NODE, serverCaps, serverDiscoInfo } from './xep-0115-caps.ts';

const config = parseConfig({ domain: 'example.com', registration: 'closed', server: { name: 'Starling' } });

const features = [
  defineFeature({
    id: 'a',
    spec: { title: 'A' },
    roles: ['router'],
    disco: { features: ['urn:b', 'urn:a'] },
  }),
  defineFeature({
    id: 'b',
    spec: { title: 'B' },
    roles: ['edge'],
    disco: { features: ['urn:a'], identities: [{ category: 'pubsub', type: 'pep' }] },
  }),
  defineFeature({
    id: 'off',
    spec: { title: 'Off' },
    roles: ['router'],
    enabled: (c) => c.registration === 'open',
    disco: { features: ['urn:off'], identities: [{ category: 'off', type: 'x' }] },
  }),
];

describe('XEP-0115 verification string', () => {
  it('reproduces the simple generation example of §5.2', () => {
    const ver = capsVerification(
      [{ category: 'client', type: 'pc', name: 'Exodus 0.9.1' }],
      [
        'http://jabber.org/protocol/disco#info',
        'http://jabber.org/protocol/disco#items',
        'http://jabber.org/protocol/muc',
        'http://jabber.org/protocol/caps',
      ],
    );
    expect(ver).toBe('QgayPKawpkPSDYmwT/WM94uAlu0=');
  });

  it('sorts identities by category, then type, then name, and features by octets', () => {
    const identities = [
      { category: 'b', type: 'x' },
      { category: 'a-b', type: 'x' },
      { category: 'a', type: 'y', name: 'n' },
      { category: 'a', type: 'y' },
    ];
    const input = 'a/y//<a/y//n<a-b/x//<b/x//<urn:B<urn:a<';
    expect(capsVerification(identities, ['urn:a', 'urn:B'])).toBe(
      createHash('sha1').update(input).digest('base64'),
    );
  });
});

describe('server disco#info and caps', () => {
  it('collects the server identity and the enabled features, deduplicated and sorted', () => {
    expect(serverDiscoInfo(config, features)).toEqual({
      identities: [
        { category: 'pubsub', type: 'pep' },
        { category: 'server', type: 'im', name: 'Starling' },
      ],
      features: ['urn:a', 'urn:b'],
    });
  });

  it('hashes exactly what disco#info answers', () => {
    const info = serverDiscoInfo(config, features);
    expect(serverCaps(config, features)).toEqual({
      node: CAPS_NODE,
      ver: capsVerification(info.identities, info.features),
      hash: 'sha-1',
    });
    const open = parseConfig({ domain: 'example.com', registration: 'open' });
    expect(serverCaps(open, features).ver).not.toBe(serverCaps(config, features).ver);
  });
});
