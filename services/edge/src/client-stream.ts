// RFC 6120 §4-§8 and RFC 7395: one client stream, from the header through TLS, SASL and binding to its end.
import { randomBytes, randomUUID } from 'node:crypto';
import {
  encodeEnvelope,
  encodeStanzaEnvelope,
  newEnvelopeId,
  TOPIC_PRESENCE,
  TOPIC_STANZAS,
  type Logger,
  type SessionEndEnvelope,
  type StanzaEnvelope,
  sessions as sessionsGauge,
  unackedEnvelope,
  stanzasIn,
  streamErrors,
} from '@starling/core';
import type { DeliveryPayload, SessionRecord } from '@starling/ports';
import {
  attr,
  bareOf,
  errorReply,
  escapeXml,
  Jid,
  NS_BLOCKING,
  NS_CLIENT,
  NS_FRAMING,
  NS_ROSTER,
  NS_SASL,
  NS_SESSION,
  NS_STREAM,
  NS_TLS,
  serialize,
  StanzaError,
  StreamError,
  streamErrorElement,
  StreamParser,
  xml,
  type Element,
  type StreamErrorCondition,
} from '@starling/xmpp';
import type { EdgeContext, LocalSession } from './edge-context.ts';
import { PublishWindow } from './publish-window.ts';
import { answerRegistration, isRegistrationIq } from './registration.ts';
import { bindResult, isBindIq, requestedJid } from './resource-binding.ts';
import { SaslNegotiation } from './sasl-negotiation.ts';
import { checkClientStanza } from './stanza-checks.ts';
import { ManagedStream, NS_SM, parseH, smFailed, type ManagedStreamIo } from './stream-management.ts';
import { postAuthFeatures, preAuthFeatures } from './stream-features.ts';
import type { Transport } from './transport.ts';

/** Stop reading above this many elements waiting or publishes unconfirmed; resume below LOW_WATER. */
const HIGH_WATER = 256;
const LOW_WATER = 128;

const STANZA_NAMES: ReadonlySet<string> = new Set(['message', 'presence', 'iq']);

interface BoundSession {
  readonly jid: Jid;
  readonly bare: string;
  readonly record: SessionRecord;
}

/**
 * One client connection's XML stream. Parser events are handled strictly in arrival order on one queue;
 * events of a stream that was since restarted (STARTTLS, SASL) are dropped.
 */
export class ClientStream implements LocalSession {
  /** Resolves when the connection is closed and the session end, if any, was published. */
  readonly finished: Promise<void>;
  private readonly ctx: EdgeContext;
  private readonly transport: Transport;
  private readonly log: Logger;
  private readonly window: PublishWindow;
  private readonly sasl: SaslNegotiation;
  private parser: StreamParser | undefined;
  private generation = 0;
  private awaitingHeader = true;
  private headerSent = false;
  private closing = false;
  private queue: Promise<void> = Promise.resolve();
  private queued = 0;
  private paused = false;
  /** Stopped reading because the edge as a whole has too many publishes unconfirmed; told when not. */
  private waitingForRoom = false;
  private readonly roomAgain = (): void => {
    this.waitingForRoom = false;
    this.updateFlow();
  };
  private authTimer: NodeJS.Timeout | undefined;
  private username: string | undefined;
  private session: BoundSession | undefined;
  private binding: Promise<void> | undefined;
  /** The full JID being bound, bound or resumed; '' before. */
  private claimedJid = '';
  private sessionEnd: Promise<void> | undefined;
  /** XEP-0198 state once enabled or resumed. */
  private sm: ManagedStream | undefined;
  /** Deliveries that came while a resumption was being set up, written once it is. */
  private resumeBacklog:
    { readonly xml: string; readonly resolve: (taken: boolean | Promise<boolean>) => void }[] | undefined;
  /** The connection went away without a close, or the edge is shutting down: a resumable stream waits. */
  private keepStream = false;
  private restoring: Promise<boolean> | undefined;
  /**
   * What the client told the server that the registry keeps about its session, as seen passing through:
   * to put the session back if the registry loses it.
   */
  private readonly seen: {
    available: boolean;
    priority: number;
    presence: string | undefined;
    interested: boolean;
    blocklistRequested: boolean;
  } = { available: false, priority: 0, presence: undefined, interested: false, blocklistRequested: false };
  private markClosed: () => void = () => undefined;

