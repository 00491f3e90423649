// The bus catalogue: every topic, its key, and the envelope that travels on it.
import { randomBytes } from 'node:crypto';
import type { ArchiveDirection, SessionRecord } from '@starling/ports';

/** Client stanzas from edges, keyed by the sender's bare JID; consumed by the router. */
export const TOPIC_STANZAS = 'xmpp.stanzas';
/**
 * Presence stanzas and session ends, keyed by the sender's bare JID, and word of messages stored offline,
 * keyed by their recipient's; consumed by the presence role.
 */
export const TOPIC_PRESENCE = 'xmpp.presence';

/**
 * Archive writes and MAM queries, keyed by the bare JID of the archive's owner; consumed by the archive
 * role. Queries travel the key of the archive they read, behind its writes, so a user reads their own writes.
 */
export const TOPIC_ARCHIVE = 'xmpp.archive';

export const GROUP_ROUTER = 'router';
export const GROUP_PRESENCE = 'presence';
export const GROUP_ARCHIVE = 'archive';

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
   * 'unacked': it reached a stream-managed session that ended without acknowledging it (XEP-0198 §5);
   * route it again to its recipient, without the inbound processing it already had.
   */
  readonly dir?: 'in' | 'unacked';
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

/**
 * A message was stored offline for `owner` (a bare JID) while a session of it was, or was becoming, an
 * available resource (XEP-0160): the presence role hands the stored messages over. It comes on the
 * owner's key, behind any initial presence of the owner, whose own hand-over may have run before the
 * message was stored.
 */
export interface OfflineStoredEnvelope {
  readonly t: 'offline-stored';
  readonly id: string;
  readonly ts: number;
  readonly owner: string;
}

export type Envelope = StanzaEnvelope | SessionEndEnvelope | OfflineStoredEnvelope;

/** A routed message to add to the archive of a local account (XEP-0313 §3). */
export interface ArchiveWriteEnvelope {
  readonly t: 'archive-write';
  /**
   * Unique per record: the owner and the stanza id. Not checked against replays: stores keep the first
   * entry of a stanza id in an archive, so a replay changes nothing.
   */
  readonly id: string;
  /** Bare JID of the archive's owner, the record's key. */
  readonly owner: string;
  /** The archive's id for the message, as in the stanza-id the recipient got (XEP-0359). */
  readonly stanzaId: string;
  /** Bare JID of the other party. */
  readonly with: string;
  readonly direction: ArchiveDirection;
  /** Milliseconds since the epoch when the router routed the message. */
  readonly ts: number;
  /** The message as routed. */
  readonly xml: string;
}

/** A MAM request (XEP-0313 §4) a local session sent to its own archive; answered to that session. */
export interface MamQueryEnvelope {
  readonly t: 'mam-query';
  readonly id: string;
  /** Bare JID of the archive's owner, the record's key. */
  readonly owner: string;
  /** Full JID of the requesting session. */
  readonly from: string;
  readonly sessionId: string;
  readonly edgeId: string;
  /** Milliseconds since the epoch when the edge received it. */
  readonly ts: number;
  /** The IQ as the session sent it, `from` stamped. */
  readonly xml: string;
}

/** What travels on the archive topic. */
export type ArchiveEnvelope = ArchiveWriteEnvelope | MamQueryEnvelope;

/**
 * A stanza a stream-managed session `jid` was sent but never acknowledged, to be routed again; keyed by
 * that session's bare JID on the stanzas topic. Presence is not: it is state, and the contact's current
 * presence reaches the user's next session anyway. Undefined for presence.
 */
export function unackedEnvelope(jid: string, stanza: string): StanzaEnvelope | undefined {
  if (stanza.startsWith('<presence')) return undefined;
  return {
    t: 'stanza',
    dir: 'unacked',
    id: newEnvelopeId(),
    from: jid,
    sessionId: '',
    edgeId: '',
    ts: Date.now(),
    xml: stanza,
  };
}

