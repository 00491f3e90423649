// `npm run bench:kafka-clients`: what a record costs a process that publishes and consumes it through
// Kafka, by client: kafkajs, @platformatic/kafka, either one's producer with the other's consumer, and
// Starling's own Kafka StanzaBus. One broker (started fresh, loopback, its JVM as deployed), one topic of
// 8 partitions per run; each run is a child process that publishes at a fixed rate, in requests every
// 5 ms (idempotent, acks=all, one request in flight) and consumes in a group of its own, committing every
// 100 ms. It reports its CPU per record, the broker's CPU, and publish-to-delivery latency. Runs of the
// clients interleave.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import {
  Consumer,
  Producer,
  compatibilityPartitioner,
  stringDeserializers,
  stringSerializers,
} from '@platformatic/kafka';
import { Kafka, logLevel } from 'kafkajs';
import { sampleProcess } from './proc.ts';
import { wholeNumber } from './args.ts';

const USAGE = `Usage: npm run bench:kafka-clients -- [--rate N] [--seconds N] [--rounds N] [--clients LIST]
  --rate N        records per second (default 2000)
  --seconds N     publishing time per run, the first 3 s not measured (default 15)
  --rounds N      runs of each client, interleaved (default 2)
  --clients LIST  producer/consumer pairs of kafkajs and platformatic, or bus (default:
                  kafkajs/kafkajs,platformatic/platformatic,platformatic/kafkajs,kafkajs/platformatic,bus)`;
const CLIENTS = ['kafkajs', 'platformatic'] as const;
type Client = (typeof CLIENTS)[number];
const PARTITIONS = 8;
const KEYS = 1000;
const TICK_MS = 5;
const WARMUP_S = 3;
/** After publishing stops, records still on their way get this long. */
const DRAIN_MS = 10_000;
const COMMIT_MS = 100;
/** About a chat message's envelope. */
const PADDING = 'x'.repeat(560);
const HEADERS = { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' };

interface Record_ {
  readonly key: string;
  readonly value: string;
}

interface Ends {
  send(batch: readonly Record_[]): Promise<unknown>;
  stop(): Promise<void>;
}

/** Producer and consumer of one pair; `deliver` gets each consumed value. */
async function open(
  pair: string,
  broker: string,
  topic: string,
  deliver: (value: string) => void,
): Promise<Ends> {
  if (pair === 'bus') {
    const { KafkaStanzaBus } = await import('../../libs/adapters/src/kafka-stanza-bus.ts');
    const bus = await KafkaStanzaBus.create({ brokers: [broker], clientId: 'bench', partitions: PARTITIONS });
    const subscription = await bus.subscribe(topic, `bench-${topic}`, (record) => {
      deliver(record.value);
      return Promise.resolve();
    });
    return {
      send: (batch) => Promise.all(batch.map((r) => bus.publish(topic, r.key, r.value, HEADERS))),
      stop: async () => {
        await subscription.close();
        await bus.close();
      },
    };
  }
  const [producerClient, consumerClient] = pair.split('/') as [Client, Client];
  const kafka = new Kafka({ clientId: 'bench', brokers: [broker], logLevel: logLevel.ERROR });
  const stops: (() => Promise<void>)[] = [];
  let send: Ends['send'];
  if (consumerClient === 'kafkajs') {
    const consumer = kafka.consumer({ groupId: `bench-${topic}`, maxWaitTimeInMs: 10, minBytes: 32 * 1024 });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommitInterval: COMMIT_MS,
      eachBatch: async (payload) => {
        for (const message of payload.batch.messages) {
          deliver(message.value?.toString() ?? '');
          payload.resolveOffset(message.offset);
        }
        await payload.heartbeat();
      },
    });
    stops.push(() => consumer.disconnect());
  } else {
    const consumer = new Consumer({
      clientId: 'bench',
      groupId: `bench-${topic}`,
      bootstrapBrokers: [broker],
      deserializers: stringDeserializers,
      maxWaitTime: 10,
      minBytes: 32 * 1024,
    });
    const stream = await consumer.consume({ topics: [topic], mode: 'earliest', autocommit: COMMIT_MS });
    stream.on('data', (message) => deliver(message.value));
    stops.push(async () => {
      await stream.close();
      await consumer.close();
    });
  }
  if (producerClient === 'kafkajs') {
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    send = (batch) =>
      producer.sendBatch({
        acks: -1,
        topicMessages: [{ topic, messages: batch.map((r) => ({ ...r, headers: HEADERS })) }],
      });
    stops.push(() => producer.disconnect());
  } else {
    const producer = new Producer({
      clientId: 'bench',
      bootstrapBrokers: [broker],
      serializers: stringSerializers,
      idempotent: true,
      acks: -1,
      partitioner: compatibilityPartitioner,
    });
    send = (batch) => producer.send({ messages: batch.map((r) => ({ topic, ...r, headers: HEADERS })) });
    stops.push(() => producer.close());
  }
  return {
    send,
    stop: async () => {
      for (const stop of stops) await stop();
    },
  };
}

