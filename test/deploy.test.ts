// docker-compose.yml and the Dockerfile cannot run here (no container engine), so this checks what can be
// checked: the compose file parses and brings up every role and every backend they need.
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

interface Service {
  image?: string;
  build?: { dockerfile?: string };
  command?: string[];
  environment?: Record<string, string | number>;
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: unknown;
}

const compose = parse(await readFile(new URL('../docker-compose.yml', import.meta.url), 'utf8'), {
  merge: true,
}) as {
  services: Record<string, Service>;
};
const dockerfile = await readFile(new URL('../deploy/Dockerfile', import.meta.url), 'utf8');

describe('docker-compose.yml', () => {
  it('runs Kafka, Redis and PostgreSQL with health checks', () => {
    for (const backend of ['kafka', 'redis', 'postgres']) {
      expect(compose.services[backend]?.image, backend).toBeDefined();
      expect(compose.services[backend]?.healthcheck, backend).toBeDefined();
    }
    expect(compose.services.kafka?.image).toMatch(/^apache\/kafka:4\.1/);
  });

  it('runs two edges, two routers, presence and archive from the Starling image, after the backends', () => {
    const roles = {
      'edge-1': 'edge',
      'edge-2': 'edge',
      'router-1': 'router',
      'router-2': 'router',
      presence: 'presence',
      archive: 'archive',
    };
    for (const [name, role] of Object.entries(roles)) {
      const service = compose.services[name];
      expect(service, name).toBeDefined();
      expect(service?.build?.dockerfile).toBe('deploy/Dockerfile');
      expect(service?.command).toEqual([role]);
      const env = service?.environment ?? {};
      expect(env.STARLING_KAFKA_BROKERS).toBe('kafka:9092');
      expect(env.STARLING_REDIS_URL).toBe('redis://redis:6379');
      expect(String(env.STARLING_POSTGRES_URL)).toMatch(/^postgres:\/\/.*@postgres:5432\//);
      expect(env.STARLING_NODE_ID, name).toBeDefined();
      for (const backend of ['kafka', 'redis', 'postgres']) {
        expect(service?.depends_on?.[backend]?.condition, `${name} waits for ${backend}`).toBe(
          'service_healthy',
        );
      }
    }
    // Each edge advertises its own Delivery address and publishes client ports that do not clash.
    expect(compose.services['edge-1']?.environment?.STARLING_DELIVERY_ADVERTISE).toBe('edge-1:7400');
    expect(compose.services['edge-2']?.environment?.STARLING_DELIVERY_ADVERTISE).toBe('edge-2:7400');
  });
});

describe('Dockerfile', () => {
  it('builds on Node 24 LTS and runs the starling command as an unprivileged user', () => {
    expect(dockerfile).toMatch(/^FROM node:24-/m);
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toContain('ENTRYPOINT ["node", "bin/starling.js"]');
    expect(dockerfile).toContain('npm ci --omit=dev');
  });
});
