// What the router and presence hosts share: building each feature's context and running its setup.
import { Jid } from '@starling/xmpp';
import type { FeatureContext, Role, Routing } from './feature.ts';
import { Hooks } from './hooks.ts';
import { IqTable } from './iq-table.ts';
import type { RoleDeps } from './role.ts';

export interface FeatureHost {
  readonly hooks: Hooks;
  readonly iq: IqTable;
  readonly context: FeatureContext;
}

/** Sets up every enabled feature that runs in `role`, in registration order. */
export async function setupFeatures(
  role: Role,
  deps: RoleDeps,
  routing: Routing,
  hooks: Hooks = new Hooks(),
): Promise<FeatureHost> {
  const log = deps.log.child({ role });
  const iq = new IqTable(({ error, request }) =>
    log.error({ err: error, iq: request.stanza.toString() }, 'IQ handler failed'),
  );
  const domain = deps.config.domain;
  const context: FeatureContext = {
    role,
    config: deps.config,
    store: deps.store,
    registry: deps.registry,
    bus: deps.bus,
    hooks,
    iq,
    routing,
    log,
    features: deps.features,
    archiveInProcess: deps.archiveInProcess === true,
    isLocal: (jid: Jid) => jid.domain === domain,
  };
  for (const feature of deps.features) {
    if (feature.roles.includes(role) && feature.setup) await feature.setup(context);
  }
  return { hooks, iq, context };
}
