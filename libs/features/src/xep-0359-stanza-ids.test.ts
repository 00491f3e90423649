// XEP-0359: the ids the server assigns, and the forged stanza-ids it drops.
import { describe, expect, it } from 'vitest';
import { parseTrusted } from '@starling/xmpp';
import { newStanzaId, removeForgedStanzaIds, stanzaIdElement } from './xep-0359-stanza-ids.ts';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

describe('newStanzaId', () => {
  it('gives 26 characters of Crockford base32, sorting by the millisecond it was made in', () => {
    const times = [0, 1, 31, 32, 1_700_000_000_000, 1_700_000_000_001, 2 ** 47];
    const ids = times.map((t) => newStanzaId(t));
    for (const id of ids) expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect([...ids].sort()).toEqual(ids);
  });

  it('writes the millisecond in its first ten characters, also when it changes back', () => {
    const decode = (id: string): number => {
      let n = 0;
      for (let i = 0; i < 10; i++) n = n * 32 + ALPHABET.indexOf(id.charAt(i));
      return n;
    };
    for (const t of [
      1_700_000_000_000,
      1_700_000_000_000,
      1_700_000_000_001,
      0,
      2 ** 48 - 1,
      1_700_000_000_000,
    ]) {
      expect(decode(newStanzaId(t))).toBe(t);
    }
  });

  it('draws every character of its random part from the whole alphabet', () => {
    const ids = Array.from({ length: 2000 }, () => newStanzaId(1_700_000_000_000));
    for (let position = 10; position < 26; position++) {
      const seen = new Set(ids.map((id) => id[position]));
      expect(seen.size).toBe(32);
    }
  });

  it('never repeats, also within one millisecond', () => {
    const ids = Array.from({ length: 1000 }, () => newStanzaId(1_700_000_000_000));
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('removeForgedStanzaIds', () => {
  it('drops the stanza-ids claiming this domain or its accounts, keeps the others and everything else', () => {
    const message = parseTrusted(
      '<message to="juliet@example.com">' +
        '<stanza-id xmlns="urn:xmpp:sid:0" by="juliet@example.com" id="forged"/>' +
        '<body>hi</body>' +
        '<sid:stanza-id xmlns:sid="urn:xmpp:sid:0" by="EXAMPLE.com" id="prefixed"/>' +
        '<stanza-id xmlns="urn:xmpp:sid:0" by="room@conference.example.org" id="theirs"/>' +
        '<origin-id xmlns="urn:xmpp:sid:0" id="client"/>' +
        '<stanza-id xmlns="urn:other" by="juliet@example.com" id="not-sid"/>' +
        '</message>',
    );
    removeForgedStanzaIds(message, 'example.com');
    expect(message.toString()).toBe(
      '<message to="juliet@example.com"><body>hi</body>' +
        '<stanza-id xmlns="urn:xmpp:sid:0" by="room@conference.example.org" id="theirs"/>' +
        '<origin-id xmlns="urn:xmpp:sid:0" id="client"/>' +
        '<stanza-id xmlns="urn:other" by="juliet@example.com" id="not-sid"/></message>',
    );
  });

  it('drops a forged stanza-id written with a prefix when it is the only one', () => {
    const message = parseTrusted(
      '<message to="juliet@example.com"><body>hi</body>' +
        '<sid:stanza-id xmlns:sid="urn:xmpp:sid:0" by="example.com" id="prefixed"/></message>',
    );
    removeForgedStanzaIds(message, 'example.com');
    expect(message.toString()).toBe('<message to="juliet@example.com"><body>hi</body></message>');
  });

  it('builds the element an archive adds', () => {
    expect(stanzaIdElement('juliet@example.com', 'X1').toString()).toBe(
      '<stanza-id xmlns="urn:xmpp:sid:0" by="juliet@example.com" id="X1"/>',
    );
  });
});
