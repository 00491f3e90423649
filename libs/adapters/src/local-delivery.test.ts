// Delivery by function call: the port contract, plus the wiring checks of the embedded adapter.
import { describeDeliveryContract } from '@starling/ports/contracts';
import { describe, expect, it } from 'vitest';
import { LocalDelivery } from './local-delivery.ts';

describeDeliveryContract('LocalDelivery', () => Promise.resolve(new LocalDelivery()));

describe('LocalDelivery', () => {
  const target = { edgeId: 'edge-1', sessionId: 's1', jid: 'juliet@example.com/balcony' };

  it('refuses a second receiver for the same edge', async () => {
    const delivery = new LocalDelivery();
    await delivery.listen('edge-1', () => Promise.resolve(true));
    await expect(delivery.listen('edge-1', () => Promise.resolve(true))).rejects.toThrow(/already/);
  });

  it('closing an old listener leaves a newer receiver of the edge in place', async () => {
    const delivery = new LocalDelivery();
    const old = await delivery.listen('edge-1', () => Promise.resolve(true));
    await old.close();
    const seen: string[] = [];
    await delivery.listen('edge-1', (t) => {
      seen.push(t.sessionId);
      return Promise.resolve(true);
    });
    await old.close();
    expect(await delivery.deliver(target, { kind: 'stanza', xml: '<message/>' })).toBe(true);
    expect(seen).toEqual(['s1']);
  });

  it('delivers nothing after close', async () => {
    const delivery = new LocalDelivery();
    await delivery.listen('edge-1', () => Promise.resolve(true));
    await delivery.close();
    expect(await delivery.deliver(target, { kind: 'stanza', xml: '<message/>' })).toBe(false);
  });

  it('turns a receiver that throws into a rejection', async () => {
    const delivery = new LocalDelivery();
    await delivery.listen('edge-1', () => {
      throw new Error('receiver broke');
    });
    await expect(delivery.deliver(target, { kind: 'stanza', xml: '<message/>' })).rejects.toThrow(
      'receiver broke',
    );
  });
});
