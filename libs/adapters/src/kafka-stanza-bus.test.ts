// StanzaBus on Kafka: the port contract against a real Kafka 4.1 broker, plus crash, restart and hand-over drills.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { SpanKind, trace } from '@opentelemetry/api';
import type { BusRecord, StanzaBus } from '@starling/ports';
import { deferred, describeStanzaBusContract, unique, waitFor } from '@starling/ports/contracts';
import { INGRESS_HEADER, inSpan } from '@starling/telemetry';
import { recordSpans, type SpanRecorder } from '@starling/telemetry/testing';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../../deploy/local/free-port.ts';
import { startKafka, type RunningKafka } from '../../../deploy/local/kafka.ts';
import {
  KafkaStanzaBus,
  type KafkaBusLog,
  type KafkaSasl,
  type KafkaStanzaBusOptions,
} from './kafka-stanza-bus.ts';

const quiet: KafkaBusLog = () => undefined;

let kafka: RunningKafka | undefined;
/** Holds the first port the broker is given, as another process may take one before the broker binds it. */
let occupier: Server | undefined;
let taken = 0;
const picked: number[] = [];

beforeAll(async () => {
  occupier = createServer();
  await new Promise<void>((resolve) => occupier!.listen(0, '127.0.0.1', resolve));
  taken = (occupier.address() as { port: number }).port;
  // The first run on a machine downloads Kafka through Maven.
  kafka = await startKafka({
    partitions: 8,
    pickPort: async () => {
      const port = picked.length === 0 ? taken : await freePort();
      picked.push(port);
      return port;
    },
  });
}, 600_000);

afterAll(async () => {
  occupier?.close();
  await kafka?.stop();
});

describe('the local broker', () => {
  it('started again on other ports when one it was given was taken by the time it bound it', () => {
    expect(picked[0]).toBe(taken);
    // Two ports for the start that lost the race, two more for the one that won.
    expect(picked.length).toBeGreaterThanOrEqual(4);
    expect(broker().brokers).toEqual([`127.0.0.1:${String(picked[2])}`]);
  });
});

function broker(): RunningKafka {
  if (!kafka) throw new Error('the Kafka broker did not start');
  return kafka;
}

describeStanzaBusContract('Kafka', ({ onError }) =>
  KafkaStanzaBus.create({ brokers: broker().brokers, clientId: unique('bus'), onError, log: quiet }),
);

/** Settles as `promise` does, or rejects once `ms` passed. */
async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Values in the order first seen: replays after a crash or a hand-over repeat records, never reorder them. */
function firstSeen(values: readonly string[]): number[] {
  return [...new Set(values)].map(Number);
}

