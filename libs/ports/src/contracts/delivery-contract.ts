// Delivery contract: the promises of the port's TSDoc, run against every adapter (function call, gRPC).
import { afterEach, describe, expect, it } from 'vitest';
import type { Delivery, DeliveryPayload, DeliveryTarget } from '../delivery.ts';
import { unique } from './support.ts';

interface Call {
  readonly target: DeliveryTarget;
  readonly payload: DeliveryPayload;
}

/**
 * Registers the Delivery contract tests. `create` opens a Delivery per test that can both listen for an
 * edge and deliver to it; the suite closes it. Edge ids are unique per test.
 */
export function describeDeliveryContract(name: string, create: () => Promise<Delivery>): void {
  describe(`Delivery contract: ${name}`, () => {
    let open: Delivery[] = [];

    async function newDelivery(): Promise<Delivery> {
      const delivery = await create();
      open.push(delivery);
      return delivery;
    }

    afterEach(async () => {
      const pending = open;
      open = [];
      await Promise.all(pending.map((d) => d.close()));
    });

    function target(edgeId: string): DeliveryTarget {
      return { edgeId, sessionId: unique('s'), jid: `${unique('juliet')}@example.com/balcony` };
    }

    it('delivers stanzas and close commands to the receiver of the edge', async () => {
      const delivery = await newDelivery();
      const edgeId = unique('edge');
      const calls: Call[] = [];
      await delivery.listen(edgeId, (t, payload) => {
        calls.push({ target: t, payload });
        return Promise.resolve(true);
      });
      const to = target(edgeId);
      const stanza: DeliveryPayload = {
        kind: 'stanza',
        xml: '<message><body>ich liebe dich ♥</body></message>',
      };
      const conflict: DeliveryPayload = {
        kind: 'close',
        condition: 'conflict',
        text: 'Replaced by new connection',
      };
      const shutdown: DeliveryPayload = { kind: 'close', condition: 'system-shutdown' };
      expect(await delivery.deliver(to, stanza)).toBe(true);
      expect(await delivery.deliver(to, conflict)).toBe(true);
      expect(await delivery.deliver(to, shutdown)).toBe(true);
      expect(calls).toEqual([
        { target: to, payload: stanza },
        { target: to, payload: conflict },
        { target: to, payload: shutdown },
      ]);
      expect(calls[2]?.payload).not.toHaveProperty('text');
    });

    it('reaches the receiver of the addressed edge only', async () => {
      const delivery = await newDelivery();
      const [edgeA, edgeB] = [unique('edge-a'), unique('edge-b')];
      const seen: string[] = [];
      for (const edgeId of [edgeA, edgeB]) {
        await delivery.listen(edgeId, (t) => {
          seen.push(`${edgeId}:${t.edgeId}`);
          return Promise.resolve(true);
        });
      }
      expect(await delivery.deliver(target(edgeB), { kind: 'stanza', xml: '<presence/>' })).toBe(true);
      expect(seen).toEqual([`${edgeB}:${edgeB}`]);
    });

    it('resolves false for an edge nobody listens for', async () => {
      const delivery = await newDelivery();
      expect(await delivery.deliver(target(unique('gone')), { kind: 'stanza', xml: '<message/>' })).toBe(
        false,
      );
    });

    it('resolves false when the receiver does not hold the session', async () => {
      const delivery = await newDelivery();
      const edgeId = unique('edge');
      await delivery.listen(edgeId, () => Promise.resolve(false));
      expect(await delivery.deliver(target(edgeId), { kind: 'stanza', xml: '<message/>' })).toBe(false);
    });

    it('stops delivering to an edge whose listener closed', async () => {
      const delivery = await newDelivery();
      const edgeId = unique('edge');
      let calls = 0;
      const listener = await delivery.listen(edgeId, () => {
        calls++;
        return Promise.resolve(true);
      });
      expect(await delivery.deliver(target(edgeId), { kind: 'stanza', xml: '<iq/>' })).toBe(true);
      await listener.close();
      expect(await delivery.deliver(target(edgeId), { kind: 'stanza', xml: '<iq/>' })).toBe(false);
      expect(calls).toBe(1);
    });
  });
}
