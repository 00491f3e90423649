// Fault injection for bad-input.test.ts: handlers that fail unexpectedly, to show a failure stays inside
// one stanza. A module of its own so that, in the cluster shape, every role process can load it.
import { defineFeature } from '@starling/core';
import { StanzaError } from '@starling/xmpp';

export const NS_EXPLODE = 'urn:test:explode';

const explode = defineFeature({
  id: 'test-explode',
  spec: { title: 'fault injection for tests' },
  roles: ['router'],
  setup({ iq }) {
    iq.onGet(NS_EXPLODE, 'boom', () => {
      throw new TypeError('boom');
    });
    iq.onGet(NS_EXPLODE, 'refuse', () => {
      throw new StanzaError('not-allowed');
    });
  },
});

export const features = [explode];
