// The local Kafka broker: a port taken between finding it free and the broker's bind costs a new start,
// not the caller's run.
import { createServer, type Server } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from './free-port.ts';
import { startKafka, type RunningKafka } from './kafka.ts';

let kafka: RunningKafka | undefined;
let occupier: Server | undefined;

afterAll(async () => {
  occupier?.close();
  // A broker stops within 20 s of SIGTERM, or is killed then.
  await kafka?.stop();
}, 60_000);

describe('startKafka', () => {
  it('starts again on other ports when one it was given is taken by the time the broker binds it', async () => {
    occupier = createServer();
    await new Promise<void>((resolve) => occupier!.listen(0, '127.0.0.1', resolve));
    const taken = (occupier.address() as { port: number }).port;
    const picked: number[] = [];
    kafka = await startKafka({
      partitions: 1,
      pickPort: async () => {
        const port = picked.length === 0 ? taken : await freePort();
        picked.push(port);
        return port;
      },
    });
    expect(picked[0]).toBe(taken);
    // Two ports for the start that lost the race, two more for the one that won.
    expect(picked.length).toBeGreaterThanOrEqual(4);
    expect(kafka.brokers).not.toContain(`127.0.0.1:${taken}`);
    expect(kafka.brokers).toEqual([`127.0.0.1:${picked[2]}`]);
  }, 180_000);
});
