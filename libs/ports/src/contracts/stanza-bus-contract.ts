// StanzaBus contract: the promises of the port's TSDoc, run against every adapter (memory, Kafka).
import { afterEach, describe, expect, it } from 'vitest';
import type { BusRecord, BusSubscription, StanzaBus } from '../stanza-bus.ts';
import { deferred, unique, waitFor, yieldTurns } from './support.ts';

/** The ingress time header (`@starling/telemetry`'s INGRESS_HEADER; ports depend on no library). */
const INGRESS_HEADER = 'starling-ingress-ms';

/** The ingress time an adapter added to `record`, checked to be a plausible time in milliseconds. */
function ingressTime(record: BusRecord | undefined): Record<string, string> {
  const value = record?.headers[INGRESS_HEADER];
  if (value === undefined) return {};
  expect(Math.abs(Number(value) - Date.now())).toBeLessThan(60_000);
  return { [INGRESS_HEADER]: value };
}

/** What the suite hands the factory: the bus must report handler rejections to `onError`. */
export interface StanzaBusContractOptions {
  readonly onError: (err: unknown, record: BusRecord) => void;
}

interface Received {
  readonly record: BusRecord;
  readonly member: string;
}

async function randomDelay(): Promise<void> {
  const roll = Math.random();
  if (roll < 0.3) return;
  if (roll < 0.6) {
    await new Promise((resolve) => setImmediate(resolve));
    return;
  }
  await new Promise((resolve) => setTimeout(resolve, Math.floor(Math.random() * 3)));
}

/**
 * Registers the StanzaBus contract tests. `create` opens a fresh bus per test; the suite closes it.
 * Topics and groups are unique per test, so a shared broker is fine.
 */
