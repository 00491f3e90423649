// RFC 6120 §4.9 stream errors and §8.3 stanza errors: conditions and the elements that carry them.
import { xml, type Element } from './element.ts';
import { NS_STANZAS, NS_STREAM_ERRORS } from './namespaces.ts';

export type StreamErrorCondition =
  | 'bad-format'
  | 'bad-namespace-prefix'
  | 'conflict'
  | 'connection-timeout'
  | 'host-gone'
  | 'host-unknown'
  | 'improper-addressing'
  | 'internal-server-error'
  | 'invalid-from'
  | 'invalid-namespace'
  | 'invalid-xml'
  | 'not-authorized'
  | 'not-well-formed'
  | 'policy-violation'
  | 'remote-connection-failed'
  | 'reset'
  | 'resource-constraint'
  | 'restricted-xml'
  | 'see-other-host'
  | 'system-shutdown'
  | 'undefined-condition'
  | 'unsupported-encoding'
  | 'unsupported-feature'
  | 'unsupported-stanza-type'
  | 'unsupported-version';

export type StanzaErrorType = 'auth' | 'cancel' | 'continue' | 'modify' | 'wait';

export type StanzaErrorCondition =
  | 'bad-request'
  | 'conflict'
  | 'feature-not-implemented'
  | 'forbidden'
  | 'gone'
  | 'internal-server-error'
  | 'item-not-found'
  | 'jid-malformed'
  | 'not-acceptable'
  | 'not-allowed'
  | 'not-authorized'
  | 'policy-violation'
  | 'recipient-unavailable'
  | 'redirect'
  | 'registration-required'
  | 'remote-server-not-found'
  | 'remote-server-timeout'
  | 'resource-constraint'
  | 'service-unavailable'
  | 'subscription-required'
  | 'undefined-condition'
  | 'unexpected-request';

/** The error type RFC 6120 §8.3.3 recommends for each condition. */
export const DEFAULT_ERROR_TYPE: Readonly<Record<StanzaErrorCondition, StanzaErrorType>> = {
  'bad-request': 'modify',
  conflict: 'cancel',
  'feature-not-implemented': 'cancel',
  forbidden: 'auth',
  gone: 'cancel',
  'internal-server-error': 'cancel',
  'item-not-found': 'cancel',
  'jid-malformed': 'modify',
  'not-acceptable': 'modify',
  'not-allowed': 'cancel',
  'not-authorized': 'auth',
  'policy-violation': 'modify',
  'recipient-unavailable': 'wait',
  redirect: 'modify',
  'registration-required': 'auth',
  'remote-server-not-found': 'cancel',
  'remote-server-timeout': 'wait',
  'resource-constraint': 'wait',
  'service-unavailable': 'cancel',
  'subscription-required': 'auth',
  'undefined-condition': 'cancel',
  'unexpected-request': 'wait',
};

/** A failure a handler throws to answer a stanza with a standard error instead of internal-server-error. */
export class StanzaError extends Error {
  readonly condition: StanzaErrorCondition;
  readonly type: StanzaErrorType;
  readonly text: string | undefined;
  readonly extra: Element | undefined;

  constructor(
    condition: StanzaErrorCondition,
    text?: string,
    options: { type?: StanzaErrorType; extra?: Element } = {},
  ) {
    super(text ?? condition);
    this.condition = condition;
    this.type = options.type ?? DEFAULT_ERROR_TYPE[condition];
    this.text = text;
    this.extra = options.extra;
  }
}

/** The `<error/>` child of a stanza error. */
export function errorElement(
  condition: StanzaErrorCondition,
  type: StanzaErrorType = DEFAULT_ERROR_TYPE[condition],
  text?: string,
  extra?: Element,
): Element {
  return xml(
    'error',
    { type },
    xml(condition, { xmlns: NS_STANZAS }),
    text === undefined ? null : xml('text', { xmlns: NS_STANZAS, 'xml:lang': 'en' }, text),
    extra,
  );
}

/**
 * The error reply to a stanza (RFC 6120 §8.3.1): same name and id, addresses swapped, type "error".
 * The original payload is not echoed back.
 */
export function errorReply(
  stanza: Element,
  error: StanzaError | StanzaErrorCondition,
  from?: string,
): Element {
  const err = typeof error === 'string' ? new StanzaError(error) : error;
  const reply = xml(stanza.name, {
    type: 'error',
    id: stanza.attrs.id as string | undefined,
    to: stanza.attrs.from as string | undefined,
    from: from ?? (stanza.attrs.to as string | undefined),
  });
  reply.cnode(errorElement(err.condition, err.type, err.text, err.extra));
  return reply;
}

/** The `<stream:error/>` element (RFC 6120 §4.9). */
export function streamErrorElement(condition: StreamErrorCondition, text?: string): Element {
  return xml(
    'stream:error',
    null,
    xml(condition, { xmlns: NS_STREAM_ERRORS }),
    text === undefined ? null : xml('text', { xmlns: NS_STREAM_ERRORS, 'xml:lang': 'en' }, text),
  );
}

/** A failure that ends the whole stream with a stream error. */
export class StreamError extends Error {
  readonly condition: StreamErrorCondition;
  readonly text: string | undefined;

  constructor(condition: StreamErrorCondition, text?: string) {
    super(text === undefined ? condition : `${condition}: ${text}`);
    this.condition = condition;
    this.text = text;
  }
}
