// RFC 6120, RFC 7622, RFC 7395, XEP-0198 and XEP-0368 as the edge implements them (services/edge): declared here so
// the specification table lists them; they plug no handlers into router or presence.
import { defineFeature, type Feature } from '@starling/core';

const edge = ['edge'] as const;

export const streamFeatures: readonly Feature[] = [
  defineFeature({
    id: 'rfc6120-streams',
    spec: { rfc: 6120, section: '4', title: 'XML streams, stream errors, keepalives' },
    roles: edge,
  }),
  defineFeature({
    id: 'rfc6120-starttls',
    spec: { rfc: 6120, section: '5', title: 'STARTTLS (required by default)' },
    roles: edge,
  }),
  defineFeature({
    id: 'rfc6120-sasl',
    spec: { rfc: 6120, section: '6', title: 'SASL: SCRAM-SHA-256, SCRAM-SHA-1, PLAIN over TLS' },
    roles: edge,
  }),
  defineFeature({
    id: 'rfc6120-bind',
    spec: { rfc: 6120, section: '7', title: 'Resource binding' },
    roles: edge,
  }),
  defineFeature({
    id: 'rfc6120-stanzas',
    spec: { rfc: 6120, section: '8', title: 'Stanza semantics, errors, `from` stamping' },
    roles: ['edge', 'router'],
  }),
  defineFeature({ id: 'rfc7395-websocket', spec: { rfc: 7395, title: 'XMPP over WebSocket' }, roles: edge }),
  defineFeature({
    id: 'rfc7622-addresses',
    spec: { rfc: 7622, title: 'Addresses with PRECIS preparation' },
    roles: edge,
  }),
  defineFeature({
    id: 'xep-0198-stream-management',
    spec: {
      xep: 198,
      title: 'Stream Management: acks, resumption on any edge (state in the registry)',
    },
    roles: edge,
    enabled: (config) => config.streamManagement.enabled,
  }),
  defineFeature({
    id: 'xep-0368-direct-tls',
    spec: { xep: 368, title: 'SRV records for XMPP over TLS (direct TLS)' },
    roles: edge,
  }),
  defineFeature({
    id: 'rfc3921-session',
    spec: { rfc: 3921, section: '3', title: 'Session establishment (accepted as a no-op)' },
    roles: edge,
  }),
];