  constructor(ctx: EdgeContext, transport: Transport, log: Logger) {
    this.ctx = ctx;
    this.transport = transport;
    this.log = log;
    this.window = new PublishWindow(ctx.deps.bus, ctx.ingress, () => this.updateFlow());
    this.sasl = new SaslNegotiation({
      server: ctx.sasl,
      throttle: ctx.throttle,
      remoteAddress: transport.remoteAddress,
      send: (el) => this.send(el),
    });
    const closed = new Promise<void>((resolve) => {
      this.markClosed = resolve;
    });
    this.finished = closed.then(() => this.sessionEnd);
  }

  /**
   * Whether a delivery addressed to `jid` is this stream's: the one it bound or resumed, or any while a
   * resumption takes a stream over. The registry hands this stream's new session id out with the taken
   * stream's full JID only, and routers deliver to it as soon as it did, before this stream hears back.
   */
  accepts(jid: string): boolean {
    return this.claimedJid === jid || (this.claimedJid === '' && this.resumeBacklog !== undefined);
  }

  get bound(): boolean {
    return this.session !== undefined && !this.closing;
  }

  /** Starts reading; the auth timeout runs from here. */
  start(): void {
    this.transport.listen({
      data: (chunk) => this.parser?.write(chunk),
      closed: () => this.onTransportClosed(),
    });
    this.authTimer = setTimeout(
      () => this.fail('connection-timeout', 'Authentication took too long'),
      this.ctx.deps.config.limits.authTimeoutSeconds * 1000,
    );
    this.newParser();
  }

  /**
   * Called every `limits.hibernateSeconds`: a stream that read nothing for a whole period lets go of its
   * parser's tokenizer until the client sends again. Returns whether the parser sleeps.
   */
  hibernate(): boolean {
    this.parser?.hibernate();
    return this.parser?.sleeping ?? false;
  }

  deliver(payload: DeliveryPayload): boolean | Promise<boolean> {
    if (this.closing) return false;
    if (payload.kind === 'close') {
      this.fail(payload.condition, payload.text);
      return true;
    }
    if (this.resumeBacklog !== undefined) {
      const backlog = this.resumeBacklog;
      return new Promise((resolve) => backlog.push({ xml: payload.xml, resolve }));
    }
    if (this.sm !== undefined) return this.sm.send(payload.xml);
    this.write(payload.xml);
    return true;
  }

  /** Ends the stream with a stream error (RFC 6120 §4.9): header if not yet sent, error, close. */
  fail(condition: StreamErrorCondition, text?: string, detail?: Element): void {
    if (this.closing) return;
    if (condition !== 'system-shutdown') this.log.info({ condition, text }, 'stream error');
    // XEP-0198 §5: a stream cut by a shutdown can be resumed on another edge.
    if (condition === 'system-shutdown') this.keepStream = true;
    streamErrors.labels(condition).inc();
    if (!this.headerSent) this.sendHeader(undefined);
    const error = streamErrorElement(condition, text);
    if (detail !== undefined) error.cnode(detail);
    if (this.transport.framing === 'framed') error.attrs['xmlns:stream'] = NS_STREAM;
    this.send(error);
    this.closeStream();
  }

  // --- input -------------------------------------------------------------------------------------------

  private newParser(): void {
    this.parser?.close();
    const limits = this.ctx.deps.config.limits;
    const parser: StreamParser = new StreamParser(
      this.transport.framing,
      {
        maxStanzaBytes: this.username === undefined ? limits.preAuthStanzaBytes : limits.stanzaBytes,
        maxDepth: limits.depth,
        maxAttributes: limits.attributes,
        maxChildren: limits.children,
      },
      {
        streamStart: (attrs) => {
          if (parser === this.parser) this.enqueue(() => this.onHeader(attrs));
        },
        element: (el) => {
          if (parser === this.parser) this.onParsedElement(parser, el);
        },
        streamEnd: () => {
          if (parser === this.parser) this.enqueue(() => this.closeStream());
        },
        error: (err) => {
          if (parser !== this.parser) return;
          this.parser = undefined;
          this.enqueue(() => this.fail(err.condition, err.text));
        },
      },
    );
    this.parser = parser;
  }

  private onParsedElement(parser: StreamParser, el: Element): void {
    // RFC 6120 §5.4.3.3: nothing sent after <starttls/> may be read as part of the TLS-protected stream.
    if (this.transport.canStartTls && this.username === undefined && el.is('starttls', NS_TLS)) {
      parser.close();
      this.parser = undefined;
      this.transport.discardInput();
      this.enqueue(() => this.startTls());
      return;
    }
    this.enqueue(() => this.onElement(el));
  }

