// RFC 6120 §4.3.2: the features offered at each stage of negotiation, plus XEP-0077, XEP-0115 and RFC 6121 extras.
import {
  NS_BIND,
  NS_CAPS,
  NS_PRE_APPROVAL,
  NS_REGISTER_FEATURE,
  NS_ROSTER_VER,
  NS_SASL,
  NS_SESSION,
  NS_STREAM,
  NS_TLS,
  xml,
  type Element,
} from '@starling/xmpp';
import { NS_SM } from './stream-management.ts';

export interface Caps {
  readonly node: string;
  readonly ver: string;
  readonly hash: string;
}

export interface PreAuthOffer {
  /** STARTTLS is still possible on this connection. */
  readonly startTls: boolean;
  readonly tlsRequired: boolean;
  /** Empty when nothing else may be negotiated before TLS. */
  readonly mechanisms: readonly string[];
  readonly registration: boolean;
  readonly caps: Caps | undefined;
}

function featuresElement(framed: boolean, ...children: (Element | undefined)[]): Element {
  // RFC 7395 §3.4: each WebSocket message is a standalone document, so the prefix is declared on it.
  return xml('stream:features', framed ? { 'xmlns:stream': NS_STREAM } : null, ...children);
}

function capsElement(caps: Caps | undefined): Element | undefined {
  return caps === undefined
    ? undefined
    : xml('c', { xmlns: NS_CAPS, hash: caps.hash, node: caps.node, ver: caps.ver });
}

/** Features before authentication. */
export function preAuthFeatures(offer: PreAuthOffer, framed: boolean): Element {
  const tls = offer.startTls
    ? xml('starttls', { xmlns: NS_TLS }, offer.tlsRequired ? xml('required') : null)
    : undefined;
  // RFC 6120 §5.3.1: with TLS mandatory to negotiate, nothing else is advertised before it.
  if (offer.startTls && offer.tlsRequired) return featuresElement(framed, tls);
  const mechanisms =
    offer.mechanisms.length === 0
      ? undefined
      : xml(
          'mechanisms',
          { xmlns: NS_SASL },
          ...offer.mechanisms.map((name) => xml('mechanism', null, name)),
        );
  const register = offer.registration ? xml('register', { xmlns: NS_REGISTER_FEATURE }) : undefined;
  return featuresElement(framed, tls, mechanisms, register, capsElement(offer.caps));
}

/** Features after authentication (RFC 6120 §7, RFC 3921 §3 legacy session, RFC 6121 roster extras). */
export function postAuthFeatures(
  caps: Caps | undefined,
  framed: boolean,
  streamManagement: boolean,
): Element {
  return featuresElement(
    framed,
    xml('bind', { xmlns: NS_BIND }),
    streamManagement ? xml('sm', { xmlns: NS_SM }) : undefined,
    xml('session', { xmlns: NS_SESSION }, xml('optional')),
    xml('ver', { xmlns: NS_ROSTER_VER }),
    xml('sub', { xmlns: NS_PRE_APPROVAL }),
    capsElement(caps),
  );
}
