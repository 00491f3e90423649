// XEP-0359: Unique and Stable Stanza IDs. The ids the server assigns to archived messages, and their elements.
import { randomFillSync } from 'node:crypto';
import { defineFeature } from '@starling/core';
import { attr, Jid, NS_SID, xml, type Element } from '@starling/xmpp';

/** Crockford's base32 alphabet, as the character codes the ids are written in. */
const CROCKFORD = Buffer.from('0123456789ABCDEFGHJKMNPQRSTVWXYZ', 'latin1');
/** Characters of an id's time part (50 bits, of which 48 are used), and of the whole id. */
const TIME_CHARS = 10;
const ID_CHARS = 26;
/** Random bytes of an id. */
const RANDOM_BYTES = 10;
/** Drawn from the system a few hundred ids' worth at a time; each byte is used once. */
const pool = Buffer.alloc(RANDOM_BYTES * 400);
let poolAt = pool.length;
/**
 * Where each id is written before it becomes one string. The time part stays while the millisecond does,
 * since a busy router makes several ids in one.
 */
const written = Buffer.alloc(ID_CHARS);
let writtenMs = -1;

/**
 * A new stanza id: 48 bits of milliseconds then 80 random bits, 26 characters of Crockford base32. Ids
 * of later milliseconds sort after earlier ones; the random part keeps them unpredictable (§5).
 */
export function newStanzaId(now: number = Date.now()): string {
  if (now !== writtenMs) {
    let rest = now;
    for (let i = TIME_CHARS - 1; i >= 0; i--) {
      written[i] = CROCKFORD[rest % 32] as number;
      rest = Math.floor(rest / 32);
    }
    writtenMs = now;
  }
  if (poolAt === pool.length) {
    randomFillSync(pool);
    poolAt = 0;
  }
  // Two halves of 40 bits, 8 characters each: whole numbers that small are exact in a double.
  for (let half = 0; half < 2; half++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) bits = bits * 256 + (pool[poolAt++] as number);
    const start = TIME_CHARS + 8 * half;
    for (let i = start + 7; i >= start; i--) {
      written[i] = CROCKFORD[bits % 32] as number;
      bits = Math.floor(bits / 32);
    }
  }
  return written.toString('latin1');
}

/** The `<stanza-id/>` an archive at `by` (a bare JID) adds to a message it stored as `id`. */
export function stanzaIdElement(by: string, id: string): Element {
  return xml('stanza-id', { xmlns: NS_SID, by, id });
}

/**
 * §5 rule 3: a stanza-id that claims to come from this server (its domain or any of its accounts) was
 * not assigned here, since the server adds its own only after this; it is dropped, whoever sent it.
 */
export function removeForgedStanzaIds(stanza: Element, domain: string): void {
  // Most messages carry none: their children are left as they are, not copied.
  if (!stanza.children.some((child) => typeof child !== 'string' && child.getName() === 'stanza-id')) return;
  stanza.children = stanza.children.filter((child) => {
    if (typeof child === 'string' || !child.is('stanza-id', NS_SID)) return true;
    const by = Jid.tryParse(attr(child, 'by') ?? '');
    return by?.domain !== domain;
  });
}

/** The ids are assigned by XEP-0313 archiving on the router; declared for disco and the specification table. */
export default defineFeature({
  id: 'xep-0359-stanza-ids',
  spec: { xep: 359, title: 'Unique and Stable Stanza IDs' },
  roles: ['router'],
  // Without archives no message gets an id, so none is announced.
  enabled: (config) => config.archive.enabled,
  disco: { accountFeatures: [NS_SID] },
});