function ascending(values: readonly number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

describe('KafkaStanzaBus', () => {
  let buses: StanzaBus[] = [];

  async function newBus(options: Partial<KafkaStanzaBusOptions> = {}): Promise<KafkaStanzaBus> {
    const bus = await KafkaStanzaBus.create({
      brokers: broker().brokers,
      clientId: unique('bus'),
      log: quiet,
      ...options,
    });
    buses.push(bus);
    return bus;
  }

  afterEach(async () => {
    const open = buses;
    buses = [];
    await Promise.all(open.map((bus) => bus.close()));
  });

  it('refuses settings it cannot honour before touching the network', () => {
    const base = { brokers: broker().brokers, clientId: unique('bus') };
    expect(() => new KafkaStanzaBus({ ...base, brokers: [] })).toThrow(/brokers/);
    expect(
      () => new KafkaStanzaBus({ ...base, sessionTimeoutMs: 3_000, heartbeatIntervalMs: 3_000 }),
    ).toThrow(/heartbeatIntervalMs/);
    expect(() => new KafkaStanzaBus({ ...base, publishRetries: 0 })).toThrow(/publishRetries/);
    expect(() => new KafkaStanzaBus({ ...base, lingerMs: -1 })).toThrow(/lingerMs/);
    expect(() => new KafkaStanzaBus({ ...base, fetchMinBytes: 0 })).toThrow(/fetchMinBytes/);
    expect(() => new KafkaStanzaBus({ ...base, fetchMaxWaitMs: 1.5 })).toThrow(/fetchMaxWaitMs/);
    expect(
      () =>
        new KafkaStanzaBus({
          ...base,
          // As settings read from a file may have it.
          sasl: { mechanism: 'aws', username: 'a', password: 'b' } as unknown as KafkaSasl,
        }),
    ).toThrow(/sasl.mechanism aws is not supported/);
    expect(
      () =>
        new KafkaStanzaBus({ ...base, sasl: { mechanism: 'plain', username: 'a' } as unknown as KafkaSasl }),
    ).toThrow(/sasl.username and sasl.password must be strings/);
  });

  it('logs nothing above info on a healthy start, publish and consume', async () => {
    const loud: string[] = [];
    const bus = await newBus({
      log: (level, message) => {
        if (level === 'warn' || level === 'error') loud.push(`${level}: ${message}`);
      },
    });
    const topic = unique('t');
    const got = deferred<BusRecord>();
    await bus.subscribe(topic, unique('g'), (record) => {
      got.resolve(record);
      return Promise.resolve();
    });
    await bus.publish(topic, 'juliet@example.com', 'v');
    await within(got.promise, 20_000, 'the record');
    await bus.close();
    expect(loud).toEqual([]);
  });

  it("refuses a record the broker refuses, and logs the broker's reason, not only that producing failed", async () => {
    const warnings: string[] = [];
    const bus = await newBus({
      log: (level, message, fields) => {
        if (level === 'warn') warnings.push(`${message}: ${String(fields['error'])}`);
      },
    });
    const topic = unique('t');
    // Above the broker's message.max.bytes (1 MiB by default).
    await expect(bus.publish(topic, 'juliet@example.com', 'x'.repeat(1_500_000))).rejects.toThrow();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^publish failed: .*Producing messages failed.*<- .*larger than the max message size/s,
    );
    // The producer that failed is replaced; the next record goes through.
    await bus.publish(topic, 'juliet@example.com', 'fits');
  });

  it('rejects publish and subscribe after close', async () => {
    const bus = await newBus();
    await bus.close();
    await expect(bus.publish(unique('t'), 'k', 'v')).rejects.toThrow(/closed/);
    await expect(bus.subscribe(unique('t'), 'g', () => Promise.resolve())).rejects.toThrow(/closed/);
  });

  it('creates a missing topic with the configured partitions and stamps records with their publish time', async () => {
    const bus = await newBus({ partitions: 3 });
    const topic = unique('t');
    const before = Date.now();
    await bus.publish(topic, 'juliet@example.com', 'v', { traceparent: '00-abc-def-01' });
    const after = Date.now();

    const client = new Kafka({
      clientId: unique('check'),
      brokers: [...broker().brokers],
      logLevel: logLevel.NOTHING,
    });
    const admin = client.admin();
    const consumer = client.consumer({ groupId: unique('check') });
    try {
      await admin.connect();
      const metadata = await admin.fetchTopicMetadata({ topics: [topic] });
      expect(metadata.topics[0]?.partitions).toHaveLength(3);
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      const raw = deferred<{ timestamp: string; headers: string }>();
      await consumer.run({
        eachMessage: ({ message }) => {
          raw.resolve({ timestamp: message.timestamp, headers: String(message.headers?.['traceparent']) });
          return Promise.resolve();
        },
      });
      const { timestamp, headers } = await within(raw.promise, 10_000, 'the raw record');
      expect(Number(timestamp)).toBeGreaterThanOrEqual(before);
      expect(Number(timestamp)).toBeLessThanOrEqual(after);
      expect(headers).toBe('00-abc-def-01');
    } finally {
      await consumer.disconnect();
      await admin.disconnect();
    }
  });

  it('puts each key on the partition the Java client and kafkajs pick for it', async () => {
    // Seven partitions: a hash taken as unsigned rather than masked to 31 bits lands elsewhere for about
    // half the keys, where with a power of two it would not show. Processes of another client or version
    // must agree, or one key's records would be split over partitions during a rolling upgrade.
    const partitions = 7;
    const bus = await newBus({ partitions });
    const topic = unique('t');
    const keys = Array.from({ length: 200 }, (_, i) => `user${String(i)}@example.com`);
    await Promise.all(keys.map((key) => bus.publish(topic, key, 'v')));

    const client = new Kafka({
      clientId: unique('check'),
      brokers: [...broker().brokers],
      logLevel: logLevel.NOTHING,
    });
    const consumer = client.consumer({ groupId: unique('check') });
    const placed = new Map<string, number>();
    const all = deferred();
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        eachMessage: ({ partition, message }) => {
          placed.set(String(message.key), partition);
          if (placed.size === keys.length) all.resolve();
          return Promise.resolve();
        },
      });
      await within(all.promise, 20_000, 'every record');
    } finally {
      await consumer.disconnect();
    }
    const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({
      partitionId,
      leader: 1,
      partitionErrorCode: 0,
      replicas: [1],
      isr: [1],
    }));
    const javaCompatible = Partitioners.DefaultPartitioner();
    const expected = new Map(
      keys.map((key) => [key, javaCompatible({ topic, partitionMetadata, message: { key, value: 'v' } })]),
    );
    expect(placed).toEqual(expected);
  });

  it('starts from the oldest record left when retention deleted the records after its committed offset', async () => {
    const topic = unique('t');
    const group = unique('g');
    const key = unique('k');
    const bus = await newBus({ partitions: 1 });
    const first: string[] = [];
    const subscription = await bus.subscribe(topic, group, (record) => {
      first.push(record.value);
      return Promise.resolve();
    });
    for (const value of ['0', '1', '2']) await bus.publish(topic, key, value);
    await waitFor(() => first.length === 3, 10_000, 'the first records');
    // Closing commits offset 3.
    await subscription.close();
    for (const value of ['3', '4', '5', '6', '7']) await bus.publish(topic, key, value);
    const admin = new Kafka({
      clientId: unique('admin'),
      brokers: [...broker().brokers],
      logLevel: logLevel.NOTHING,
    }).admin();
    await admin.connect();
    try {
      await admin.fetchTopicMetadata({ topics: [topic] });
      // As retention would: the log now begins at offset 6, past the group's committed 3.
      await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '6' }] });
    } finally {
      await admin.disconnect();
    }
    const logged: string[] = [];
    const later = await newBus({ log: (_level, message) => logged.push(message) });
    const second: string[] = [];
    await later.subscribe(topic, group, (record) => {
      second.push(record.value);
      return Promise.resolve();
    });
    await waitFor(() => second.length >= 2, 15_000, 'the records left');
    expect(second).toEqual(['6', '7']);
    expect(logged).toContain('committed offsets no longer on the broker; starting from the oldest record');
  });

  it('hands the records of a member closed with a stuck handler to the next member, and only those', async () => {
    const topic = unique('t');
    const group = unique('g');
    const key = unique('k');
    const never = deferred();
    const stuck = deferred();
    const first: string[] = [];
    const crashing = await newBus({ closeTimeoutMs: 300 });
    await crashing.subscribe(topic, group, async (record) => {
      first.push(record.value);
      if (record.value === 'stuck') {
        stuck.resolve();
        await never.promise;
      }
    });
    for (const value of ['a', 'stuck', 'b']) await crashing.publish(topic, key, value);
    await within(stuck.promise, 10_000, 'the stuck handler');
    await crashing.close();
    expect(first).toEqual(['a', 'stuck']);

    const second: string[] = [];
    const next = await newBus();
    await next.subscribe(topic, group, (record) => {
      second.push(record.value);
      return Promise.resolve();
    });
    await waitFor(() => second.length >= 2, 15_000, 'the uncommitted records');
    // 'a' was handled and committed before the close; 'stuck' never finished, so it comes again.
    expect(second).toEqual(['stuck', 'b']);
    never.resolve();
  });

  it('runs the records of other keys of a partition while one key waits, and commits no further than that one', async () => {
    const bus = await newBus({ partitions: 1 });
    const topic = unique('t');
    const group = unique('g');
    const release = deferred();
    const handled: string[] = [];
    await bus.subscribe(topic, group, async (record) => {
      if (record.value === 'slow') await release.promise;
      handled.push(record.value);
    });
    for (const [key, value] of [
      ['romeo', 'slow'],
      ['juliet', 'juliet-1'],
      ['nurse', 'nurse-1'],
      ['romeo', 'romeo-2'],
    ] as const) {
      await bus.publish(topic, key, value);
    }

    await waitFor(() => handled.length === 2, 10_000, 'the records of the other keys');
    expect(handled).toEqual(['juliet-1', 'nurse-1']);
    const client = new Kafka({
      clientId: unique('check'),
      brokers: [...broker().brokers],
      logLevel: logLevel.NOTHING,
    });
    const admin = client.admin();
    await admin.connect();
    try {
      const committed = async (): Promise<string | undefined> => {
        const [offsets] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
        return offsets?.partitions[0]?.offset;
      };
      // Several commit intervals pass: the two finished records stay uncommitted behind the running one.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await committed()).toBe('-1');
      expect(handled).toEqual(['juliet-1', 'nurse-1']);

      release.resolve();
      await waitFor(() => handled.length === 4, 10_000, 'the rest of romeo');
      // One key's records keep their order.
      expect(handled.slice(2)).toEqual(['slow', 'romeo-2']);
      const deadline = Date.now() + 10_000;
      while ((await committed()) !== '4' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(await committed()).toBe('4');
    } finally {
      await admin.disconnect();
    }
  });

  it('replays the uncommitted records of a member whose process was killed', async () => {
    const topic = unique('t');
    const group = unique('g');
    const key = unique('k');
    const publisher = await newBus();
    // Waiting before the child joins: it handles (and may commit) this one, then blocks on the next.
    await publisher.publish(topic, key, 'a');
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        // Exits when its stdin closes: a test runner that dies takes the child along.
        `process.stdin.on('end', () => process.exit(1)).resume();
         const { KafkaStanzaBus } = await import(process.env.BUS_MODULE);
         const bus = await KafkaStanzaBus.create({
           brokers: JSON.parse(process.env.BROKERS), clientId: 'doomed', sessionTimeoutMs: 2000,
           heartbeatIntervalMs: 500, log: () => {},
         });
         await bus.subscribe(process.env.TOPIC, process.env.GROUP, async (record) => {
           process.stdout.write(JSON.stringify(record.value) + '\\n');
           if (record.value === 'stuck') await new Promise(() => {});
         });`,
      ],
      {
        cwd: root,
        stdio: ['pipe', 'pipe', 'inherit'],
        env: {
          ...process.env,
          BUS_MODULE: new URL('./kafka-stanza-bus.ts', import.meta.url).href,
          BROKERS: JSON.stringify(broker().brokers),
          TOPIC: topic,
          GROUP: group,
        },
      },
    );
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    try {
      const started: string[] = [];
      const reachedStuck = deferred();
      createInterface({ input: child.stdout }).on('line', (line) => {
        started.push(JSON.parse(line) as string);
        if (started.includes('stuck')) reachedStuck.resolve();
      });
      void exited.then(() => reachedStuck.reject(new Error(`the child exited early: ${started.join()}`)));
      await publisher.publish(topic, key, 'stuck');
      await publisher.publish(topic, key, 'b');
      await within(reachedStuck.promise, 30_000, 'the child to reach the stuck record');
      expect(started).toEqual(['a', 'stuck']);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }

    // The dead member never left: the group hands its partitions over once its session expired.
    const got: string[] = [];
    await publisher.subscribe(topic, group, (record) => {
      got.push(record.value);
      return Promise.resolve();
    });
    await waitFor(() => got.includes('b'), 20_000, 'the records of the killed member');
    // 'a' may come again too: its commit may not have left the killed process.
    expect(got.filter((value) => value !== 'a')).toEqual(['stuck', 'b']);
  });

  it('loses no acknowledged record and keeps per-key order across a broker crash and restart', async () => {
    const bus = await newBus({ sessionTimeoutMs: 3_000, heartbeatIntervalMs: 500 });
    const topic = unique('t');
    const keys = [...Array(8).keys()].map((i) => unique(`user${i}`));
    const perKey = 60;
    const seen = new Map<string, string[]>(keys.map((key) => [key, []]));
    const acknowledged = new Map<string, number[]>(keys.map((key) => [key, []]));
    await bus.subscribe(topic, unique('g'), (record) => {
      seen.get(record.key)?.push(record.value);
      return Promise.resolve();
    });
    let acked = 0;
    let rejected = 0;
    let ackedAtCrash = 0;
    let drill: Promise<void> | undefined;
    await Promise.all(
      keys.map(async (key) => {
        for (let i = 0; i < perKey; i++) {
          try {
            await bus.publish(topic, key, String(i));
            acknowledged.get(key)?.push(i);
            if (++acked === 80) {
              ackedAtCrash = acked;
              drill = broker()
                .kill()
                .then(() => broker().restart());
            }
          } catch {
            rejected++;
          }
        }
      }),
    );
    await drill;
    expect(ackedAtCrash).toBe(80);
    // Publishing went on across the crash: later records were acknowledged by the restarted broker.
    expect(acked).toBeGreaterThan(ackedAtCrash);
    expect(acked + rejected).toBe(keys.length * perKey);

    await Promise.all(keys.map((key) => bus.publish(topic, key, 'end')));
    await waitFor(
      () => keys.every((key) => seen.get(key)?.includes('end')),
      60_000,
      'every key after the restart',
    );
    for (const key of keys) {
      const order = firstSeen((seen.get(key) ?? []).filter((value) => value !== 'end'));
      expect(order).toEqual(ascending(order));
      expect(order).toEqual(expect.arrayContaining(acknowledged.get(key) ?? []));
    }
  }, 180_000);

  it('splits the partitions between two members and hands over those of a leaving member', async () => {
    const topic = unique('t');
    const group = unique('g');
    const publisher = await newBus();
    const got: { member: string; record: BusRecord }[] = [];
    const subscriptions = [];
    for (const member of ['A', 'B']) {
      const bus = await newBus();
      subscriptions.push(
        await bus.subscribe(topic, group, (record) => {
          got.push({ member, record });
          return Promise.resolve();
        }),
      );
    }
    const keys = [...Array(40).keys()].map((i) => unique(`k${i}`));
    await Promise.all(keys.map((key) => publisher.publish(topic, key, '0')));
    await waitFor(() => got.length >= keys.length, 10_000, 'the first round');
    const keysOfA = new Set(got.filter((g) => g.member === 'A').map((g) => g.record.key));
    // Keys spread over 8 partitions, 4 each: both members hold some.
    expect(keysOfA.size).toBeGreaterThan(0);
    expect(keysOfA.size).toBeLessThan(keys.length);
    expect(got).toHaveLength(keys.length);

    const rounds = 10;
    const publishing = Promise.all(
      keys.map(async (key) => {
        for (let i = 1; i <= rounds; i++) await publisher.publish(topic, key, String(i));
      }),
    );
    await subscriptions[0]?.close();
    const afterClose = got.length;
    await publishing;
    const valuesOf = (key: string): string[] =>
      got.filter((g) => g.record.key === key).map((g) => g.record.value);
    await waitFor(
      () => keys.every((key) => valuesOf(key).includes(String(rounds))),
      20_000,
      'every record after the hand-over',
    );
    expect(got.slice(afterClose).filter((g) => g.member === 'A')).toEqual([]);
    const handedOver = got.slice(afterClose).filter((g) => keysOfA.has(g.record.key));
    expect(handedOver.length).toBeGreaterThan(0);
    for (const key of keys) {
      const order = firstSeen(valuesOf(key));
      expect(order).toEqual([...Array(rounds + 1).keys()]);
    }
  }, 60_000);

  it('shares a group with a kafkajs consumer, as a rolling upgrade from releases that consumed through kafkajs has it', async () => {
    const topic = unique('t');
    const group = unique('g');
    const bus = await newBus();
    const got: { member: string; key: string }[] = [];
    await bus.subscribe(topic, group, (record) => {
      got.push({ member: 'bus', key: record.key });
      return Promise.resolve();
    });
    const earlier = new Kafka({
      clientId: unique('earlier'),
      brokers: [...broker().brokers],
      logLevel: logLevel.NOTHING,
    });
    const consumer = earlier.consumer({ groupId: group, sessionTimeout: 10_000, heartbeatInterval: 500 });
    let assigned: number[] = [];
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      assigned = event.payload.memberAssignment[topic] ?? [];
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        eachMessage: ({ message }) => {
          got.push({ member: 'kafkajs', key: message.key?.toString() ?? '' });
          return Promise.resolve();
        },
      });
      // Both joined one generation under kafkajs's protocol name: the earlier member holds half of 8.
      await waitFor(() => assigned.length === 4, 30_000, 'the kafkajs member in the group');
      const keys = [...Array(40).keys()].map((i) => unique(`k${i}`));
      await Promise.all(keys.map((key) => bus.publish(topic, key, 'v')));
      await waitFor(() => new Set(got.map((g) => g.key)).size === keys.length, 20_000, 'every record');
      expect(got.filter((g) => g.member === 'bus').length).toBeGreaterThan(0);
      expect(got.filter((g) => g.member === 'kafkajs').length).toBeGreaterThan(0);
    } finally {
      await consumer.disconnect();
    }
  }, 60_000);
});

