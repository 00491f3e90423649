// XEP-0313 on the router: archive writes and stanza-ids for messages routed to local users, and the
// hand-over of a user's MAM requests to the archive role on the same key as the writes.
import {
  encodeEnvelope,
  newEnvelopeId,
  TOPIC_ARCHIVE,
  type ArchiveWriteEnvelope,
  type FeatureContext,
  type HookMap,
  type HookResult,
  type MamQueryEnvelope,
} from '@starling/core';
import type { ArchiveDirection } from '@starling/ports';
import { attr, NS_CLIENT, NS_MAM, serialize, StanzaError, type Element, type Jid } from '@starling/xmpp';
import { newStanzaId, removeForgedStanzaIds, stanzaIdElement } from '../xep-0359-stanza-ids.ts';
import { isArchivable } from './archivable.ts';

// Last in the chain: only a message no other handler stopped (a blocked sender, say) reaches an archive.
const ARCHIVE_PRIORITY = -1000;

interface Write {
  readonly owner: Jid;
  readonly other: Jid;
  readonly direction: ArchiveDirection;
}

/** Writes one message to the archives of `writes`' owners, under one stanza id. */
type ArchiveWriter = (writes: readonly Write[], stanzaId: string, ts: number, xml: string) => Promise<void>;

/** Archive writes published on the archive topic, for the archive role to store. */
function publishWrites(ctx: FeatureContext): ArchiveWriter {
  return async (writes, stanzaId, ts, xml) => {
    await Promise.all(
      writes.map(({ owner, other, direction }) => {
        const key = owner.toString();
        const envelope: ArchiveWriteEnvelope = {
          t: 'archive-write',
          id: `${key}/${stanzaId}`,
          owner: key,
          stanzaId,
          with: other.toString(),
          direction,
          ts,
          xml,
        };
        return ctx.bus.publish(TOPIC_ARCHIVE, key, encodeEnvelope(envelope));
      }),
    );
  };
}

/**
 * Writes handed to the store in this process and not stored yet, past which a message waits for its own:
 * the archive's pace then holds the router back, as the archive topic's consumers would through the bus.
 */
export const MAX_UNSTORED = 20_000;
/**
 * The same bound in characters of stanza (a copy counts its stanza's length): what the writes under way
 * may hold in memory here and in the archive's thread, whose heap is sized for about a thousand stanzas of
 * the largest size (`archiveHeapMb`). Chat messages reach MAX_UNSTORED long before this; stanzas near
 * `limits.stanzaBytes` reach this first.
 */
export const MAX_UNSTORED_CHARS = 32 * 2 ** 20;

/**
 * Archive writes handed straight to the store (`archiveInProcess`). A message does not wait for them to
 * be stored, as it would not for a publish on the in-process bus, unless too many are under way.
 */
function storeWrites(ctx: FeatureContext): ArchiveWriter {
  let unstored = 0;
  let unstoredChars = 0;
  return async (writes, stanzaId, ts, xml) => {
    const settled = (): void => {
      unstored -= 1;
      unstoredChars -= xml.length;
    };
    const stored = writes.map(({ owner, other, direction }) => {
      unstored += 1;
      unstoredChars += xml.length;
      const entry = { id: stanzaId, with: other.toString(), ts, direction, stanza: xml };
      return ctx.store.archive.append(owner.local, entry).then(settled, (err: unknown) => {
        settled();
        ctx.log.error({ err, owner: owner.toString(), id: stanzaId }, 'archive write failed');
      });
    });
    if (unstored > MAX_UNSTORED || unstoredChars > MAX_UNSTORED_CHARS) await Promise.all(stored);
  };
}

/**
 * The message as archived. Forwarded inside a result, it needs its namespace spelled out (XEP-0297): set
 * for the serialization only, rather than copying the element by serializing and parsing it again.
 */
