// XEP-0313 §5.1.1 with XEP-0334 hints: which messages an archive keeps.
import { parseTrusted } from '@starling/xmpp';
import { describe, expect, it } from 'vitest';
import { isArchivable } from './archivable.ts';

const archivable = (text: string): boolean => isArchivable(parseTrusted(text));
const HINTS = "xmlns='urn:xmpp:hints'";

describe('isArchivable', () => {
  it('keeps chat and normal messages with a body, and a message with no type', () => {
    expect(archivable("<message type='chat'><body>hi</body></message>")).toBe(true);
    expect(archivable("<message type='normal'><body>hi</body></message>")).toBe(true);
    expect(archivable('<message><body>hi</body></message>')).toBe(true);
  });

  it('never keeps errors, headlines, groupchat or other stanzas', () => {
    for (const type of ['error', 'headline', 'groupchat']) {
      expect(archivable(`<message type='${type}'><body>hi</body></message>`), type).toBe(false);
    }
    expect(archivable('<presence><body>hi</body></presence>')).toBe(false);
  });

  it('leaves out chat states alone, and keeps them with a store hint', () => {
    const state = "<active xmlns='http://jabber.org/protocol/chatstates'/>";
    expect(archivable(`<message type='chat'>${state}</message>`)).toBe(false);
    expect(archivable(`<message type='chat'>${state}<store ${HINTS}/></message>`)).toBe(true);
  });

  it('keeps end-to-end encrypted payloads without a body', () => {
    expect(archivable("<message type='chat'><encrypted xmlns='urn:xmpp:omemo:2'/></message>")).toBe(true);
    expect(archivable("<message type='chat'><openpgp xmlns='urn:xmpp:openpgp:0'>x</openpgp></message>")).toBe(
      true,
    );
    expect(archivable("<message type='chat'><encrypted xmlns='urn:other'/></message>")).toBe(false);
  });

  it('honours no-store and no-permanent-store wherever they stand, prefixed or not', () => {
    expect(archivable(`<message type='chat'><no-store ${HINTS}/><body>hi</body></message>`)).toBe(false);
    expect(archivable(`<message type='chat'><body>hi</body><no-permanent-store ${HINTS}/></message>`)).toBe(
      false,
    );
    expect(
      archivable("<message type='chat'><body>hi</body><h:no-store xmlns:h='urn:xmpp:hints'/></message>"),
    ).toBe(false);
    // The hint's name in another namespace is not the hint.
    expect(archivable("<message type='chat'><body>hi</body><no-store xmlns='urn:other'/></message>")).toBe(
      true,
    );
  });
});