  private enqueue(task: () => Promise<void> | void): void {
    const generation = this.generation;
    this.queued += 1;
    this.updateFlow();
    this.queue = this.queue
      .then(async () => {
        if (this.closing || generation !== this.generation) return;
        await task();
      })
      .catch((err: unknown) => {
        if (err instanceof StreamError) {
          this.fail(err.condition, err.text);
        } else {
          this.log.error({ err }, 'stream handler failed');
          this.fail('internal-server-error');
        }
      })
      .finally(() => {
        this.queued -= 1;
        this.updateFlow();
      });
  }

  private updateFlow(): void {
    if (!this.waitingForRoom && !this.closing && this.ctx.ingress.exhausted) {
      this.waitingForRoom = true;
      this.ctx.ingress.whenRoom(this.roomAgain);
    }
    const load = this.queued + this.window.inflight;
    const hold = this.waitingForRoom || load >= HIGH_WATER || (this.paused && load > LOW_WATER);
    if (hold === this.paused) return;
    this.paused = hold;
    if (hold) this.transport.pause();
    else this.transport.resume();
  }

  // --- stream level ------------------------------------------------------------------------------------

  private onHeader(attrs: Readonly<Record<string, string>>): void {
    if (!this.awaitingHeader) throw new StreamError('invalid-xml', 'Unexpected stream header');
    this.awaitingHeader = false;
    this.sendHeader(attrs.from);
    const to = attrs.to === undefined ? undefined : Jid.tryParse(attrs.to);
    if (to?.isBare !== true || to.local !== '' || to.domain !== this.ctx.domain) {
      throw new StreamError('host-unknown', 'This server does not serve that domain');
    }
    // RFC 6120 §4.7.5: any 1.x is answered with 1.0; no version means 0.9, which is not supported.
    if (attrs.version === undefined || !/^1\.\d+$/.test(attrs.version)) {
      throw new StreamError('unsupported-version');
    }
    this.send(this.features());
  }

  private sendHeader(clientFrom: string | undefined): void {
    this.headerSent = true;
    const to = clientFrom === undefined ? undefined : Jid.tryParse(clientFrom)?.toString();
    const attrs: Record<string, string | undefined> = {
      id: randomBytes(16).toString('base64url'),
      from: this.ctx.domain,
      to,
      version: '1.0',
      'xml:lang': 'en',
    };
    if (this.transport.framing === 'framed') {
      this.send(xml('open', { xmlns: NS_FRAMING, ...attrs }));
      return;
    }
    let header = `<?xml version='1.0'?><stream:stream xmlns='${NS_CLIENT}' xmlns:stream='${NS_STREAM}'`;
    for (const [name, value] of Object.entries(attrs)) {
      if (value !== undefined) header += ` ${name}='${escapeXml(value)}'`;
    }
    this.transport.send(`${header}>`);
  }

  private features(): Element {
    const framed = this.transport.framing === 'framed';
    if (this.username !== undefined) {
      return postAuthFeatures(this.ctx.caps, framed, this.ctx.deps.config.streamManagement.enabled);
    }
    const config = this.ctx.deps.config;
    const awaitingTls = this.awaitingTls();
    return preAuthFeatures(
      {
        startTls: this.transport.canStartTls,
        tlsRequired: config.tls.required,
        mechanisms: awaitingTls ? [] : this.offeredMechanisms(),
        registration: this.registrationOffered(),
        caps: this.ctx.caps,
      },
      framed,
    );
  }

  /** RFC 6120 §5.3.1: TLS is mandatory to negotiate and still can be. */
  private awaitingTls(): boolean {
    return this.ctx.deps.config.tls.required && this.transport.canStartTls;
  }

  private offeredMechanisms(): string[] {
    const secure = this.transport.secure;
    return this.ctx.deps.config.auth.mechanisms.filter((name) => name !== 'PLAIN' || secure);
  }

  /** Registration sends a password in the clear, so it waits for TLS wherever TLS is required. */
  private registrationOffered(): boolean {
    const config = this.ctx.deps.config;
    return config.registration === 'open' && (this.transport.secure || !config.tls.required);
  }

  /** Restarts the stream (RFC 6120 §4.3.3): a new parser, a new header expected, queued events dropped. */
  private restart(): void {
    this.generation += 1;
    this.awaitingHeader = true;
    this.headerSent = false;
    this.newParser();
  }

  private startTls(): void {
    this.send(xml('proceed', { xmlns: NS_TLS }));
    this.transport.startTls(this.ctx.secureContext);
    this.log.debug('TLS started');
    this.restart();
  }