function archivedXml(stanza: Element): string {
  const own = stanza.attrs.xmlns as unknown;
  stanza.attrs.xmlns = NS_CLIENT;
  try {
    return serialize(stanza);
  } finally {
    if (own === undefined) delete stanza.attrs.xmlns;
    else stanza.attrs.xmlns = own;
  }
}

/**
 * A message on its way to a local user: forged stanza-ids go; an archivable one is written to the
 * recipient's archive and, when a local user sent it, to the sender's, under one new id, before it is
 * delivered or stored offline. Writing first is what lets the recipient read it from the archive as
 * soon as it arrived. The recipient's copy then carries the id (§3.5).
 */
async function archiveInbound(
  ctx: FeatureContext,
  write: ArchiveWriter,
  { stanza, from, to, online }: HookMap['stanza-inbound'],
): Promise<HookResult> {
  if (stanza.name !== 'message') return undefined;
  removeForgedStanzaIds(stanza, ctx.config.domain);
  if (to.local === '' || !isArchivable(stanza)) return undefined;
  // A message for an account that does not exist is bounced by routing, and archived nowhere.
  if (online !== true && (await ctx.store.accounts.get(to.local)) === undefined) return undefined;
  const recipient = to.bare();
  const sender = from.bare();
  const writes: Write[] = [{ owner: recipient, other: sender, direction: 'in' }];
  // A note to oneself is one message in one archive.
  if (from.local !== '' && ctx.isLocal(from) && !sender.equals(recipient)) {
    writes.push({ owner: sender, other: recipient, direction: 'out' });
  }
  const stanzaId = newStanzaId();
  await write(writes, stanzaId, Date.now(), archivedXml(stanza));
  stanza.cnode(stanzaIdElement(recipient.toString(), stanzaId));
  return undefined;
}

/** Whether the archive role answers this request (§4 queries and form, §6 metadata). */
function forArchive(stanza: Element): boolean {
  const payloads = stanza.getChildElements();
  const payload = payloads[0];
  if (payloads.length !== 1 || payload === undefined) return false;
  return payload.is('query', NS_MAM) || (payload.is('metadata', NS_MAM) && attr(stanza, 'type') === 'get');
}

async function forwardRequest(
  ctx: FeatureContext,
  { stanza, from, origin }: HookMap['account-iq'],
): Promise<HookResult> {
  // The answer goes to the requesting stream; without one there is nobody to send the results to.
  if (origin.edgeId === '' || !forArchive(stanza)) return undefined;
  const owner = from.bare().toString();
  const envelope: MamQueryEnvelope = {
    t: 'mam-query',
    id: newEnvelopeId(),
    owner,
    from: from.toString(),
    edgeId: origin.edgeId,
    sessionId: origin.sessionId,
    ts: Date.now(),
    xml: stanza.toString(),
  };
  await ctx.bus.publish(TOPIC_ARCHIVE, owner, encodeEnvelope(envelope));
  return 'handled';
}

/** Sets up the router's side of XEP-0313. */
export function setupArchiving(ctx: FeatureContext): void {
  const write = ctx.archiveInProcess ? storeWrites(ctx) : publishWrites(ctx);
  ctx.hooks.on('stanza-inbound', (payload) => archiveInbound(ctx, write, payload), ARCHIVE_PRIORITY);
  ctx.hooks.on('account-iq', (payload) => forwardRequest(ctx, payload));

  // Requests the archive role does not take: another user's archive (§8.1), or one sent with no stream.
  const refuse = ({ from, to }: { from: Jid; to: Jid }): never => {
    if (!to.equals(from.bare())) throw new StanzaError('forbidden', 'an archive is for its owner only');
    throw new StanzaError('service-unavailable');
  };
  const targets = { targets: ['account'] } as const;
  ctx.iq.onGet(NS_MAM, 'query', refuse, targets);
  ctx.iq.onSet(NS_MAM, 'query', refuse, targets);
  ctx.iq.onGet(NS_MAM, 'metadata', refuse, targets);
}