/** What the ids of this process start with: 96 random bits, so no two processes share it. */
const ID_PREFIX = `${randomBytes(12).toString('base64url')}.`;
let idCount = 0;

/**
 * A new envelope id, unique as the replay guard needs: this process's random prefix, then a count. About a
 * third shorter than a UUID, and made without drawing random bytes or building its text by pieces, which
 * costs the edge a few hundred bytes of garbage per stanza.
 */
export function newEnvelopeId(): string {
  idCount += 1;
  return ID_PREFIX + idCount.toString(36);
}

export function encodeEnvelope(envelope: Envelope | ArchiveEnvelope): string {
  return JSON.stringify(envelope);
}

/**
 * The compact form of a stanza envelope: `st1`, then direction, id, sender, session, edge and time, each
 * after a tab, then the stanza as it is after a line break. Cheaper than JSON to write and to read, and the
 * stanza is not escaped. `decodeEnvelope` reads both forms; only a deployment whose readers all run this
 * release or a later one writes it (see `RoleDeps.compactEnvelopes`). A field with a tab or a line break
 * (prepared JIDs and our ids hold none) or a time that is not an integer keeps the envelope in JSON.
 *
 * Archive writes stay JSON: the archive keeps a write's message until it is stored, and a message cut
 * out of the record keeps the whole record alive with it (measured: more time in scavenges, no less CPU).
 */
const COMPACT_STANZA = 'st1\t';
const SEPARATOR = /[\t\n]/;

/** A stanza envelope in the compact form, or as JSON if a field cannot go into it. */
export function encodeStanzaEnvelope(envelope: StanzaEnvelope): string {
  const { dir = '', id, from, sessionId, edgeId, ts, xml } = envelope;
  if (
    !Number.isSafeInteger(ts) ||
    SEPARATOR.test(id) ||
    SEPARATOR.test(from) ||
    SEPARATOR.test(sessionId) ||
    SEPARATOR.test(edgeId)
  ) {
    return encodeEnvelope(envelope);
  }
  return `${COMPACT_STANZA}${dir}\t${id}\t${from}\t${sessionId}\t${edgeId}\t${ts}\n${xml}`;
}

function decodeCompactStanza(value: string): StanzaEnvelope {
  const end = value.indexOf('\n');
  const fields = end < 0 ? [] : value.slice(COMPACT_STANZA.length, end).split('\t');
  const [dir, id, from, sessionId = '', edgeId = '', time = ''] = fields;
  const ts = Number(time);
  if (
    fields.length !== 6 ||
    !id ||
    !from ||
    (dir !== '' && dir !== 'in' && dir !== 'unacked') ||
    String(ts) !== time ||
    !Number.isSafeInteger(ts)
  ) {
    throw new Error('malformed stanza envelope');
  }
  const envelope = { t: 'stanza', id, from, sessionId, edgeId, ts, xml: value.slice(end + 1) } as const;
  return dir === '' ? envelope : { ...envelope, dir };
}

/** An envelope of the stanzas or presence topic, in either form. */
export function decodeEnvelope(value: string): Envelope {
  if (value.startsWith(COMPACT_STANZA)) return decodeCompactStanza(value);
  const parsed: unknown = JSON.parse(value);
  const kind = typeof parsed === 'object' && parsed !== null ? (parsed as { t?: unknown }).t : undefined;
  if (kind !== 'stanza' && kind !== 'session-end' && kind !== 'offline-stored') {
    throw new Error('unknown envelope');
  }
  return parsed as Envelope;
}

export function decodeArchiveEnvelope(value: string): ArchiveEnvelope {
  const parsed: unknown = JSON.parse(value);
  const kind = typeof parsed === 'object' && parsed !== null ? (parsed as { t?: unknown }).t : undefined;
  if (kind !== 'archive-write' && kind !== 'mam-query') throw new Error('unknown archive envelope');
  return parsed as ArchiveEnvelope;
}