export function describeStanzaBusContract(
  name: string,
  create: (options: StanzaBusContractOptions) => Promise<StanzaBus>,
): void {
  describe(`StanzaBus contract: ${name}`, () => {
    let open: { bus: StanzaBus; closed: boolean }[] = [];
    let errors: { err: unknown; record: BusRecord }[] = [];

    async function newBus(): Promise<StanzaBus> {
      const bus = await create({ onError: (err, record) => errors.push({ err, record }) });
      open.push({ bus, closed: false });
      return bus;
    }

    async function closeBus(bus: StanzaBus): Promise<void> {
      const entry = open.find((o) => o.bus === bus);
      if (entry) entry.closed = true;
      await bus.close();
    }

    afterEach(async () => {
      const pending = open.filter((o) => !o.closed);
      open = [];
      errors = [];
      await Promise.all(pending.map((o) => o.bus.close()));
    });

    it('publish resolves and the subscriber receives topic, key, value and headers', async () => {
      const bus = await newBus();
      const topic = unique('t');
      const got: BusRecord[] = [];
      await bus.subscribe(topic, unique('g'), (record) => {
        got.push(record);
        return Promise.resolve();
      });
      const headers = { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', ts: '1700' };
      await expect(
        bus.publish(topic, 'juliet@example.com', '<message>¡olé ☃</message>', headers),
      ).resolves.toBeUndefined();
      await bus.publish(topic, 'romeo@example.net', 'second');
      await waitFor(() => got.length === 2, 5_000, 'two records');
      // Records of different keys may arrive in either order (they may run side by side).
      const juliet = got.find((record) => record.key === 'juliet@example.com');
      const romeo = got.find((record) => record.key === 'romeo@example.net');
      // Headers given arrive as given; an adapter may add an ingress time, nothing else (no span is active).
      expect(juliet).toEqual({
        topic,
        key: 'juliet@example.com',
        value: '<message>¡olé ☃</message>',
        headers: { ...headers, ...ingressTime(juliet) },
      });
      expect(romeo).toEqual({
        topic,
        key: 'romeo@example.net',
        value: 'second',
        headers: ingressTime(romeo),
      });
    });

    it('keeps an ingress time given by the publisher', async () => {
      const bus = await newBus();
      const topic = unique('t');
      const got: BusRecord[] = [];
      await bus.subscribe(topic, unique('g'), (record) => {
        got.push(record);
        return Promise.resolve();
      });
      await bus.publish(topic, 'juliet@example.com', 'v', { [INGRESS_HEADER]: '1700000000000' });
      await waitFor(() => got.length === 1, 5_000, 'the record');
      expect(got[0]?.headers).toEqual({ [INGRESS_HEADER]: '1700000000000' });
    });

    it('delivers each record once to a group, and once to each of two groups', async () => {
      const bus = await newBus();
      const topic = unique('t');
      const perGroup = new Map<string, string[]>();
      for (const group of [unique('a'), unique('b')]) {
        const values: string[] = [];
        perGroup.set(group, values);
        await bus.subscribe(topic, group, (record) => {
          values.push(record.value);
          return Promise.resolve();
        });
      }
      const sent: string[] = [];
      for (let i = 0; i < 60; i++) sent.push(`v${i}`);
      await Promise.all(sent.map((value, i) => bus.publish(topic, `k${i % 7}`, value)));
      // A marker per key arrives after every earlier record of that key, so duplicates would show by now.
      await Promise.all([...Array(7).keys()].map((k) => bus.publish(topic, `k${k}`, `end${k}`)));
      for (const values of perGroup.values()) {
        await waitFor(() => values.filter((v) => v.startsWith('end')).length === 7, 5_000, 'markers');
        expect(values.filter((v) => v.startsWith('v')).sort()).toEqual([...sent].sort());
      }
    });

    it('hands each record to exactly one member of a group', async () => {
      const bus = await newBus();
      const topic = unique('t');
      const group = unique('g');
      const got: Received[] = [];
      for (const member of ['m1', 'm2']) {
        await bus.subscribe(topic, group, (record) => {
          got.push({ record, member });
          return Promise.resolve();
        });
      }
      const keys = [...Array(40).keys()].map((i) => unique(`k${i}`));
      await Promise.all(keys.map((key) => bus.publish(topic, key, key)));
      await waitFor(() => got.length >= keys.length, 5_000, 'all records');
      await Promise.all(keys.map((key) => bus.publish(topic, key, 'end')));
      await waitFor(
        () => got.filter((r) => r.record.value === 'end').length === keys.length,
        5_000,
        'markers',
      );
      const values = got.filter((r) => r.record.value !== 'end').map((r) => r.record.value);
      expect(values.sort()).toEqual([...keys].sort());
    });

    it('keeps publish order per key under concurrency, one handler at a time per key', async () => {
      const bus = await newBus();
      const topic = unique('t');
      const keys = [...Array(20).keys()].map((i) => unique(`user${i}`));
      const perKey = 25;
      const seen = new Map<string, number[]>(keys.map((k) => [k, []]));
      const inFlight = new Map<string, number>();
      const overlaps: string[] = [];
      let total = 0;
      await bus.subscribe(topic, unique('g'), async (record) => {
        const running = (inFlight.get(record.key) ?? 0) + 1;
        inFlight.set(record.key, running);
        if (running > 1) overlaps.push(record.key);
        await randomDelay();
        seen.get(record.key)?.push(Number(record.value));
        inFlight.set(record.key, (inFlight.get(record.key) ?? 1) - 1);
        total++;
      });
      // Each key publishes in sequence, the keys interleave with each other.
      await Promise.all(
        keys.map(async (key) => {
          for (let i = 0; i < perKey; i++) {
            await bus.publish(topic, key, String(i));
            await randomDelay();
          }
        }),
      );
      await waitFor(() => total === keys.length * perKey, 15_000, 'every record');
      const expected = [...Array(perKey).keys()];
      for (const key of keys) expect(seen.get(key)).toEqual(expected);
      expect(overlaps).toEqual([]);
    });

    it('lets every other key proceed while a handler of one key is slow, its later records waiting', async () => {
      const bus = await newBus();
      const topic = unique('t');
      const slowKey = unique('slow');
      const gate = deferred();
      const slowStarted = deferred();
      const done: string[] = [];
      await bus.subscribe(topic, unique('g'), async (record) => {
        if (record.key === slowKey && record.value === 'first') {
          slowStarted.resolve();
          await gate.promise;
        }
        done.push(`${record.key}:${record.value}`);
      });
      await bus.publish(topic, slowKey, 'first');
      await bus.publish(topic, slowKey, 'second');
      await slowStarted.promise;
      // Some of them share the slow key's partition, behind its second record: a busy key holds back
      // only its own records.
      const others = [...Array(32).keys()].map((i) => unique(`other${i}`));
      await Promise.all(others.map((key) => bus.publish(topic, key, 'x')));
      await waitFor(() => done.length === others.length, 5_000, 'every other key while one is blocked');
      expect(done).not.toContain(`${slowKey}:first`);
      expect(done).not.toContain(`${slowKey}:second`);
      gate.resolve();
      await waitFor(() => done.length === others.length + 2, 5_000, 'the slow key');
      expect(done.indexOf(`${slowKey}:first`)).toBeLessThan(done.indexOf(`${slowKey}:second`));
    });

    it('reports a handler rejection and goes on with later records', async () => {
      const bus = await newBus();
      const topic = unique('t');
      const key = unique('k');
      const handled: string[] = [];
      await bus.subscribe(topic, unique('g'), (record) => {
        if (record.value === 'boom') return Promise.reject(new Error('handler failed'));
        handled.push(record.value);
        return Promise.resolve();
      });
      await bus.publish(topic, key, 'before');
      await bus.publish(topic, key, 'boom');
      await bus.publish(topic, key, 'after');
      await waitFor(
        () => handled.length === 2 && errors.length === 1,
        5_000,
        'the error and the later record',
      );
      expect(handled).toEqual(['before', 'after']);
      expect(errors[0]?.record.value).toBe('boom');
      expect(errors[0]?.err).toBeInstanceOf(Error);
      expect((errors[0]?.err as Error).message).toBe('handler failed');
    });

    it('delivers records published before the first subscriber of a topic', async () => {
      const bus = await newBus();
      const topic = unique('t');
      const key = unique('k');
      await bus.publish(topic, key, 'one');
      await bus.publish(topic, key, 'two');
      await bus.publish(topic, unique('k'), 'three');
      const got: string[] = [];
      await bus.subscribe(topic, unique('g'), (record) => {
        got.push(record.value);
        return Promise.resolve();
      });
      await waitFor(() => got.length === 3, 5_000, 'the early records');
      expect(got.filter((v) => v !== 'three')).toEqual(['one', 'two']);
      expect(got).toContain('three');
    });

    it('closing a subscription waits for its in-flight handler, then stops it', async () => {
      const bus = await newBus();
      const topic = unique('t');
      const group = unique('g');
      const key = unique('k');
      const gate = deferred();
      const started = deferred();
      const events: string[] = [];
      const leaving = await bus.subscribe(topic, group, async (record) => {
        events.push(`leaving:${record.value}`);
        if (record.value === 'held') {
          started.resolve();
          await gate.promise;
          events.push('handler-done');
        }
      });
      await bus.publish(topic, key, 'held');
      await started.promise;
      const closing = leaving.close().then(() => events.push('closed'));
      await yieldTurns();
      expect(events).not.toContain('closed');
      gate.resolve();
      await closing;
      expect(events).toEqual(['leaving:held', 'handler-done', 'closed']);

      const staying: string[] = [];
      await bus.subscribe(topic, group, (record) => {
        staying.push(record.value);
        return Promise.resolve();
      });
      await bus.publish(topic, key, 'later');
      await waitFor(() => staying.includes('later'), 5_000, 'the remaining member');
      expect(events).toEqual(['leaving:held', 'handler-done', 'closed']);
    });

    it('after a member closes, the members that remain receive every record', async () => {
      const bus = await newBus();
      const topic = unique('t');
      const group = unique('g');
      const first: string[] = [];
      const second: string[] = [];
      const subs: BusSubscription[] = [];
      for (const sink of [first, second]) {
        subs.push(
          await bus.subscribe(topic, group, (record) => {
            sink.push(record.value);
            return Promise.resolve();
          }),
        );
      }
      await subs[0]?.close();
      const keys = [...Array(20).keys()].map((i) => unique(`k${i}`));
      await Promise.all(keys.map((key) => bus.publish(topic, key, key)));
      await waitFor(() => second.length === keys.length, 5_000, 'records on the remaining member');
      expect(first).toEqual([]);
      expect([...second].sort()).toEqual([...keys].sort());
    });

    it('settles pending publishes before close resolves', async () => {
      const bus = await newBus();
      const topic = unique('t');
      const settled: boolean[] = [];
      const publishes = [...Array(10).keys()].map((i) =>
        bus.publish(topic, unique('k'), String(i)).then(
          () => settled.push(true),
          () => settled.push(false),
        ),
      );
      await closeBus(bus);
      expect(settled).toHaveLength(10);
      await Promise.all(publishes);
    });
  });
}