  /** Sends the closing tag and ends the connection (RFC 6120 §4.4). */
  private closeStream(): void {
    if (this.closing) return;
    this.transport.send(
      this.transport.framing === 'framed'
        ? xml('close', { xmlns: NS_FRAMING }).toString()
        : '</stream:stream>',
    );
    this.transport.end();
    this.shutDown();
  }

  private onTransportClosed(): void {
    // Gone without a closing tag or a stream error: the client may come back and resume (XEP-0198 §5).
    if (!this.closing) this.keepStream = true;
    this.shutDown();
    this.markClosed();
  }

  private shutDown(): void {
    if (this.closing) return;
    this.closing = true;
    this.ctx.ingress.forget(this.roomAgain);
    clearTimeout(this.authTimer);
    this.parser?.close();
    this.parser = undefined;
    // Nothing more is written; stanzas still being queued stay queued for a resumption or re-routing.
    this.sm?.end();
    this.sessionEnd = this.endSession();
  }

  // --- elements ----------------------------------------------------------------------------------------

  private async onElement(el: Element): Promise<void> {
    const framed = this.transport.framing === 'framed';
    if (framed && el.is('open', NS_FRAMING)) {
      this.onHeader(stringAttrs(el));
      return;
    }
    if (framed && el.is('close', NS_FRAMING)) {
      this.closeStream();
      return;
    }
    if (this.awaitingHeader) throw new StreamError('invalid-xml', 'Expected <open/>');
    if (this.username === undefined) return this.beforeAuth(el);
    if (this.session === undefined) return this.beforeBind(el);
    if (el.getNS() === NS_SM) return this.onSmElement(el, this.session);
    const sm = this.sm;
    const seq = sm?.receive();
    const handled = this.onStanza(el, this.session);
    if (sm !== undefined && seq !== undefined) {
      // h counts a stanza once the bus confirmed it or it was answered here (XEP-0198 §4).
      const done = (): void => sm.handle(seq);
      if (handled === undefined) done();
      else void handled.then(done, done);
    }
  }

  private async beforeAuth(el: Element): Promise<void> {
    if (el.is('starttls', NS_TLS)) {
      // RFC 6120 §5.4.2.2: STARTTLS is not possible here (already TLS, or WebSocket).
      this.send(xml('failure', { xmlns: NS_TLS }));
      this.closeStream();
      return;
    }
    if (el.getNS() === NS_SASL) {
      const outcome = await this.sasl.handle(el, {
        offered: this.offeredMechanisms(),
        enabled: this.ctx.deps.config.auth.mechanisms,
        secure: this.transport.secure,
        awaitingTls: this.awaitingTls(),
      });
      if (outcome.kind === 'success') {
        this.send(outcome.success);
        this.onAuthenticated(outcome.username);
      } else if (outcome.kind === 'exhausted') {
        this.fail('policy-violation', 'Too many failed authentication attempts');
      }
      return;
    }
    if (this.awaitingTls()) throw new StreamError('policy-violation', 'Use of STARTTLS is required');
    if (el.getNS() === NS_CLIENT && isRegistrationIq(el)) {
      const config = this.ctx.deps.config;
      this.send(
        await answerRegistration(el, {
          accounts: this.ctx.deps.store.accounts,
          domain: this.ctx.domain,
          iterations: config.auth.scramIterations,
          open: this.registrationOffered(),
        }),
      );
      return;
    }
    throw new StreamError('not-authorized');
  }

  private onAuthenticated(username: string): void {
    this.username = username;
    clearTimeout(this.authTimer);
    this.log.info({ user: username }, 'authenticated');
    this.restart();
  }

  private async beforeBind(el: Element): Promise<void> {
    if (el.getNS() === NS_CLIENT && isBindIq(el)) {
      this.binding = this.bind(el);
      await this.binding;
      return;
    }
    if (el.getNS() === NS_CLIENT && isSessionIq(el)) {
      this.send(sessionResult(el));
      return;
    }
    if (el.is('resume', NS_SM) && this.ctx.deps.config.streamManagement.enabled) {
      this.binding = this.resume(el);
      await this.binding;
      return;
    }
    // XEP-0198 §3: enabling before a resource is bound is refused.
    if (el.is('enable', NS_SM)) return this.send(smFailed('unexpected-request'));
    throw new StreamError('not-authorized');
  }

