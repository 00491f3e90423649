// One client stream on a scripted transport: flow control against the bus and failures inside handlers.
import { createSecureContext } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry } from '@starling/adapters';
import { parseConfig, silentLogger, type RoleDeps } from '@starling/core';
import type { Account, StanzaBus, Store } from '@starling/ports';
import { deriveAllScramKeys, NS_BIND, NS_SASL } from '@starling/xmpp';
import { ClientStream } from './client-stream.ts';
import type { EdgeContext } from './edge-context.ts';
import { IngressBudget } from './ingress-budget.ts';
import { LoginThrottle } from './login-throttle.ts';
import { testCertificate } from './test-cert.ts';
import type { Transport, TransportEvents } from './transport.ts';

/** A transport that is fed by the test and records what the stream writes and asks for. */
class ScriptedTransport implements Transport {
  readonly framing = 'stream';
  readonly remoteAddress = '192.0.2.7';
  readonly secure = true;
  readonly canStartTls = false;
  readonly sent: string[] = [];
  paused = false;
  pauses = 0;
  resumes = 0;
  ended = false;
  private events: TransportEvents | undefined;
  private watchers: (() => void)[] = [];

  listen(events: TransportEvents): void {
    this.events = events;
  }

  feed(text: string): void {
    this.events?.data(Buffer.from(text, 'utf8'));
  }

  send(text: string): void {
    this.sent.push(text);
    this.notify();
  }

  pause(): void {
    this.paused = true;
    this.pauses += 1;
    this.notify();
  }

  resume(): void {
    this.paused = false;
    this.resumes += 1;
    this.notify();
  }

  discardInput(): void {
    throw new Error('not expected');
  }

  startTls(): void {
    throw new Error('not expected');
  }

  end(): void {
    this.ended = true;
    this.notify();
    this.events?.closed();
  }

  /** Resolves once `condition` holds, re-checked after every write, pause, resume or end. */
  until(condition: () => boolean): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (condition()) resolve();
        else this.watchers.push(check);
      };
      check();
    });
  }

  async expectSent(pattern: RegExp): Promise<void> {
    await this.until(() => this.sent.some((text) => pattern.test(text)));
  }

  private notify(): void {
    const watchers = this.watchers;
    this.watchers = [];
    for (const watcher of watchers) watcher();
  }
}

/** A bus that holds every publish until released. */
class HeldBus implements StanzaBus {
  readonly values: string[] = [];
  private holding = true;
  private held: (() => void)[] = [];
  private onPublish: (() => void) | undefined;

  publish(_topic: string, _key: string, value: string): Promise<void> {
    this.values.push(value);
    this.onPublish?.();
    if (!this.holding) return Promise.resolve();
    return new Promise((resolve) => this.held.push(resolve));
  }

