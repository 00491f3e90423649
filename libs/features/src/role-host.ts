// What the router and presence hosts build before consuming: hooks, RFC 6121 routing, and their features.
import {
  Hooks,
  setupFeatures,
  type FeatureHost,
  type Role,
  type RoleDeps,
  type Routing,
} from '@starling/core';
import { createRouting } from './rfc6121-routing/index.ts';

export interface RoleHost extends FeatureHost {
  readonly routing: Routing;
}

/** Sets up every enabled feature of `role` over routing that runs their hooks. */
export async function setupRole(role: Role, deps: RoleDeps): Promise<RoleHost> {
  const log = deps.log.child({ role });
  const hooks = new Hooks();
  const routing = createRouting({
    config: deps.config,
    registry: deps.registry,
    delivery: deps.delivery,
    bus: deps.bus,
    store: deps.store,
    hooks,
    log,
  });
  const host = await setupFeatures(role, deps, routing, hooks);
  return { ...host, routing };
}
