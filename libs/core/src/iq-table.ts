// RFC 6120 §8.2.3 IQ semantics: one handler per (type, namespace, element); unmatched requests get an error.
import { type Element, errorReply, Jid, StanzaError, xml } from '@starling/xmpp';

export type IqType = 'get' | 'set';

/** Who the request is addressed to: the server's domain, or an account's bare JID (RFC 6121 §8.5.1). */
export type IqTarget = 'server' | 'account';

export interface IqRequest {
  readonly stanza: Element;
  /** The request's single payload child. */
  readonly payload: Element;
  readonly type: IqType;
  /** Full JID of the requester. */
  readonly from: Jid;
  /** The domain, or the bare JID the request was addressed to (the requester's own when `to` was absent). */
  readonly to: Jid;
  readonly target: IqTarget;
}

/** Returns the result payload (or nothing for an empty result); throws StanzaError to refuse. */
export type IqHandler = (request: IqRequest) => Element | undefined | Promise<Element | undefined>;

export interface IqHandlerOptions {
  /** Which addresses the handler answers for; default `['server']`. */
  readonly targets?: readonly IqTarget[];
}

export interface IqFailure {
  readonly error: unknown;
  readonly request: IqRequest;
}

export class IqTable {
  private readonly handlers = new Map<string, IqHandler>();
  private readonly onFailure: (failure: IqFailure) => void;

  constructor(onFailure: (failure: IqFailure) => void) {
    this.onFailure = onFailure;
  }

  on(type: IqType, ns: string, name: string, handler: IqHandler, options: IqHandlerOptions = {}): void {
    for (const target of options.targets ?? ['server']) {
      const key = `${target} ${type} ${ns} ${name}`;
      if (this.handlers.has(key)) throw new Error(`two IQ handlers for ${key}`);
      this.handlers.set(key, handler);
    }
  }

  onGet(ns: string, name: string, handler: IqHandler, options?: IqHandlerOptions): void {
    this.on('get', ns, name, handler, options);
  }

  onSet(ns: string, name: string, handler: IqHandler, options?: IqHandlerOptions): void {
    this.on('set', ns, name, handler, options);
  }

  has(target: IqTarget, type: IqType, ns: string, name: string): boolean {
    return this.handlers.has(`${target} ${type} ${ns} ${name}`);
  }

  /**
   * Answers a get/set IQ: the handler's result, its StanzaError, `service-unavailable` when no handler
   * matches, `bad-request` when the payload is not exactly one element, and `internal-server-error`
   * (reported through onFailure) when a handler fails unexpectedly. Never leaves a request unanswered.
   */
  async dispatch(stanza: Element, from: Jid, to: Jid, target: IqTarget): Promise<Element> {
    const type = stanza.attrs.type as IqType;
    const children = stanza.getChildElements();
    const payload = children[0];
    const replyFrom = stanza.attrs.to as string | undefined;
    if (children.length !== 1 || payload === undefined) return errorReply(stanza, 'bad-request', replyFrom);
    const ns = payload.getNS() ?? '';
    const handler = this.handlers.get(`${target} ${type} ${ns} ${payload.name}`);
    if (!handler) return errorReply(stanza, 'service-unavailable', replyFrom);
    const request: IqRequest = { stanza, payload, type, from, to, target };
    try {
      const result = await handler(request);
      return xml(
        'iq',
        { type: 'result', id: stanza.attrs.id as string, to: from.toString(), from: replyFrom },
        result,
      );
    } catch (error) {
      if (error instanceof StanzaError) return errorReply(stanza, error, replyFrom);
      this.onFailure({ error, request });
      return errorReply(stanza, 'internal-server-error', replyFrom);
    }
  }
}
