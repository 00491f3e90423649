// Local infrastructure: the throwaway Kafka broker's JVM, quick to start for tests or as deployed for measurements.
import { readFileSync } from 'node:fs';
import { Kafka, logLevel } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { startKafka } from './kafka.ts';

function commandLine(pid: number): string[] {
  return readFileSync(`/proc/${String(pid)}/cmdline`, 'utf8').split('\0');
}

describe('startKafka', () => {
  it('runs the broker as deployed when asked, both compiler tiers and G1, and it serves', async () => {
    const kafka = await startKafka({ partitions: 2, jvm: 'server' });
    try {
      const args = commandLine(kafka.pid);
      expect(args).toContain('kafka.Kafka');
      expect(args).toContain('-XX:+UseG1GC');
      // The tests' broker stops at the first tier; a broker measured that way costs more per request.
      expect(args.filter((arg) => arg.startsWith('-XX:TieredStopAtLevel'))).toEqual([]);
      expect(args).not.toContain('-XX:+UseSerialGC');
      const admin = new Kafka({
        clientId: 'jvm-check',
        brokers: [...kafka.brokers],
        logLevel: logLevel.NOTHING,
      }).admin();
      await admin.connect();
      try {
        expect(await admin.createTopics({ topics: [{ topic: 'jvm-check' }] })).toBe(true);
      } finally {
        await admin.disconnect();
      }
    } finally {
      await kafka.stop();
    }
  }, 180_000);
});
