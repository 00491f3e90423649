// Delivery by function call (embedded shape): router and presence reach the edge in the same process.
import type {
  Delivery,
  DeliveryEndpoint,
  DeliveryPayload,
  DeliveryReceiver,
  DeliveryTarget,
} from '@starling/ports';

/** The embedded Delivery: `deliver` calls the receiver registered for the target's edge id. */
export class LocalDelivery implements Delivery {
  readonly #receivers = new Map<string, DeliveryReceiver>();

  async deliver(target: DeliveryTarget, payload: DeliveryPayload): Promise<boolean> {
    const receiver = this.#receivers.get(target.edgeId);
    // Awaited so that a receiver throwing synchronously still yields a rejection.
    return receiver ? await receiver(target, payload) : false;
  }

  listen(edgeId: string, receiver: DeliveryReceiver): Promise<DeliveryEndpoint> {
    // Two receivers for one edge id would be a wiring mistake that silently steals sessions.
    if (this.#receivers.has(edgeId)) {
      return Promise.reject(new Error(`delivery: edge ${edgeId} already has a receiver`));
    }
    this.#receivers.set(edgeId, receiver);
    return Promise.resolve({
      address: '',
      close: () => {
        if (this.#receivers.get(edgeId) === receiver) this.#receivers.delete(edgeId);
        return Promise.resolve();
      },
    });
  }

  close(): Promise<void> {
    this.#receivers.clear();
    return Promise.resolve();
  }
}