/** One run, in a child process: prints WINDOW lines around the measured part, then a JSON result. */
async function run(
  pair: string,
  broker: string,
  topic: string,
  rate: number,
  seconds: number,
): Promise<void> {
  const latencies: number[] = [];
  let received = 0;
  let measuring = false;
  const ends = await open(pair, broker, topic, (value) => {
    received++;
    if (measuring) latencies.push(Date.now() - Number(value.slice(0, 13)));
  });
  const total = rate * seconds;
  const perTick = Math.max(1, Math.round((rate * TICK_MS) / 1000));
  const queued: Record_[] = [];
  let sending = false;
  let failures = 0;
  const pump = async (): Promise<void> => {
    sending = true;
    while (queued.length > 0) {
      const batch = queued.splice(0, 1000);
      await ends.send(batch).catch(() => (failures += batch.length));
    }
    sending = false;
  };
  let sent = 0;
  let cpu = process.cpuUsage();
  let receivedBefore = 0;
  let started = 0;
  await new Promise<void>((done) => {
    const timer = setInterval(() => {
      if (sent >= total) {
        clearInterval(timer);
        done();
        return;
      }
      for (let i = 0; i < perTick && sent < total; i++, sent++) {
        queued.push({ key: `u${String(sent % KEYS)}`, value: `${String(Date.now())}${PADDING}` });
      }
      if (!measuring && sent >= rate * WARMUP_S) {
        measuring = true;
        cpu = process.cpuUsage();
        receivedBefore = received;
        started = performance.now();
        console.log('WINDOW START');
      }
      if (!sending) void pump();
    }, TICK_MS);
  });
  const deadline = Date.now() + DRAIN_MS;
  while (received < total && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  const used = process.cpuUsage(cpu);
  const wallS = (performance.now() - started) / 1000;
  console.log('WINDOW END');
  latencies.sort((a, b) => a - b);
  const at = (q: number): number =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  const n = received - receivedBefore;
  console.log(
    JSON.stringify({
      received,
      total,
      failures,
      usPerRecord: (used.user + used.system) / n,
      wallS,
      p50: at(0.5),
      p99: at(0.99),
      max: latencies.at(-1),
    }),
  );
  await ends.stop();
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      rate: { type: 'string' },
      seconds: { type: 'string' },
      rounds: { type: 'string' },
      clients: { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (positionals[0] === 'run') {
    const [, pair, broker, topic, rate, seconds] = positionals;
    await run(pair ?? '', broker ?? '', topic ?? '', Number(rate), Number(seconds));
    return;
  }
  if (values.help === true) {
    console.log(USAGE);
    return;
  }
  const rate = wholeNumber(values.rate, 2000, 'rate');
  const seconds = wholeNumber(values.seconds, 15, 'seconds');
  if (seconds <= WARMUP_S) throw new Error(`--seconds must be above the ${String(WARMUP_S)} s warm-up`);
  const rounds = wholeNumber(values.rounds, 2, 'rounds');
  const pairs = (
    values.clients ??
    'kafkajs/kafkajs,platformatic/platformatic,platformatic/kafkajs,kafkajs/platformatic,bus'
  ).split(',');
  for (const pair of pairs) {
    const parts = pair.split('/');
    if (
      pair !== 'bus' &&
      !(parts.length === 2 && parts.every((p) => (CLIENTS as readonly string[]).includes(p)))
    )
      throw new Error(`--clients: "${pair}" is neither bus nor producer/consumer of ${CLIENTS.join(', ')}`);
  }

  const { startKafka } = await import('../../deploy/local/kafka.ts');
  const kafka = await startKafka({ partitions: PARTITIONS, jvm: 'server' });
  const broker = kafka.brokers[0] ?? '';
  const admin = new Kafka({ clientId: 'bench-admin', brokers: [broker], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  console.log(
    `${String(rate)} records/s for ${String(seconds)} s (${String(WARMUP_S)} s not measured), ${String(rounds)} rounds`,
  );
  console.log('client (producer/consumer)      µs/record  broker %core  p50 ms  p99 ms  max ms  delivered');
  try {
    for (let round = 0; round < rounds; round++) {
      for (const pair of pairs) {
        const topic = `bench-${pair.replace('/', '-')}-${String(round)}`;
        await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS }], waitForLeaders: true });
        const child = spawn(
          process.execPath,
          [
            ...process.execArgv,
            process.argv[1] ?? '',
            'run',
            pair,
            broker,
            topic,
            String(rate),
            String(seconds),
          ],
          { stdio: ['ignore', 'pipe', 'inherit'] },
        );
        let brokerCpu = 0;
        let brokerFrom = 0;
        let result: Record<string, number> | undefined;
        for await (const line of createInterface({ input: child.stdout })) {
          if (line === 'WINDOW START') {
            brokerCpu = sampleProcess(kafka.pid)?.cpuSeconds ?? NaN;
            brokerFrom = performance.now();
          } else if (line === 'WINDOW END') {
            const seconds = (performance.now() - brokerFrom) / 1000;
            brokerCpu = ((sampleProcess(kafka.pid)?.cpuSeconds ?? NaN) - brokerCpu) / seconds;
          } else if (line.startsWith('{')) {
            result = JSON.parse(line) as Record<string, number>;
          }
        }
        if (result === undefined) throw new Error(`the ${pair} run printed no result`);
        const f = (n: number | undefined, digits = 0): string => (n ?? NaN).toFixed(digits);
        console.log(
          `${pair.padEnd(30)} ${f(result['usPerRecord'], 1).padStart(10)} ${f(brokerCpu * 100).padStart(13)}` +
            ` ${f(result['p50']).padStart(7)} ${f(result['p99']).padStart(7)} ${f(result['max']).padStart(7)}` +
            `  ${f(result['received'])}/${f(result['total'])}${result['failures'] ? ` (${f(result['failures'])} failed)` : ''}`,
        );
      }
    }
  } finally {
    await admin.disconnect();
    await kafka.stop();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:kafka-clients: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 2;
});
