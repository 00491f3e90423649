// ARCHITECTURE guarantee 4: an edge keeps its lease alive; when it stops renewing, its sessions get swept.
import type { Logger } from '@starling/core';
import type { SessionRegistry } from '@starling/ports';

export interface LeaseHeartbeat {
  /** Stops renewing and, after a clean drain, gives the lease up so nothing is swept. */
  stop(dropLease: boolean): Promise<void>;
}

/**
 * Renews the lease now (failing if the registry is unreachable) and then every third of `ttlMs`. A renewal
 * that finds no lease to extend means the registry lost this edge (restarted empty, or swept it while it
 * could not renew): `onLost` then puts the edge's sessions back.
 */
export async function startLeaseHeartbeat(
  registry: SessionRegistry,
  edgeId: string,
  address: string,
  ttlMs: number,
  log: Logger,
  onLost: () => Promise<void> = () => Promise.resolve(),
): Promise<LeaseHeartbeat> {
  await registry.renewLease(edgeId, address, ttlMs);
  let inFlight: Promise<void> | undefined;
  const timer = setInterval(
    () => {
      inFlight ??= registry
        .renewLease(edgeId, address, ttlMs)
        .then(async (existed) => {
          if (existed) return;
          log.warn({ edgeId }, 'the registry had lost this edge; restoring its sessions');
          await onLost();
        })
        .catch((err: unknown) =>
          log.error({ err }, 'lease renewal failed; sessions will be swept if it stays down'),
        )
        .finally(() => (inFlight = undefined));
    },
    Math.max(1, Math.floor(ttlMs / 3)),
  );
  timer.unref();
  return {
    async stop(dropLease) {
      clearInterval(timer);
      await inFlight;
      if (dropLease) await registry.dropEdge(edgeId);
    },
  };
}
