// `npm run bench:serialize`: what turning a stanza into text costs, with ltx's `toString()` and with
// Starling's `serialize()`, which the per-stanza paths use (the edge's publish, the router's delivery, the
// archive's copy). The stanza is a chat message as delivered: a 64-character body and a stanza-id. Rounds
// alternate the two; each result is read to its middle, which flattens it as a socket write would.
import { parseArgs } from 'node:util';
import { parseTrusted, serialize, type Element } from '@starling/xmpp';
import { wholeNumber } from './args.ts';

const USAGE = `Usage: npm run bench:serialize -- [--count N] [--rounds N]
  --count N   serializations per round and way (default 200000)
  --rounds N  rounds of each way, alternating (default 5)`;

const MESSAGE = parseTrusted(
  `<message xmlns='jabber:client' to='user0123@bench.example' from='user0124@bench.example/bench' ` +
    `type='chat' id='m-1700000000000-42'><body>${'x'.repeat(64)}</body>` +
    `<stanza-id xmlns='urn:xmpp:sid:0' by='user0123@bench.example' id='0b3f6e2c-1d2a-4c3e-9f0a-1234567890ab'/>` +
    `</message>`,
);

/** Nanoseconds per serialization of `count`. */
function time(way: (el: Element) => string, count: number): number {
  let sink = 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < count; i++) {
    const text = way(MESSAGE);
    sink += text.charCodeAt(text.length >> 1);
  }
  const ns = Number(process.hrtime.bigint() - started) / count;
  if (sink === 0) throw new Error('nothing serialized');
  return ns;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function main(): void {
  const { values } = parseArgs({
    options: { count: { type: 'string' }, rounds: { type: 'string' }, help: { type: 'boolean' } },
  });
  if (values.help === true) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const count = wholeNumber(values.count, 200_000, 'count');
  const rounds = wholeNumber(values.rounds, 5, 'rounds');
  if (serialize(MESSAGE) !== MESSAGE.toString()) throw new Error('serialize() and ltx differ');
  const ways = { 'ltx toString()': (el: Element) => el.toString(), 'serialize()': serialize };
  const figures = new Map<string, number[]>(Object.keys(ways).map((name) => [name, []]));
  // A first round of each, unmeasured, for the compiler.
  for (const way of Object.values(ways)) time(way, count);
  for (let round = 0; round < rounds; round++) {
    for (const [name, way] of Object.entries(ways)) figures.get(name)?.push(time(way, count));
  }
  process.stdout.write(
    `Node.js ${process.version}, a ${MESSAGE.toString().length}-character chat message, ${rounds} rounds of ${count}\n`,
  );
  for (const [name, ns] of figures) {
    process.stdout.write(
      `  ${name.padEnd(16)} ${median(ns).toFixed(0)} ns (median; ${ns.map((n) => n.toFixed(0)).join(', ')})\n`,
    );
  }
}

try {
  main();
} catch (err: unknown) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
