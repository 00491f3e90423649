// What the cluster's backends did, counted on the backends themselves: records appended to Kafka topics,
// commands Redis ran and the memory it holds, rows and WAL PostgreSQL wrote. Differences between two readings, divided by the
// messages sent between them, give the per-message costs the capacity model starts from.
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { BackendAddresses } from '../../../deploy/local/cluster.ts';

export interface BackendCounters {
  read(): Promise<Record<string, number>>;
  close(): Promise<void>;
}

/** Sum of `calls` over Redis's INFO commandstats, less the INFO calls this reader made. */
function redisCommands(info: string): number {
  let calls = 0;
  for (const match of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) {
    if (match[1] !== 'info') calls += Number(match[2]);
  }
  return calls;
}

/** Records in every topic of Starling's (Kafka's own, named `__…`, left out). */
async function kafkaRecords(admin: Admin): Promise<number> {
  const topics = (await admin.listTopics()).filter((topic) => !topic.startsWith('__'));
  let records = 0;
  for (const topic of topics) {
    for (const partition of await admin.fetchTopicOffsets(topic)) {
      records += Number(partition.high) - Number(partition.low);
    }
  }
  return records;
}

export async function openBackendCounters(backends: BackendAddresses): Promise<BackendCounters> {
  const redis = new Redis(backends.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  const admin = new Kafka({
    clientId: 'bench-counters',
    brokers: [...backends.kafkaBrokers],
    logLevel: logLevel.NOTHING,
  }).admin();
  const postgres = new pg.Client({ connectionString: backends.postgresUrl });
  await Promise.all([redis.connect(), admin.connect(), postgres.connect()]);
  return {
    async read() {
      const [info, memory, records, wal, archived] = await Promise.all([
        redis.info('commandstats'),
        redis.info('memory'),
        kafkaRecords(admin),
        postgres.query<{ bytes: string }>(
          "select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint::text as bytes",
        ),
        postgres.query<{ rows: string }>('select count(*)::text as rows from archive'),
      ]);
      return {
        kafka_records: records,
        redis_commands: redisCommands(info),
        redis_memory_bytes: Number(/^used_memory:(\d+)/m.exec(memory)?.[1] ?? 0),
        pg_archive_rows: Number(archived.rows[0]?.rows ?? 0),
        pg_wal_bytes: Number(wal.rows[0]?.bytes ?? 0),
      };
    },
    async close() {
      await Promise.allSettled([redis.quit(), admin.disconnect(), postgres.end()]);
    },
  };
}