  untilPublished(count: number): Promise<void> {
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.values.length >= count) resolve();
      };
      this.onPublish = check;
      check();
    });
  }

  release(): void {
    this.holding = false;
    for (const go of this.held.splice(0)) go();
  }

  subscribe(): ReturnType<StanzaBus['subscribe']> {
    return Promise.resolve({ close: () => Promise.resolve() });
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** Session table whose writes fail, standing in for any bug inside a handler. */
class BrokenSessions<K, V> extends Map<K, V> {
  override set(): this {
    throw new Error('broken session table');
  }
}

let account: Account;
let context: (bus: StanzaBus, sessions?: EdgeContext['sessions'], ingress?: IngressBudget) => EdgeContext;

beforeAll(async () => {
  const config = parseConfig({ domain: 'localhost' });
  account = { username: 'juliet', scram: await deriveAllScramKeys('secret', 4096), createdAt: 0 };
  const store = {
    accounts: { get: (name: string) => Promise.resolve(name === 'juliet' ? account : undefined) },
  };
  const cert = await testCertificate();
  context = (bus, sessions = new Map(), ingress = new IngressBudget(10_000)) => {
    const deps: RoleDeps = {
      config,
      bus,
      registry: new MemorySessionRegistry(),
      store: store as unknown as Store,
      delivery: new LocalDelivery(),
      log: silentLogger(),
      features: [],
    };
    return {
      deps,
      edgeId: 'edge-unit',
      domain: 'localhost',
      secureContext: createSecureContext(cert),
      throttle: new LoginThrottle(config.auth),
      caps: undefined,
      sasl: {
        accounts: store.accounts,
        domain: 'localhost',
        iterations: 4096,
        fakeSaltKey: Buffer.alloc(32),
      },
      sessions,
      ingress,
    };
  };
});

const HEADER =
  "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

async function authenticatedStream(
  bus: StanzaBus,
  sessions?: EdgeContext['sessions'],
  ingress?: IngressBudget,
): Promise<{ stream: ClientStream; transport: ScriptedTransport }> {
  const transport = new ScriptedTransport();
  const stream = new ClientStream(context(bus, sessions, ingress), transport, silentLogger());
  stream.start();
  transport.feed(HEADER);
  await transport.expectSent(/<stream:features>/);
  const plain = Buffer.from('\0juliet\0secret').toString('base64');
  transport.feed(`<auth xmlns='${NS_SASL}' mechanism='PLAIN'>${plain}</auth>`);
  await transport.expectSent(/<success/);
  transport.feed(HEADER);
  await transport.expectSent(/<bind /);
  return { stream, transport };
}

async function boundStream(
  bus: StanzaBus,
  ingress?: IngressBudget,
): Promise<{ stream: ClientStream; transport: ScriptedTransport }> {
  const bound = await authenticatedStream(bus, undefined, ingress);
  bound.transport.feed(`<iq type='set' id='b'><bind xmlns='${NS_BIND}'><resource>r</resource></bind></iq>`);
  await bound.transport.expectSent(/<jid>juliet@localhost\/r<\/jid>/);
  return bound;
}

describe('ClientStream flow control', () => {
  it('pauses reading while too many publishes are unconfirmed, and resumes when they are', async () => {
    const bus = new HeldBus();
    const { stream, transport } = await boundStream(bus);
    const messages = Array.from({ length: 300 }, (_, i) => `<message to='romeo@localhost' id='m${i}'/>`);
    transport.feed(messages.join(''));
    await bus.untilPublished(300);
    expect(transport.paused).toBe(true);
    expect(bus.values.map((value) => /id=\\?"(m\d+)/.exec(value)?.[1])).toEqual(
      messages.map((_, i) => `m${i}`),
    );
    bus.release();
    await transport.until(() => !transport.paused);
    expect(transport.pauses).toBe(1);
    transport.feed('</stream:stream>');
    await stream.finished;
  });

  it('stops reading every connection of the edge while the edge as a whole has too many unconfirmed', async () => {
    const bus = new HeldBus();
    const ingress = new IngressBudget(10);
    const first = await boundStream(bus, ingress);
    const second = await boundStream(bus, ingress);
    const third = await boundStream(bus, ingress);
    // Ten publishes from one connection, far below its own window, use up the edge's budget.
    first.transport.feed(
      Array.from({ length: 10 }, (_, i) => `<message to='romeo@localhost' id='a${i}'/>`).join(''),
    );
    await bus.untilPublished(10);
    await first.transport.until(() => first.transport.paused);
    expect(ingress.unconfirmed).toBe(10);
    // Another connection stops at its next stanza, which still goes out: nothing read is dropped.
    second.transport.feed(`<message to='romeo@localhost' id='b0'/>`);
    await bus.untilPublished(11);
    await second.transport.until(() => second.transport.paused);
    // A connection that goes away while it waits is not called back.
    third.transport.feed(`<message to='romeo@localhost' id='c0'/>`);
    await bus.untilPublished(12);
    await third.transport.until(() => third.transport.paused);
    third.transport.feed('</stream:stream>');
    await third.transport.until(() => third.transport.ended);
    const thirdResumes = third.transport.resumes;

    bus.release();
    await first.transport.until(() => !first.transport.paused);
    await second.transport.until(() => !second.transport.paused);
    expect(ingress.unconfirmed).toBe(0);
    expect([first.transport.pauses, second.transport.pauses]).toEqual([1, 1]);
    expect(third.transport.resumes).toBe(thirdResumes);
    for (const { stream, transport } of [first, second]) {
      transport.feed('</stream:stream>');
      await stream.finished;
    }
    await third.stream.finished;
  });
});

describe('ClientStream failures', () => {
  it('ends only the failing stream with internal-server-error when a handler throws', async () => {
    const { stream, transport } = await authenticatedStream(new HeldBus(), new BrokenSessions());
    transport.feed(`<iq type='set' id='b'><bind xmlns='${NS_BIND}'/></iq>`);
    await transport.until(() => transport.ended);
    expect(transport.sent.join('')).toMatch(/<stream:error><internal-server-error [^>]*\/><\/stream:error>/);
    await stream.finished;
  });
});