  private async bind(iq: Element): Promise<void> {
    const username = this.username ?? '';
    let jid: Jid;
    try {
      jid = requestedJid(iq, username, this.ctx.domain);
    } catch (err) {
      if (err instanceof StanzaError) return this.send(errorReply(iq, err));
      throw err;
    }
    const record: SessionRecord = {
      jid: jid.toString(),
      sessionId: randomUUID(),
      edgeId: this.ctx.edgeId,
      boundAt: Date.now(),
      priority: 0,
      available: false,
      interested: false,
    };
    // Registered before the registry knows the session, so nothing addressed to it can miss it.
    this.claimedJid = record.jid;
    this.ctx.sessions.set(record.sessionId, this);
    let replaced: SessionRecord | undefined;
    try {
      replaced = await this.ctx.deps.registry.bind(record);
    } catch (err) {
      this.ctx.sessions.delete(record.sessionId);
      this.claimedJid = '';
      this.log.error({ err }, 'resource binding failed');
      return this.send(errorReply(iq, new StanzaError('resource-constraint', undefined, { type: 'wait' })));
    }
    const session: BoundSession = { jid, bare: jid.bare().toString(), record };
    this.session = session;
    sessionsGauge.inc();
    this.log.info({ jid: record.jid, sessionId: record.sessionId }, 'bound');
    if (replaced !== undefined && replaced.sessionId !== record.sessionId) await this.replace(replaced);
    this.send(bindResult(iq, jid));
  }

  /** RFC 6120 §7.7.2.2: the older session of the same full JID ends with `conflict`. */
  private async replace(old: SessionRecord): Promise<void> {
    try {
      await this.ctx.deps.delivery.deliver(
        { edgeId: old.edgeId, sessionId: old.sessionId, jid: old.jid },
        { kind: 'close', condition: 'conflict', text: 'Replaced by a new session' },
      );
    } catch (err) {
      this.log.warn({ err }, 'could not tell the replaced session');
    }
    // The replaced stream's own unbind finds the new binding and publishes nothing, so this is its only end.
    this.publishSessionEnd(old);
    // Its XEP-0198 queue is routed again, whether its edge is alive to do it or not; the full JID is this
    // stream's now, so what it had not acknowledged comes here.
    if (old.stream !== undefined) {
      const closed = await this.ctx.deps.registry.closeStream(old.jid, old.stream, old.sessionId);
      for (const stanza of closed?.unacked ?? []) this.publishUnacked(old, stanza);
    }
  }

  /** Returns, for a stanza that goes to the bus, a promise that settles once it was published or refused. */
  private onStanza(el: Element, session: BoundSession): Promise<void> | undefined {
    if (el.getNS() !== NS_CLIENT || !STANZA_NAMES.has(el.name)) {
      throw new StreamError('unsupported-stanza-type');
    }
    if (isBindIq(el)) {
      if (attr(el, 'type') !== 'error' && attr(el, 'type') !== 'result') {
        this.send(errorReply(el, new StanzaError('not-allowed', 'A resource is already bound')));
      }
      return;
    }
    if (isSessionIq(el)) {
      this.send(sessionResult(el));
      return;
    }
    try {
      checkClientStanza(el, session.jid);
    } catch (err) {
      if (!(err instanceof StanzaError)) throw err;
      el.attrs.from = session.record.jid;
      const from = err.condition === 'jid-malformed' ? this.ctx.domain : undefined;
      if (attr(el, 'type') !== 'error') this.send(errorReply(el, err, from));
      return;
    }
    el.attrs.from = session.record.jid;
    if (el.attrs.xmlns === NS_CLIENT) delete el.attrs.xmlns;
    this.notice(el);
    return this.publishStanza(el, session);
  }

  /** Keeps what `restore` needs: the last broadcast presence, and the roster and blocklist requests. */
  private notice(el: Element): void {
    const type = attr(el, 'type');
    if (el.name === 'presence' && attr(el, 'to') === undefined) {
      if (type === undefined) {
        const priority = Number.parseInt(el.getChildText('priority') ?? '0', 10);
        this.seen.available = true;
        this.seen.priority = Number.isNaN(priority) ? 0 : priority;
        this.seen.presence = el.toString();
      } else if (type === 'unavailable') {
        this.seen.available = false;
        this.seen.presence = undefined;
      }
    } else if (el.name === 'iq' && type === 'get') {
      if (el.getChild('query', NS_ROSTER) !== undefined) this.seen.interested = true;
      if (el.getChild('blocklist', NS_BLOCKING) !== undefined) this.seen.blocklistRequested = true;
    }
  }

