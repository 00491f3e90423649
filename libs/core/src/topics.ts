// The bus catalogue: every topic, its key, and the envelope that travels on it.
import type { SessionRecord } from '@starling/ports';

/** Client stanzas from edges, keyed by the sender's bare JID; consumed by the router. */
export const TOPIC_STANZAS = 'xmpp.stanzas';
/** Presence stanzas and session ends, keyed by the sender's bare JID; consumed by the presence role. */
export const TOPIC_PRESENCE = 'xmpp.presence';

export const GROUP_ROUTER = 'router';
export const GROUP_PRESENCE = 'presence';

/**
 * A stanza a local session sent (`from` stamped with its full JID), or one the server emits on behalf of
 * a local entity (then `sessionId` and `edgeId` are empty).
 */
export interface StanzaEnvelope {
  readonly t: 'stanza';
  /**
   * Absent: the sender's side still has to process it (keyed by the sender's bare JID).
   * 'in': the sender's side is done; process it for the recipient (keyed by the recipient's bare JID),
   * e.g. an inbound subscription request on the presence topic.
   */
  readonly dir?: 'in';
  /** Unique per record; replays with the same id are dropped. */
  readonly id: string;
  /** Full JID of the sending session. */
  readonly from: string;
  readonly sessionId: string;
  readonly edgeId: string;
  /** Milliseconds since the epoch when the edge received it. */
  readonly ts: number;
  readonly xml: string;
}

/** A session's stream ended (closed, failed, or replaced); presence tells its contacts. */
export interface SessionEndEnvelope {
  readonly t: 'session-end';
  readonly id: string;
  readonly ts: number;
  readonly record: SessionRecord;
}

export type Envelope = StanzaEnvelope | SessionEndEnvelope;

export function encodeEnvelope(envelope: Envelope): string {
  return JSON.stringify(envelope);
}

export function decodeEnvelope(value: string): Envelope {
  const parsed: unknown = JSON.parse(value);
  const kind = typeof parsed === 'object' && parsed !== null ? (parsed as { t?: unknown }).t : undefined;
  if (kind !== 'stanza' && kind !== 'session-end') throw new Error('unknown envelope');
  return parsed as Envelope;
}
