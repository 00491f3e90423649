// ARCHITECTURE guarantees 1, 2 and 6: publishes issued in arrival order, not awaited one by one, but bounded.
import { SpanKind } from '@opentelemetry/api';
import { busPublishSeconds } from '@starling/core';
import type { StanzaBus } from '@starling/ports';
import { ATTR_MESSAGING_DESTINATION_NAME, INGRESS_HEADER, inSpan } from '@starling/telemetry';
import type { IngressBudget } from './ingress-budget.ts';

/** Tells whether a connection should stop or restart reading. */
export type PressureListener = (pressure: number) => void;

/**
 * Tracks one connection's unconfirmed publishes. Each publish is issued at once (the bus keeps per-key
 * order), and the listener hears the count so the connection can pause reading while it is high. This is
 * where a stanza enters Starling: its trace starts here, and its record carries the ingress time.
 */
export class PublishWindow {
  private readonly bus: StanzaBus;
  private readonly budget: IngressBudget;
  private readonly onChange: PressureListener;
  private inflightCount = 0;
  private readonly settled = new Set<Promise<void>>();

  /** `budget` is shared by every connection of the edge; this window counts its publishes there too. */
  constructor(bus: StanzaBus, budget: IngressBudget, onChange: PressureListener) {
    this.bus = bus;
    this.budget = budget;
    this.onChange = onChange;
  }

  get inflight(): number {
    return this.inflightCount;
  }

  /**
   * Issues the publish now; the returned promise settles when the bus confirmed or refused it. `what`
   * (the stanza's element name, or 'session-end') names the ingress span: `xmpp.ingress <what>`.
   */
  publish(topic: string, key: string, value: string, what?: string): Promise<void> {
    this.inflightCount += 1;
    this.budget.take();
    this.onChange(this.inflightCount);
    const timer = busPublishSeconds.labels(topic).startTimer();
    const headers = { [INGRESS_HEADER]: String(Date.now()) };
    // The span ends when the bus confirmed the record: the part of a stanza's path the client waits on.
    const result = inSpan(
      what === undefined ? 'xmpp.ingress' : `xmpp.ingress ${what}`,
      { kind: SpanKind.SERVER, attributes: { [ATTR_MESSAGING_DESTINATION_NAME]: topic } },
      () => this.bus.publish(topic, key, value, headers),
    );
    const done: Promise<void> = result.then(
      () => {
        timer();
        this.release(done);
      },
      () => this.release(done),
    );
    this.settled.add(done);
    return result;
  }

  /** Resolves when every publish issued so far has settled. */
  async drain(): Promise<void> {
    await Promise.all([...this.settled]);
  }

  private release(done: Promise<void>): void {
    this.settled.delete(done);
    this.inflightCount -= 1;
    this.budget.give();
    this.onChange(this.inflightCount);
  }
}