  /**
   * Puts this stream's session (and its XEP-0198 state) back into a registry that lost it, unless its
   * full JID was bound again meanwhile. True if the registry has this session (again).
   */
  restore(): Promise<boolean> {
    this.restoring ??= this.putBack()
      .catch((err: unknown) => {
        this.log.warn({ err }, 'could not restore the session');
        return false;
      })
      .finally(() => (this.restoring = undefined));
    return this.restoring;
  }

  private async putBack(): Promise<boolean> {
    const session = this.session;
    if (session === undefined || this.closing || this.resumeBacklog !== undefined) return false;
    const sm = this.sm;
    const { presence, blocklistRequested, ...seen } = this.seen;
    const record: SessionRecord = {
      jid: session.record.jid,
      sessionId: session.record.sessionId,
      edgeId: this.ctx.edgeId,
      boundAt: session.record.boundAt,
      ...seen,
      ...(presence === undefined ? {} : { presence }),
      ...(blocklistRequested ? { blocklistRequested } : {}),
    };
    const { registry } = this.ctx.deps;
    let missingStream = true;
    if (!(await registry.restore(record))) {
      const current = await registry.get(record.jid);
      if (current?.sessionId !== record.sessionId) return false;
      missingStream = current.stream === undefined;
    }
    if (sm !== undefined && missingStream) {
      return registry.openStream(record.jid, record.sessionId, sm.id, sm.timeoutMs, sm.restoredCounts());
    }
    return true;
  }

  private publishStanza(el: Element, session: BoundSession): Promise<void> {
    const sm = this.sm;
    const envelope: StanzaEnvelope = {
      t: 'stanza',
      // A managed stream numbers its stanzas, and a client resends those it saw no `h` for: the same
      // number gives the same id, so a resend of something that did reach the bus is dropped as a replay.
      id: sm === undefined ? newEnvelopeId() : `sm:${sm.id}:${sm.lastReceived}`,
      from: session.record.jid,
      sessionId: session.record.sessionId,
      edgeId: this.ctx.edgeId,
      ts: Date.now(),
      xml: serialize(el),
    };
    const topic = el.name === 'presence' ? TOPIC_PRESENCE : TOPIC_STANZAS;
    const encode = this.ctx.deps.compactEnvelopes === true ? encodeStanzaEnvelope : encodeEnvelope;
    stanzasIn.labels(el.name).inc();
    return this.window
      .publish(topic, session.bare, encode(envelope), el.name)
      .then(undefined, (err: unknown) => {
        this.log.warn({ err }, 'publish failed');
        if (attr(el, 'type') !== 'error') {
          this.send(errorReply(el, new StanzaError('resource-constraint', undefined, { type: 'wait' })));
        }
      });
  }

  private publishSessionEnd(record: SessionRecord): void {
    const envelope: SessionEndEnvelope = { t: 'session-end', id: newEnvelopeId(), ts: Date.now(), record };
    void this.window
      .publish(TOPIC_PRESENCE, bareOf(record.jid), encodeEnvelope(envelope), 'session-end')
      .then(undefined, (err: unknown) => {
        this.log.error({ err, jid: record.jid }, 'could not publish a session end');
      });
  }

  /** Unbinds this stream's session, once, and publishes its end if the binding was still its own. */
  private async endSession(): Promise<void> {
    try {
      await this.binding;
    } catch {
      // The bind handler already answered its own failure.
    }
    const session = this.session;
    const sm = this.sm;
    if (session !== undefined) {
      this.ctx.sessions.delete(session.record.sessionId);
      sessionsGauge.dec();
      try {
        if (sm !== undefined) await this.endManagedStream(sm, session);
        else {
          const removed = await this.ctx.deps.registry.unbind(session.record.jid, session.record.sessionId);
          if (removed !== undefined) this.publishSessionEnd(removed);
        }
      } catch (err) {
        this.log.error({ err }, 'unbind failed');
      }
    }
    await this.window.drain();
  }

