// The envelopes' two forms: JSON, and the compact form of stanza envelopes and archive writes.
import { describe, expect, it } from 'vitest';
import {
  decodeArchiveEnvelope,
  decodeEnvelope,
  encodeArchiveWrite,
  encodeEnvelope,
  encodeStanzaEnvelope,
  type ArchiveWriteEnvelope,
  type MamQueryEnvelope,
  type SessionEndEnvelope,
  type StanzaEnvelope,
} from './topics.ts';

const WRITE: ArchiveWriteEnvelope = {
  t: 'archive-write',
  id: 'juliet@example.com/Xk3-9aQ',
  owner: 'juliet@example.com',
  stanzaId: 'Xk3-9aQ',
  with: 'romeo@example.com',
  direction: 'in',
  ts: 1_795_362_131_641,
  // Quotes, a tab, line breaks and non-ASCII text go through as they are.
  xml: `<message xmlns="jabber:client" from="romeo@example.com/orchard" to="juliet@example.com" type="chat"><body>Wherefore\tart thou,\nRomeo? — «ça»</body></message>`,
};

describe('archive envelopes', () => {
  it('writes an archive write compactly, with the message unescaped, and reads it back as it was', () => {
    const value = encodeArchiveWrite(WRITE);
    expect(value.startsWith('aw1\t')).toBe(true);
    expect(value.endsWith(`\n${WRITE.xml}`)).toBe(true);
    expect(value.length).toBeLessThan(encodeEnvelope(WRITE).length);
    expect(decodeArchiveEnvelope(value)).toEqual(WRITE);
    expect(decodeArchiveEnvelope(encodeArchiveWrite({ ...WRITE, direction: 'out' }))).toEqual({
      ...WRITE,
      direction: 'out',
    });
  });

  it('still reads JSON, as written by releases before and by clusters that keep it', () => {
    const query: MamQueryEnvelope = {
      t: 'mam-query',
      id: 'q1',
      owner: WRITE.owner,
      from: `${WRITE.owner}/balcony`,
      sessionId: 's1',
      edgeId: 'edge-1',
      ts: WRITE.ts,
      xml: `<iq type="set" id="q"><query xmlns="urn:xmpp:mam:2"/></iq>`,
    };
    expect(decodeArchiveEnvelope(encodeEnvelope(WRITE))).toEqual(WRITE);
    expect(decodeArchiveEnvelope(encodeEnvelope(query))).toEqual(query);
  });

  it('keeps JSON for a write whose fields the compact form cannot carry', () => {
    for (const odd of [
      { ...WRITE, with: 'romeo@example.com\tx' },
      { ...WRITE, owner: 'juliet@example.com\n', id: 'juliet@example.com\n/Xk3-9aQ' },
      { ...WRITE, id: 'another id' },
      { ...WRITE, ts: 1.5 },
    ]) {
      const value = encodeArchiveWrite(odd);
      expect(value.startsWith('{')).toBe(true);
      expect(decodeArchiveEnvelope(value)).toEqual(odd);
    }
  });

  it('refuses a compact write with missing or malformed fields', () => {
    const good = encodeArchiveWrite(WRITE);
    const header = good.slice(0, good.indexOf('\n'));
    const message = '\n<message/>';
    for (const bad of [
      // No line break before the message.
      header,
      header.replace('\tin\t', '\tsideways\t') + message,
      header.replace(`\t${WRITE.ts}`, '\t') + message,
      header.replace(`\t${WRITE.ts}`, '\t12e3') + message,
      header.replace(`\t${WRITE.ts}`, `\t${WRITE.ts}\textra`) + message,
      header.replace('juliet@example.com', '') + message,
    ]) {
      expect(() => decodeArchiveEnvelope(bad)).toThrow('malformed archive envelope');
    }
    expect(() => decodeArchiveEnvelope('aw2\tx')).toThrow();
  });
});

const STANZA: StanzaEnvelope = {
  t: 'stanza',
  id: 'sm:Zq81:17',
  from: 'romeo@example.com/orchard',
  sessionId: '5c7d0e2a-1b3f-4a5e-9c8d-7e6f5a4b3c2d',
  edgeId: 'edge-1',
  ts: 1_795_362_131_641,
  xml: WRITE.xml,
};

describe('stanza envelopes', () => {
  it('writes a stanza envelope compactly and reads it back as it was, with or without a direction', () => {
    const value = encodeStanzaEnvelope(STANZA);
    expect(value.startsWith('st1\t')).toBe(true);
    expect(value.endsWith(`\n${STANZA.xml}`)).toBe(true);
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
    const odd = { ...STANZA, from: 'romeo@example.com/a\tb' };
    expect(encodeStanzaEnvelope(odd).startsWith('{')).toBe(true);
    expect(decodeEnvelope(encodeStanzaEnvelope(odd))).toEqual(odd);

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
