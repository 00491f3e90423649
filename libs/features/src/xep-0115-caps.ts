// XEP-0115: Entity Capabilities. The server's disco#info, and its §5.1 verification string for stream features.
import { createHash } from 'node:crypto';
import { defineFeature, type Config, type DiscoIdentity, type Feature } from '@starling/core';
import { NS_CAPS } from '@starling/xmpp';

/** The software's caps node (XEP-0115 §4: a URI naming the software, not the deployment). */
export const CAPS_NODE = 'urn:starling:server';

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** XEP-0115 §5.1 step 1: by category, then type, then xml:lang (none here), then name. */
function compareIdentities(a: DiscoIdentity, b: DiscoIdentity): number {
  return compare(a.category, b.category) || compare(a.type, b.type) || compare(a.name ?? '', b.name ?? '');
}

function identityKey(identity: DiscoIdentity): string {
  return `${identity.category}/${identity.type}//${identity.name ?? ''}`;
}

/** XEP-0115 §5.1: sorted identities and features, each followed by '<', then SHA-1 in base64. */
export function capsVerification(identities: readonly DiscoIdentity[], features: readonly string[]): string {
  let input = '';
  for (const identity of [...identities].sort(compareIdentities)) input += `${identityKey(identity)}<`;
  for (const feature of [...features].sort(compare)) input += `${feature}<`;
  return createHash('sha1').update(input, 'utf8').digest('base64');
}

/**
 * The server's own disco#info (XEP-0030): the server/im identity named after the software, plus the
 * identities and features every enabled feature declares, deduplicated and sorted.
 */
export function serverDiscoInfo(
  config: Config,
  features: readonly Feature[],
): { identities: DiscoIdentity[]; features: string[] } {
  const identities = new Map<string, DiscoIdentity>();
  const server: DiscoIdentity = { category: 'server', type: 'im', name: config.server.name };
  identities.set(identityKey(server), server);
  const vars = new Set<string>();
  for (const feature of features) {
    if (!(feature.enabled?.(config) ?? true) || !feature.disco) continue;
    for (const identity of feature.disco.identities ?? []) identities.set(identityKey(identity), identity);
    for (const name of feature.disco.features ?? []) vars.add(name);
  }
  return {
    identities: [...identities.values()].sort(compareIdentities),
    features: [...vars].sort(compare),
  };
}

/** The `<c/>` attributes of the server's stream features (XEP-0115 §6.3), over `serverDiscoInfo`. */
export function serverCaps(
  config: Config,
  features: readonly Feature[],
): { node: string; ver: string; hash: 'sha-1' } {
  const info = serverDiscoInfo(config, features);
  return { node: CAPS_NODE, ver: capsVerification(info.identities, info.features), hash: 'sha-1' };
}

export default defineFeature({
  id: 'xep-0115-caps',
  spec: { xep: 115, title: 'Entity Capabilities' },
  roles: ['edge'],
  disco: { features: [NS_CAPS] },
});