describe('KafkaStanzaBus traces', () => {
  let recorder: SpanRecorder | undefined;

  beforeAll(async () => {
    recorder = await recordSpans();
  });

  afterAll(async () => {
    await recorder?.stop();
  });

  it('continues the publishing trace in the consumer, through W3C trace context and an ingress time in the headers', async () => {
    const spans = recorder!;
    const bus = await KafkaStanzaBus.create({
      brokers: broker().brokers,
      clientId: unique('bus'),
      log: quiet,
    });
    try {
      const topic = unique('t');
      const group = unique('g');
      const got = deferred<{ record: BusRecord; spanId: string | undefined }>();
      await bus.subscribe(topic, group, (record) => {
        got.resolve({ record, spanId: trace.getActiveSpan()?.spanContext().spanId });
        return Promise.resolve();
      });
      const before = Date.now();
      await inSpan('ingress', {}, () => bus.publish(topic, 'juliet@example.com', '<message/>'));
      const { record, spanId } = await within(got.promise, 20_000, 'the record');
      const name = `process ${topic}`;
      await waitFor(
        async () => (await spans.spans()).some((s) => s.name === name),
        5_000,
        'the consumer span',
      );

      const ingress = await spans.one('ingress');
      const send = await spans.one(`send ${topic}`);
      const process = await spans.one(name);
      const traceId = ingress.spanContext().traceId;
      expect(send.kind).toBe(SpanKind.PRODUCER);
      expect(send.spanContext().traceId).toBe(traceId);
      expect(send.parentSpanContext?.spanId).toBe(ingress.spanContext().spanId);
      expect(send.attributes).toEqual({
        'messaging.system': 'kafka',
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'send',
        'messaging.destination.name': topic,
        'messaging.message.body.size': 10,
      });
      expect(process.kind).toBe(SpanKind.CONSUMER);
      expect(process.spanContext().traceId).toBe(traceId);
      expect(process.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
      expect(process.attributes).toEqual({
        'messaging.system': 'kafka',
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.destination.name': topic,
        'messaging.consumer.group.name': group,
        'messaging.destination.partition.id': expect.stringMatching(/^\d+$/) as unknown,
        'messaging.kafka.offset': 0,
      });
      // The key is a bare JID: personal data stays out of spans.
      expect(JSON.stringify([send.attributes, process.attributes])).not.toContain('@');

      expect(spanId).toBe(process.spanContext().spanId);
      expect(record.headers['traceparent']).toBe(`00-${traceId}-${send.spanContext().spanId}-01`);
      const ingressTime = Number(record.headers[INGRESS_HEADER]);
      expect(ingressTime).toBeGreaterThanOrEqual(before);
      expect(ingressTime).toBeLessThanOrEqual(Date.now());
    } finally {
      await bus.close();
    }
  });
});
