// The servers the benchmark can run, each on ports of its own.
import { startCluster } from './cluster.ts';
import type { RunningServer, ServerOptions } from './server.ts';
import { startEjabberd } from './ejabberd.ts';
import { startStarling } from './starling.ts';

/**
 * `starling` and `ejabberd` archive every message (XEP-0313); `starling-noarchive` runs with
 * `archive.enabled: false` and `ejabberd-nomam` with Debian's default module set, which has no mod_mam.
 */
export const SERVER_KINDS = [
  'starling',
  'starling-noarchive',
  'cluster',
  'ejabberd',
  'ejabberd-nomam',
] as const;
export type ServerKind = (typeof SERVER_KINDS)[number];

export type BaseOptions = Omit<ServerOptions, 'c2sPort' | 'directTlsPort' | 'httpPort'>;

export async function startServer(kind: ServerKind, options: BaseOptions): Promise<RunningServer> {
  switch (kind) {
    case 'starling':
    case 'starling-noarchive': {
      const archive = kind === 'starling';
      return startStarling({ ...options, c2sPort: 25222, directTlsPort: 25223, httpPort: 25280, archive });
    }
    case 'cluster':
      // Bases: edge i listens on each plus i (26222-26223, 26232-26233, 26280-26281); metrics on 26400-26405.
      return startCluster({ ...options, c2sPort: 26222, directTlsPort: 26232, httpPort: 26280 });
    case 'ejabberd':
    case 'ejabberd-nomam': {
      const ports = { c2sPort: 35222, directTlsPort: 35223 };
      const archive = kind === 'ejabberd';
      const running = await startEjabberd({ ...options, ...ports, archive });
      return {
        name: archive ? running.name : `${running.name} (no MAM)`,
        endpoints: [ports],
        components: [{ name: 'ejabberd', pids: running.pids }],
        stop: () => running.stop(),
      };
    }
  }
}