  /**
   * XEP-0198 §5: a resumable stream that lost its connection (or whose edge shuts down) is detached and
   * kept for its timeout; any other end closes its state, and the stanzas the client did not acknowledge
   * are routed again (to another resource, offline storage, or an error to their sender).
   */
  private async endManagedStream(sm: ManagedStream, session: BoundSession): Promise<void> {
    sm.end();
    // The stanzas still on their way to the bus count in the stored h a resumption starts from.
    await this.window.drain();
    await sm.settled();
    const { registry } = this.ctx.deps;
    const { jid, sessionId } = session.record;
    if (sm.resumable && this.keepStream) {
      if (await registry.detachStream(jid, sm.id, sessionId)) {
        this.log.info({ jid, stream: sm.id }, 'stream detached; waiting for resumption');
      }
      return;
    }
    const closed = await registry.closeStream(jid, sm.id, sessionId);
    if (closed === undefined) return; // resumed elsewhere meanwhile: the stream lives on there
    for (const stanza of closed.unacked) this.publishUnacked(session.record, stanza);
    if (closed.record !== undefined) this.publishSessionEnd(closed.record);
  }

  private publishUnacked(record: SessionRecord, stanza: string): void {
    const envelope = unackedEnvelope(record.jid, stanza);
    if (envelope === undefined) return;
    void this.window
      .publish(TOPIC_STANZAS, bareOf(record.jid), encodeEnvelope(envelope), 'unacked')
      .then(undefined, (err: unknown) => {
        this.log.error({ err, jid: record.jid }, 'could not route an unacknowledged stanza again');
      });
  }

  // --- XEP-0198 ----------------------------------------------------------------------------------------

  private managedIo(): ManagedStreamIo {
    return {
      write: (el) => this.sendRaw(el),
      writeStanza: (stanza) => this.write(stanza),
      wroteLate: (count) =>
        this.log.warn({ count }, 'wrote stanzas a router queued for this stream when its delivery failed'),
      tooHigh: (h, sent) =>
        this.fail(
          'undefined-condition',
          'You acknowledged more stanzas than were sent',
          xml('handled-count-too-high', { xmlns: NS_SM, h: String(h), 'send-count': String(sent) }),
        ),
      lost: async () => {
        if (await this.restore()) return false;
        this.fail('conflict', 'The stream was resumed by another connection');
        return true;
      },
    };
  }

  private async onSmElement(el: Element, session: BoundSession): Promise<void> {
    const sm = this.sm;
    if (el.is('enable', NS_SM)) {
      if (sm !== undefined || !this.ctx.deps.config.streamManagement.enabled) {
        this.send(smFailed('unexpected-request'));
        return;
      }
      return this.enable(el, session);
    }
    if (sm === undefined) {
      if (el.is('resume', NS_SM)) return this.send(smFailed('unexpected-request'));
      throw new StreamError('unsupported-stanza-type', 'Stream management is not enabled');
    }
    if (el.is('resume', NS_SM)) return this.send(smFailed('unexpected-request'));
    if (el.is('r', NS_SM)) return sm.requestAck();
    if (el.is('a', NS_SM)) {
      const h = parseH(el.attrs.h);
      if (h === undefined) throw new StreamError('invalid-xml', 'An <a/> needs h, a 32-bit unsigned integer');
      void sm.ack(h).catch((err: unknown) => this.log.warn({ err }, 'could not record an acknowledgement'));
      return;
    }
    throw new StreamError('unsupported-stanza-type');
  }

  private async enable(el: Element, session: BoundSession): Promise<void> {
    const config = this.ctx.deps.config.streamManagement;
    const wanted = attr(el, 'resume') === 'true' || attr(el, 'resume') === '1';
    const max = parseH(el.attrs.max);
    const seconds = Math.min(config.resumeSeconds, max ?? Number.POSITIVE_INFINITY);
    const resumable = wanted && seconds > 0;
    const id = randomBytes(18).toString('base64url');
    const { jid, sessionId } = session.record;
    if (!(await this.ctx.deps.registry.openStream(jid, sessionId, id, resumable ? seconds * 1000 : 0))) {
      this.send(smFailed('unexpected-request'));
      return;
    }
    this.sm = new ManagedStream({
      registry: this.ctx.deps.registry,
      id,
      resumable,
      timeoutMs: resumable ? seconds * 1000 : 0,
      jid,
      sessionId,
      io: this.managedIo(),
    });
    this.sendRaw(
      xml('enabled', {
        xmlns: NS_SM,
        ...(resumable ? { id, resume: 'true', max: String(seconds) } : {}),
      }),
    );
  }

