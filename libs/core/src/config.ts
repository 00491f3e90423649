// Configuration: one YAML file with every setting, environment variables for the common ones, validated at start.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

const port = z.number().int().min(0).max(65535);
const positiveInt = z.number().int().positive();

export const configSchema = z
  .object({
    /** The XMPP domain this server hosts. */
    domain: z.string().min(1).default('localhost'),
    listen: z
      .object({
        address: z.string().min(1).default('127.0.0.1'),
        /** c2s with STARTTLS (RFC 6120). */
        c2sPort: port.default(5222),
        /** c2s with direct TLS (XEP-0368). */
        directTlsPort: port.default(5223),
        /** HTTP: WebSocket (RFC 7395) at /xmpp-websocket, /healthz, /readyz. */
        httpPort: port.default(5280),
      })
      .strict()
      .prefault({}),
    dataDir: z.string().min(1).default('./data'),
    tls: z
      .object({
        /** PEM certificate chain; a self-signed one is generated in dataDir when unset. */
        cert: z.string().optional(),
        key: z.string().optional(),
        /** Refuse authentication on c2s until STARTTLS (RFC 6120 §5.3.1). */
        required: z.boolean().default(true),
      })
      .strict()
      .prefault({})
      .refine((tls) => (tls.cert === undefined) === (tls.key === undefined), {
        message: 'set both tls.cert and tls.key, or neither',
      }),
    /** XEP-0077 in-band registration: `open` lets anyone create an account. */
    registration: z.enum(['open', 'closed']).default('closed'),
    auth: z
      .object({
        /** PBKDF2 iterations for new SCRAM credentials (RFC 5802; 4096 is RFC 7677's minimum). */
        scramIterations: z.number().int().min(4096).max(1_000_000).default(4096),
        /** Offered SASL mechanisms, strongest first; PLAIN is only ever offered over TLS. */
        mechanisms: z
          .array(z.enum(['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN']))
          .min(1)
          .default(['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN']),
        /** Failed logins from one address before each further attempt is delayed. */
        failuresBeforeDelay: positiveInt.default(3),
        /** Delay added per failure past the threshold, in milliseconds. */
        failureDelayMs: z.number().int().min(0).max(60_000).default(1000),
        /** Failed logins from one address before it is refused outright. */
        failuresBeforeBlock: positiveInt.default(10),
        /** How long an address stays refused, and how long failures are remembered, in seconds. */
        blockSeconds: positiveInt.default(300),
      })
      .strict()
      .prefault({}),
    limits: z
      .object({
        /** Largest stanza after authentication, in bytes. */
        stanzaBytes: positiveInt.default(256 * 1024),
        /** Largest element before authentication, in bytes. */
        preAuthStanzaBytes: positiveInt.default(8 * 1024),
        /** Deepest element nesting inside a stanza. */
        depth: positiveInt.default(32),
        /** Most attributes on one element. */
        attributes: positiveInt.default(64),
        /** Most child elements of one element. */
        children: positiveInt.default(1024),
        /**
         * Seconds a client may take to authenticate before the stream is closed. Timers take at most
         * 2^31 - 1 ms (Node fires longer ones at once), so this and hibernateSeconds stop at a day.
         */
        authTimeoutSeconds: positiveInt.max(86_400).default(60),
        /**
         * A connection with no input for this many seconds (checked every as many seconds, so after one
         * to two periods) lets go of its XML parser, about 8 KB, until it sends again; 0 never does.
         */
        hibernateSeconds: z.number().int().min(0).max(86_400).default(10),
        /**
         * Stanzas an edge has handed to the bus and not seen confirmed, over all its connections. At this
         * many the edge stops reading its connections until half are confirmed: a slow bus (Kafka
         * struggling, an embedded consumer behind) then costs latency, not memory.
         */
        unconfirmedStanzas: positiveInt.default(10_000),
        /** Open connections from one address. */
        connectionsPerAddress: positiveInt.default(1000),
        /** Stored offline messages per account. */
        offlineMessages: z.number().int().min(0).default(1000),
        /** Roster items per account. */
        rosterItems: positiveInt.default(2000),
        /** Bytes of one private XML or vCard document. */
        storageBytes: positiveInt.default(64 * 1024),
      })
      .strict()
      .prefault({}),
    streamManagement: z
      .object({
        /** Offer XEP-0198 stream management (acknowledgements and resumption). */
        enabled: z.boolean().default(true),
        /** How long a resumable stream's state outlives its connection, in seconds; 0 offers no resumption. */
        resumeSeconds: z.number().int().min(0).max(86_400).default(300),
      })
      .strict()
      .prefault({}),
    archive: z
      .object({
        /**
         * XEP-0313 message archives: every chat message is stored for its sender and its recipient, and
         * stamped with a XEP-0359 stanza-id. Off, nothing is archived and MAM requests are refused.
         */
        enabled: z.boolean().default(true),
      })
      .strict()
      .prefault({}),
    server: z
      .object({
        /** Name and version answered to XEP-0092 queries. */
        name: z.string().default('Starling'),
        version: z.string().default('0.1.0'),
        /** Whether XEP-0092 answers include the operating system. */
        showOs: z.boolean().default(false),
      })
      .strict()
      .prefault({}),
    cluster: z
      .object({
        /** How long an edge's lease lasts without a heartbeat; edges renew every third of it. */
        leaseSeconds: z.number().int().min(2).max(300).default(15),
        /** How often the presence role looks for expired leases to sweep their sessions. */
        sweepSeconds: z.number().int().min(1).max(300).default(5),
        /** This process's name in the cluster (edge id); defaults to the host name. */
        nodeId: z.string().min(1).optional(),
        /** Kafka bootstrap brokers, host:port. */
        kafkaBrokers: z.array(z.string().min(1)).default([]),
        /** Partitions of each topic created by Starling. */
        kafkaPartitions: z.number().int().min(1).max(10_000).default(16),
        /** Redis for the session registry: redis://host:port of a single server... */
        redisUrl: z.string().optional(),
        /** ...or the host:port seeds of a Redis Cluster. */
        redisClusterNodes: z.array(z.string().min(1)).default([]),
        /** PostgreSQL connection URL of the store. */
        postgresUrl: z.string().optional(),
        /** Where an edge listens for Delivery (gRPC), host:port. */
        deliveryListen: z.string().default('0.0.0.0:7400'),
        /** The address other roles use to reach this edge's Delivery; defaults to nodeId plus the listen port. */
        deliveryAdvertise: z.string().optional(),
        /** Internal HTTP port of every cluster role: /metrics, /healthz, /readyz. */
        metricsPort: port.default(9400),
      })
      .strict()
      .prefault({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;

/** A configuration mistake, with every problem named by its setting. */
export class ConfigError extends Error {}

/** Environment variables for the common settings, and where each goes. */
export const ENV_SETTINGS = {
  STARLING_DOMAIN: ['domain'],
  STARLING_LISTEN_ADDRESS: ['listen', 'address'],
  STARLING_C2S_PORT: ['listen', 'c2sPort'],
  STARLING_DIRECT_TLS_PORT: ['listen', 'directTlsPort'],
  STARLING_HTTP_PORT: ['listen', 'httpPort'],
  STARLING_DATA_DIR: ['dataDir'],
  STARLING_TLS_CERT: ['tls', 'cert'],
  STARLING_TLS_KEY: ['tls', 'key'],
  STARLING_REGISTRATION: ['registration'],
  STARLING_LOG_LEVEL: ['log', 'level'],
  STARLING_NODE_ID: ['cluster', 'nodeId'],
  STARLING_KAFKA_BROKERS: ['cluster', 'kafkaBrokers'],
  STARLING_REDIS_URL: ['cluster', 'redisUrl'],
  STARLING_REDIS_CLUSTER_NODES: ['cluster', 'redisClusterNodes'],
  STARLING_POSTGRES_URL: ['cluster', 'postgresUrl'],
  STARLING_DELIVERY_LISTEN: ['cluster', 'deliveryListen'],
  STARLING_DELIVERY_ADVERTISE: ['cluster', 'deliveryAdvertise'],
  STARLING_METRICS_PORT: ['cluster', 'metricsPort'],
} as const satisfies Record<string, readonly string[]>;

const NUMERIC = new Set(['c2sPort', 'directTlsPort', 'httpPort', 'metricsPort']);
/** Settings given as comma-separated lists in the environment. */
const LISTS = new Set(['kafkaBrokers', 'redisClusterNodes']);

function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  for (const [name, path] of Object.entries(ENV_SETTINGS)) {
    const value = env[name];
    if (value === undefined || value === '') continue;
    let target = raw;
    for (const segment of path.slice(0, -1)) {
      const next = target[segment];
      if (typeof next !== 'object' || next === null) target[segment] = {};
      target = target[segment] as Record<string, unknown>;
    }
    const leaf = path[path.length - 1] as string;
    if (LISTS.has(leaf)) {
      target[leaf] = value
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '');
    } else if (NUMERIC.has(leaf)) {
      if (!/^\d+$/.test(value)) throw new ConfigError(`${name}: expected a port number, got "${value}"`);
      target[leaf] = Number(value);
    } else {
      target[leaf] = value;
    }
  }
}

/** Validates settings; throws ConfigError naming each bad setting. */
export function parseConfig(raw: unknown, source = 'configuration'): Config {
  const result = configSchema.safeParse(raw ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    const where = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
    return `  ${where}: ${issue.message}`;
  });
  throw new ConfigError(`invalid ${source}:\n${problems.join('\n')}`);
}

/** Reads the YAML file (if any), overlays the environment, and validates. */
export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Config {
  let raw: Record<string, unknown> = {};
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (err) {
      throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`);
    }
    if (parsed !== null && parsed !== undefined) {
      if (typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new ConfigError(`config file ${file} must hold a mapping of settings`);
      }
      raw = parsed as Record<string, unknown>;
    }
  }
  applyEnv(raw, env);
  return parseConfig(raw, file === undefined ? 'configuration' : `config file ${file}`);
}
