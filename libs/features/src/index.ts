// @starling/features: every protocol feature, registered in one list. Hosts pick those of their role.
import type { Config, Feature } from '@starling/core';
import roster, { rosterVersioning } from './rfc6121-roster/index.ts';
import { routingRules } from './rfc6121-routing/index.ts';
import { streamFeatures } from './rfc6120-streams.ts';
import presence from './rfc6121-presence/index.ts';
import disco from './xep-0030-disco.ts';
import lastActivity from './xep-0012-last.ts';
import privateXml from './xep-0049-private.ts';
import vcard from './xep-0054-vcard.ts';
import register from './xep-0077-register.ts';
import version from './xep-0092-version.ts';
import caps from './xep-0115-caps.ts';
import offline, { delayedDelivery } from './xep-0160-offline.ts';
import blocking from './xep-0191-blocking.ts';
import ping from './xep-0199-ping.ts';
import time from './xep-0202-time.ts';
import resultSetManagement from './xep-0059-rsm.ts';
import mam from './xep-0313-mam/index.ts';
import stanzaIds from './xep-0359-stanza-ids.ts';

export * from './rfc6120-sasl/index.ts';
export { presenceHandlerFor, type PresenceHandler } from './rfc6121-presence/index.ts';
export { archiveHandlerFor, type ArchiveHandler } from './xep-0313-mam/index.ts';
export { createRouting } from './rfc6121-routing/index.ts';
export { setupRole, type RoleHost } from './role-host.ts';
export { pushRosterItem, rosterItemElement } from './rfc6121-roster/push.ts';
export { serverCaps, serverDiscoInfo } from './xep-0115-caps.ts';
export { specTable, withSpecTable } from './spec-table.ts';

/** Every feature, in registration order. Helpers and hosts import from here only. */
export const allFeatures: readonly Feature[] = [
  ...streamFeatures,
  routingRules,
  roster,
  rosterVersioning,
  presence,
  offline,
  delayedDelivery,
  disco,
  caps,
  version,
  ping,
  time,
  lastActivity,
  vcard,
  privateXml,
  register,
  blocking,
  mam,
  stanzaIds,
  resultSetManagement,
];

/** The features enabled by `config`. */
export function enabledFeatures(config: Config): Feature[] {
  return allFeatures.filter((feature) => feature.enabled?.(config) ?? true);
}