  /** XEP-0198 §5: takes the stream over from wherever it was, sends what the client missed, and goes on. */
  private async resume(el: Element): Promise<void> {
    const previd = attr(el, 'previd');
    const h = parseH(el.attrs.h);
    if (previd === undefined || previd === '' || previd.length > 128 || h === undefined) {
      this.send(smFailed('bad-request'));
      return;
    }
    const username = this.username ?? '';
    const bare = Jid.of(username, this.ctx.domain).toString();
    const sessionId = randomUUID();
    const { registry, delivery } = this.ctx.deps;
    // Registered first: the registry points deliveries here as soon as the stream is taken over.
    this.resumeBacklog = [];
    this.ctx.sessions.set(sessionId, this);
    const resumed = await registry
      .resumeStream(bare, previd, sessionId, this.ctx.edgeId)
      .catch((err: unknown) => {
        this.log.error({ err }, 'resumption failed');
        return undefined;
      });
    const record = resumed === undefined ? undefined : await registry.get(resumed.state.jid);
    if (resumed === undefined || record?.sessionId !== sessionId) {
      this.ctx.sessions.delete(sessionId);
      for (const pending of this.resumeBacklog) pending.resolve(false);
      this.resumeBacklog = undefined;
      this.send(smFailed('item-not-found'));
      return;
    }
    const { state, previous } = resumed;
    this.claimedJid = state.jid;
    const sm = new ManagedStream({
      registry,
      id: state.id,
      resumable: true,
      timeoutMs: state.timeoutMs,
      jid: state.jid,
      sessionId,
      io: this.managedIo(),
      handled: state.handled,
      acked: state.acked,
      sent: state.acked + state.unacked.length,
    });
    this.session = { jid: Jid.parse(state.jid), bare, record };
    this.sm = sm;
    sessionsGauge.inc();
    // The client's h drops what it had; an h above what was sent ends the stream (XEP-0198 §4).
    if (h > state.acked) await sm.ack(h);
    if (this.closing) {
      for (const pending of this.resumeBacklog) pending.resolve(false);
      this.resumeBacklog = undefined;
      return;
    }
    const acked = Math.max(h, state.acked);
    this.log.info(
      { jid: state.jid, stream: state.id, resent: state.acked + state.unacked.length - acked },
      'resumed',
    );
    this.sendRaw(xml('resumed', { xmlns: NS_SM, previd, h: String(state.handled) }));
    for (const stanza of state.unacked.slice(acked - state.acked)) this.write(stanza);
    sm.resent();
    const backlog = this.resumeBacklog;
    this.resumeBacklog = undefined;
    for (const pending of backlog) pending.resolve(sm.send(pending.xml));
    if (previous.sessionId !== sessionId) {
      void delivery
        .deliver(
          { edgeId: previous.edgeId, sessionId: previous.sessionId, jid: state.jid },
          { kind: 'close', condition: 'conflict', text: 'The stream was resumed by another connection' },
        )
        .catch(() => undefined);
    }
  }

  // --- output ------------------------------------------------------------------------------------------

  /** Sends a stanza the edge itself answers (counted and queued when the stream is managed), or a nonza. */
  private send(el: Element): void {
    if (this.sm !== undefined && STANZA_NAMES.has(el.name)) {
      void this.sm.send(serialize(el));
      return;
    }
    this.sendRaw(el);
  }

  /** Writes an element as is: nonzas, and stanzas before stream management. */
  private sendRaw(el: Element): void {
    if (this.transport.framing === 'framed' && STANZA_NAMES.has(el.name) && el.attrs.xmlns === undefined) {
      el.attrs.xmlns = NS_CLIENT;
    }
    this.transport.send(serialize(el));
  }

  /** Writes a serialized stanza. */
  private write(stanza: string): void {
    this.transport.send(this.transport.framing === 'framed' ? withClientNamespace(stanza) : stanza);
  }
}

function stringAttrs(el: Element): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(el.attrs)) if (typeof value === 'string') out[name] = value;
  return out;
}

function isSessionIq(el: Element): boolean {
  return el.name === 'iq' && el.getChild('session', NS_SESSION) !== undefined;
}

/** RFC 3921 §3: legacy session establishment is a no-op answered with success. */
function sessionResult(iq: Element): Element {
  if (attr(iq, 'type') !== 'set' || attr(iq, 'id') === undefined) return errorReply(iq, 'bad-request');
  return xml('iq', { type: 'result', id: attr(iq, 'id') });
}

/** RFC 7395 §3.3.3: each WebSocket message stands alone, so a stanza must declare jabber:client itself. */
function withClientNamespace(stanza: string): string {
  const end = stanza.indexOf('>');
  if (end === -1 || /\sxmlns=/.test(stanza.slice(0, end))) return stanza;
  const nameEnd = stanza.search(/[\s/>]/);
  return `${stanza.slice(0, nameEnd)} xmlns='${NS_CLIENT}'${stanza.slice(nameEnd)}`;
}
