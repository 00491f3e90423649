// Stanza envelopes' two forms: JSON, and the compact form.
import { describe, expect, it, vi } from 'vitest';
import {
  decodeEnvelope,
  encodeEnvelope,
  encodeStanzaEnvelope,
  newEnvelopeId,
  type SessionEndEnvelope,
  type StanzaEnvelope,
} from './topics.ts';

const STANZA: StanzaEnvelope = {
  t: 'stanza',
  id: 'sm:Zq81:17',
  from: 'romeo@example.com/orchard',
  sessionId: '5c7d0e2a-1b3f-4a5e-9c8d-7e6f5a4b3c2d',
  edgeId: 'edge-1',
  ts: 1_795_362_131_641,
  // Quotes, a tab, line breaks and non-ASCII text go through as they are.
  xml: `<message xmlns="jabber:client" from="romeo@example.com/orchard" to="juliet@example.com" type="chat"><body>Wherefore\tart thou,\nRomeo? — «ça»</body></message>`,
};

describe('stanza envelopes', () => {
  it('writes a stanza envelope compactly and reads it back as it was, with or without a direction', () => {
    const value = encodeStanzaEnvelope(STANZA);
    expect(value.startsWith('st1\t')).toBe(true);
    expect(value.endsWith(`\n${STANZA.xml}`)).toBe(true);
    expect(value.length).toBeLessThan(encodeEnvelope(STANZA).length);
    expect(decodeEnvelope(value)).toEqual(STANZA);
    expect(decodeEnvelope(value)).not.toHaveProperty('dir');
    for (const dir of ['in', 'unacked'] as const) {
      expect(decodeEnvelope(encodeStanzaEnvelope({ ...STANZA, dir }))).toEqual({ ...STANZA, dir });
    }
    // Stanzas the server emits have no session and no edge.
    const emitted = { ...STANZA, sessionId: '', edgeId: '' };
    expect(decodeEnvelope(encodeStanzaEnvelope(emitted))).toEqual(emitted);
  });

  it('still reads JSON, keeps JSON for fields the compact form cannot carry, and refuses malformed headers', () => {
    const end: SessionEndEnvelope = {
      t: 'session-end',
      id: 'e1',
      ts: STANZA.ts,
      record: {
        jid: STANZA.from,
        sessionId: STANZA.sessionId,
        edgeId: STANZA.edgeId,
        boundAt: STANZA.ts,
        priority: 0,
        available: false,
        interested: false,
      },
    };
    expect(decodeEnvelope(encodeEnvelope(STANZA))).toEqual(STANZA);
    expect(decodeEnvelope(encodeEnvelope(end))).toEqual(end);
    for (const odd of [
      { ...STANZA, from: 'romeo@example.com/a\tb' },
      { ...STANZA, id: 'x\ny' },
      { ...STANZA, ts: 1.5 },
    ]) {
      expect(encodeStanzaEnvelope(odd).startsWith('{')).toBe(true);
      expect(decodeEnvelope(encodeStanzaEnvelope(odd))).toEqual(odd);
    }

    const good = encodeStanzaEnvelope(STANZA);
    const header = good.slice(0, good.indexOf('\n'));
    for (const bad of [
      header,
      header.replace('st1\t', 'st1\tsideways') + '\n<message/>',
      header.replace(STANZA.id, '') + '\n<message/>',
      header.replace(`\t${STANZA.ts}`, '\tsoon') + '\n<message/>',
      header.replace(`\t${STANZA.edgeId}`, '') + '\n<message/>',
    ]) {
      expect(() => decodeEnvelope(bad)).toThrow('malformed stanza envelope');
    }
  });
});

describe('envelope ids', () => {
  it('never repeats one, and each fits the compact form', () => {
    const ids = Array.from({ length: 10_000 }, () => newEnvelopeId());
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^[\w-]{16}\.[0-9a-z]+$/);
    const encoded = encodeStanzaEnvelope({ ...STANZA, id: ids[0] as string });
    expect(encoded.startsWith('st1\t')).toBe(true);
    expect(decodeEnvelope(encoded)).toEqual({ ...STANZA, id: ids[0] });
  });

  it('gives another process ids of its own: they start differently', async () => {
    // The module loaded afresh, as another process loads it, counts from 1 again.
    vi.resetModules();
    const fresh = await import('./topics.ts');
    const theirs = fresh.newEnvelopeId();
    const ours = newEnvelopeId();
    expect(theirs).toMatch(/\.1$/);
    expect(theirs.split('.')[0]).not.toBe(ours.split('.')[0]);
  });
});
