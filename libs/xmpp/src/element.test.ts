// The element helpers: serialize must give exactly the text ltx gives, escapes included.
import * as ltx from 'ltx';
import { describe, expect, it } from 'vitest';
import { parseTrusted, serialize, xml } from './element.ts';

/** A small deterministic generator, so a failure names its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

const PIECES = ['a', 'é', '&', '<', '>', '"', "'", ' ', '&amp;', ']]>', '\t', '😀', 'x'];

function text(next: () => number): string {
  let out = '';
  for (let n = Math.floor(next() * 6); n > 0; n--) out += PIECES[Math.floor(next() * PIECES.length)] ?? '';
  return out;
}

function element(next: () => number, depth: number): ltx.Element {
  const el = new ltx.Element(`e${Math.floor(next() * 3)}`);
  for (let n = Math.floor(next() * 4); n > 0; n--) el.attrs[`a${n}`] = text(next);
  for (let n = depth > 0 ? Math.floor(next() * 4) : 0; n > 0; n--) {
    if (next() < 0.5) el.t(text(next));
    else el.cnode(element(next, depth - 1));
  }
  return el;
}

describe('serialize', () => {
  it('gives what ltx gives for a chat message with a stanza-id', () => {
    const message = parseTrusted(
      `<message xmlns='jabber:client' to='juliet@example.com' from='romeo@example.com/orchard' type='chat' id='a1'>` +
        `<body>Art thou not Romeo, &amp; a Montague? 1 &lt; 2</body>` +
        `<stanza-id xmlns='urn:xmpp:sid:0' by='juliet@example.com' id='28482-98726-73623'/></message>`,
    );
    expect(serialize(message)).toBe(message.toString());
    expect(serialize(message)).toContain('<body>Art thou not Romeo, &amp; a Montague? 1 &lt; 2</body>');
  });

  it('escapes attribute values and text as ltx does, and writes numbers and empty elements alike', () => {
    const el = xml(
      'iq',
      { id: `q"'<>&`, type: 'set' },
      xml('query', { xmlns: 'jabber:iq:roster' }),
      `a<b>&"'`,
    );
    el.attrs.count = 3;
    el.children.push(7 as unknown as ltx.Element);
    expect(serialize(el)).toBe(el.toString());
    expect(serialize(el)).toBe(
      `<iq id="q&quot;&apos;&lt;&gt;&amp;" type="set" count="3"><query xmlns="jabber:iq:roster"/>a&lt;b&gt;&amp;"'7</iq>`,
    );
  });

  it('leaves out null attributes and children, as ltx does', () => {
    const el = new ltx.Element('presence', { to: 'a@example.com', type: null });
    el.children.push(null as unknown as ltx.Element, 'x');
    expect(serialize(el)).toBe(el.toString());
    expect(serialize(el)).toBe('<presence to="a@example.com">x</presence>');
  });

  it('gives what ltx gives for 2,000 generated elements', () => {
    for (let seed = 1; seed <= 2_000; seed++) {
      const el = element(random(seed), 3);
      expect(serialize(el), `seed ${seed}`).toBe(el.toString());
    }
  });
});
