// RFC 6120 §4, §11 and RFC 7395 §3.3: the stream parser turns hostile client input into elements or one stream error.
import { describe, expect, it } from 'vitest';
import type { Element } from './element.ts';
import type { StreamErrorCondition } from './errors.ts';
import { StreamParser, type StreamParserLimits, type StreamParserMode } from './stream-parser.ts';

const encoder = new TextEncoder();

const LIMITS: StreamParserLimits = {
  maxStanzaBytes: 10_000,
  maxDepth: 10,
  maxAttributes: 20,
  maxChildren: 50,
};

const HEADER =
  "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'" +
  " to='example.com' version='1.0' xml:lang='en'>";

type Recorded =
  | { type: 'start'; attrs: Record<string, string> }
  | { type: 'element'; el: Element }
  | { type: 'end' }
  | { type: 'error'; condition: StreamErrorCondition };

function open(mode: StreamParserMode = 'stream', limits: StreamParserLimits = LIMITS) {
  const events: Recorded[] = [];
  const parser = new StreamParser(mode, limits, {
    streamStart: (attrs) => events.push({ type: 'start', attrs }),
    element: (el) => events.push({ type: 'element', el }),
    streamEnd: () => events.push({ type: 'end' }),
    error: (err) => events.push({ type: 'error', condition: err.condition }),
  });
  const write = (...parts: (string | Uint8Array)[]): void => {
    for (const part of parts) parser.write(typeof part === 'string' ? encoder.encode(part) : part);
  };
  const elements = (): Element[] => events.flatMap((e) => (e.type === 'element' ? [e.el] : []));
  const errors = (): StreamErrorCondition[] =>
    events.flatMap((e) => (e.type === 'error' ? [e.condition] : []));
  return { parser, events, write, elements, errors };
}

function errorsOf(mode: StreamParserMode, ...parts: (string | Uint8Array)[]): StreamErrorCondition[] {
  const s = open(mode);
  s.write(...parts);
  return s.errors();
}

function bytes(...values: number[]): Uint8Array {
  return Uint8Array.from(values);
}

describe('stream mode', () => {
  it('reports the header attributes as written, stanzas, and the end of the stream', () => {
    const s = open();
    s.write(
      "<?xml version='1.0' encoding='UTF-8'?>",
      HEADER,
      "<presence/> \n<message to='a@b'/>",
      '</stream:stream>',
    );
    expect(s.events.map((e) => e.type)).toEqual(['start', 'element', 'element', 'end']);
    expect(s.events[0]).toEqual({
      type: 'start',
      attrs: {
        xmlns: 'jabber:client',
        'xmlns:stream': 'http://etherx.jabber.org/streams',
        to: 'example.com',
        version: '1.0',
        'xml:lang': 'en',
      },
    });
    expect(s.elements().map((el) => el.toString())).toEqual(['<presence/>', '<message to="a@b"/>']);
  });

  it('keeps namespace declarations, prefixes and xml:lang so elements round-trip', () => {
    const stanza =
      '<iq type="get" id="r1" xml:lang="de"><query xmlns="jabber:iq:roster" ver="v1"/>' +
      '<x:data xmlns:x="urn:example:x" x:mark="1"><x:item>a &amp; b &lt; c</x:item></x:data></iq>';
    const s = open();
    s.write(HEADER, stanza);
    const [iq] = s.elements();
    expect(iq?.toString()).toBe(stanza);
    expect(iq?.getNS()).toBe('jabber:client');
    expect(iq?.attrs['xml:lang']).toBe('de');
    expect(iq?.getChild('query')?.getNS()).toBe('jabber:iq:roster');
    const data = iq?.getChild('data');
    expect(data?.name).toBe('x:data');
    expect(data?.getNS()).toBe('urn:example:x');
    expect(data?.getChildText('item')).toBe('a & b < c');
  });

  it('resolves prefixes declared on the stream header', () => {
    const s = open();
    s.write(HEADER.replace('>', " xmlns:ex='urn:example'>"), '<message><ex:note>hi</ex:note></message>');
    expect(s.errors()).toEqual([]);
    expect(s.elements()[0]?.getChild('note')?.getNS()).toBe('urn:example');
  });

  it('decodes predefined entities, character references and CDATA into one text child', () => {
    const s = open();
    s.write(HEADER, '<message><body>&quot;&apos;&#65;&#x1F600;<![CDATA[<b>&amp;]]>!</body></message>');
    const body = s.elements()[0]?.getChild('body');
    expect(body?.children).toEqual(['"\'A😀<b>&amp;!']);
  });

  it('normalizes line ends, also a CR LF pair split across writes', () => {
    const s = open();
    s.write(HEADER, '<message><body>a\r', '\nb\r', '</body></message>');
    expect(s.elements()[0]?.getChildText('body')).toBe('a\nb\n');
  });

  it('discards whitespace keepalives without counting them against the stanza limit', () => {
    const s = open('stream', { ...LIMITS, maxStanzaBytes: 200 });
    s.write(HEADER);
    for (let i = 0; i < 5_000; i++) s.write(i % 2 === 0 ? ' ' : '\r\n');
    s.write(' \t\n'.repeat(1_000));
    s.write('<message><body>still here</body></message>\n\n<presence/>');
    expect(s.errors()).toEqual([]);
    expect(s.elements().map((el) => el.name)).toEqual(['message', 'presence']);
  });

  it('ignores everything after </stream:stream>', () => {
    const s = open();
    s.write(HEADER, '</stream:stream>junk<message/>');
    s.write('<message/>');
    expect(s.events.map((e) => e.type)).toEqual(['start', 'end']);
  });

  it('accepts an XML declaration only at the very start', () => {
    expect(errorsOf('stream', "<?xml version='1.0'?>", HEADER, '<presence/>')).toEqual([]);
    expect(errorsOf('stream', " <?xml version='1.0'?>", HEADER)).toEqual(['restricted-xml']);
    expect(errorsOf('stream', "<?xml version='1.0'?><?xml version='1.0'?>", HEADER)).toEqual([
      'restricted-xml',
    ]);
    expect(errorsOf('stream', HEADER, "<?xml version='1.0'?>")).toEqual(['restricted-xml']);
  });

  it('refuses an XML declaration naming another encoding', () => {
    expect(errorsOf('stream', "<?xml version='1.0' encoding='ISO-8859-1'?>", HEADER)).toEqual([
      'unsupported-encoding',
    ]);
  });

  it.each([
    [
      'a wrong stream namespace',
      "<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong'>",
      'invalid-namespace',
    ],
    ['stream in the content namespace', "<stream xmlns='jabber:client'>", 'invalid-namespace'],
    [
      'the server content namespace',
      "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>",
      'invalid-namespace',
    ],
    [
      'no content namespace',
      "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
      'invalid-namespace',
    ],
    ['a stanza instead of a header', "<message xmlns='jabber:client'/>", 'invalid-xml'],
    ['an undeclared stream prefix', "<stream:stream xmlns='jabber:client'>", 'bad-namespace-prefix'],
    ['text before the header', `GET / HTTP/1.1\r\n${HEADER}`, 'not-well-formed'],
  ] as const)('refuses %s as the stream header', (_, header, condition) => {
    const s = open();
    s.write(header, '<presence/>');
    expect(s.errors()).toEqual([condition]);
    expect(s.events.filter((e) => e.type === 'start' || e.type === 'element')).toEqual([]);
  });

  it('refuses a stanza outside jabber:client', () => {
    expect(errorsOf('stream', HEADER, "<message xmlns='jabber:server'/>")).toEqual(['invalid-namespace']);
  });

  // A restart is done by the caller with a new parser; a header in the middle of a stream is well-formed
  // XML that the stream schema does not allow, hence invalid-xml.
  it('refuses a second stream header inside the stream', () => {
    const s = open();
    s.write(HEADER, HEADER);
    expect(s.errors()).toEqual(['invalid-xml']);
    expect(s.elements()).toEqual([]);
  });
});

describe('framed mode (RFC 7395)', () => {
  const OPEN = "<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>";
  const CLOSE = "<close xmlns='urn:ietf:params:xml:ns:xmpp-framing'/>";

  it('emits every root element, including open and close, in one write or split across writes', () => {
    const message = "<message xmlns='jabber:client' to='a@b'><body>hi</body></message>";
    const whole = open('framed');
    whole.write(OPEN + message + CLOSE);
    const split = open('framed');
    split.write(OPEN, message.slice(0, 20), message.slice(20), '\n', CLOSE);
    for (const s of [whole, split]) {
      expect(s.events.map((e) => e.type)).toEqual(['element', 'element', 'element']);
      const [first, second, third] = s.elements();
      expect(first?.is('open', 'urn:ietf:params:xml:ns:xmpp-framing')).toBe(true);
      expect(second?.is('message', 'jabber:client')).toBe(true);
      expect(second?.parent).toBeNull();
      expect(second?.getChildText('body')).toBe('hi');
      expect(third?.is('close', 'urn:ietf:params:xml:ns:xmpp-framing')).toBe(true);
    }
  });

  it.each([
    ['a stray end tag', '</framed>', 'not-well-formed'],
    ['text between elements', `${OPEN}hello`, 'not-well-formed'],
    ['a stanza without the client namespace', '<message/>', 'invalid-namespace'],
    ['a stream header', "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>", 'invalid-xml'],
    ['a comment', '<!-- hi -->', 'restricted-xml'],
    ['an XML declaration', `<?xml version='1.0'?>${OPEN}`, 'restricted-xml'],
  ] as const)('refuses %s', (_, input, condition) => {
    expect(errorsOf('framed', input)).toEqual([condition]);
  });
});

describe('restricted XML (RFC 6120 §11.1)', () => {
  it.each([
    ['a DOCTYPE', '<!DOCTYPE stream:stream>', HEADER],
    [
      'an internal subset with an entity declaration',
      "<?xml version='1.0'?><!DOCTYPE s [<!ENTITY a 'b'>]>",
      HEADER,
    ],
    ['a DOCTYPE inside the stream', HEADER, '<!DOCTYPE s>'],
    ['an entity declaration inside the stream', HEADER, "<!ENTITY a 'b'>"],
    ['a comment before the header', '<!-- hi -->', HEADER],
    ['a comment between stanzas', HEADER, '<!-- hi -->'],
    ['a comment inside a stanza', HEADER, '<message><!-- hi --></message>'],
    ['a processing instruction between stanzas', HEADER, '<?php echo 1; ?>'],
    ['a processing instruction inside a stanza', HEADER, '<message><?x y?></message>'],
  ])('refuses %s', (_, ...input) => {
    const s = open();
    s.write(...input);
    expect(s.errors()).toEqual(['restricted-xml']);
    expect(s.elements()).toEqual([]);
  });
});

describe('well-formedness', () => {
  it.each([
    ['mismatched end tags', '<message><body></message>'],
    ['an unquoted attribute', '<message id=1/>'],
    ['an attribute without value', '<message id/>'],
    ['a duplicate attribute', "<message id='1' id='2'/>"],
    ['a duplicate attribute by namespace', "<message xmlns:a='urn:x' xmlns:b='urn:x' a:id='1' b:id='2'/>"],
    ['an invalid element name', '<1message/>'],
    ['a name with two colons', "<a:b:c xmlns:a='urn:x'/>"],
    ['a raw U+0000', '<message>\u0000</message>'],
    ['a raw U+0001', '<message>\u0001</message>'],
    ['a raw U+FFFE', '<message>\uFFFE</message>'],
    ['a reference to U+0000', '<message>&#0;</message>'],
    ['a reference to U+0001', '<message>&#x1;</message>'],
    ['a reference to a surrogate', '<message>&#xD800;</message>'],
    ['an unknown entity', '<message>&nbsp;</message>'],
    ['a malformed character reference', '<message>&#x;</message>'],
    ['"]]>" in text', '<message>]]></message>'],
    ['"<" in an attribute value', "<message id='<'/>"],
    ['text between stanzas', '<presence/>hello'],
    ['an entity between stanzas', '&amp;'],
    ['CDATA between stanzas', '<![CDATA[x]]>'],
    ['a stray end tag', '</message>'],
  ])('refuses %s', (_, input) => {
    const s = open();
    s.write(HEADER, input);
    expect(s.errors()).toEqual(['not-well-formed']);
    expect(s.events.some((e) => e.type === 'end')).toBe(false);
  });

  it('does not deliver an element closed by the wrong tag', () => {
    const s = open();
    s.write(HEADER, '<message></iq>');
    expect(s.errors()).toEqual(['not-well-formed']);
    expect(s.elements()).toEqual([]);
  });

  it('delivers the stanzas before the first fault and nothing after it', () => {
    const s = open();
    s.write(HEADER, '<presence/>x<message/>');
    expect(s.elements().map((el) => el.name)).toEqual(['presence']);
    expect(s.errors()).toEqual(['not-well-formed']);
  });

  it.each([
    ['an invalid byte', bytes(0xff)],
    ['an overlong encoding', bytes(0xc0, 0xaf)],
    ['a truncated sequence', bytes(0xe2, 0x82, 0x3c)],
    ['an encoded surrogate', bytes(0xed, 0xa0, 0x80)],
    ['a code point above U+10FFFF', bytes(0xf4, 0x90, 0x80, 0x80)],
  ])('refuses UTF-8 with %s', (_, invalid) => {
    expect(errorsOf('stream', HEADER, '<message><body>', invalid, '</body></message>')).toEqual([
      'not-well-formed',
    ]);
  });

  it.each([
    ['an element', '<foo:message/>'],
    ['a child element', '<message><x:y/></message>'],
    ['an attribute', "<message x:id='1'/>"],
  ])('refuses an undeclared prefix on %s with bad-namespace-prefix', (_, input) => {
    expect(errorsOf('stream', HEADER, input)).toEqual(['bad-namespace-prefix']);
  });
});

describe('multibyte characters', () => {
  const text = 'aé€😀z';
  const stanza = `<message id='é€😀'><body>${text}</body></message>`;
  const input = encoder.encode(HEADER + stanza);

  it('survives a split at every byte offset', () => {
    for (let at = 1; at < input.length; at++) {
      const s = open();
      s.write(input.subarray(0, at), input.subarray(at));
      const [message] = s.elements();
      expect(s.errors(), `split at ${at}`).toEqual([]);
      expect(message?.getChildText('body'), `split at ${at}`).toBe(text);
      expect(message?.attrs.id, `split at ${at}`).toBe('é€😀');
    }
  });

  it('survives one byte per write', () => {
    const s = open();
    for (let i = 0; i < input.length; i++) s.write(input.subarray(i, i + 1));
    expect(s.elements()[0]?.getChildText('body')).toBe(text);
  });
});

describe('limits', () => {
  it('measures maxStanzaBytes in bytes of input, from "<" to ">"', () => {
    const stanza = "<message to='a@b'><body>héllo € 😀</body></message>";
    const size = encoder.encode(stanza).length;
    expect(size).toBeGreaterThan(stanza.length);
    for (const [limit, expected] of [
      [size, []],
      [size - 1, ['policy-violation']],
    ] as const) {
      const t = open('stream', { ...LIMITS, maxStanzaBytes: 1_000 });
      t.write(HEADER, '  ');
      t.parser.setLimits({ ...LIMITS, maxStanzaBytes: limit });
      t.write(stanza);
      expect(t.errors()).toEqual(expected);
      expect(t.elements().length).toBe(expected.length === 0 ? 1 : 0);
    }
  });

  it('refuses an oversized stanza as soon as it crosses the limit, before it ends', () => {
    const s = open('stream', { ...LIMITS, maxStanzaBytes: 1_000 });
    s.write(HEADER, '\n<message><body>');
    const chunk = 'a'.repeat(100);
    const errorsAfter: number[] = [];
    for (let i = 1; i <= 20; i++) {
      s.write(chunk);
      errorsAfter.push(s.errors().length);
    }
    // 15 bytes of start tags plus 100 per chunk first exceeds 1000 with the 10th chunk.
    expect(errorsAfter.indexOf(1)).toBe(9);
    expect(s.errors()).toEqual(['policy-violation']);
  });

  it('applies the size limit inside one large write', () => {
    const s = open('stream', { ...LIMITS, maxStanzaBytes: 1_000 });
    s.write(
      HEADER + '<presence/>' + `<message><body>${'a'.repeat(100_000)}</body></message>` + '<presence/>',
    );
    expect(s.elements().map((el) => el.name)).toEqual(['presence']);
    expect(s.errors()).toEqual(['policy-violation']);
  });

  it('bounds the stream header and what precedes it', () => {
    const limits = { ...LIMITS, maxStanzaBytes: 300 };
    const whole = open('stream', limits);
    whole.write(HEADER.replace('>', ` from='${'a'.repeat(300)}'>`));
    const endless = open('stream', limits);
    endless.write(HEADER.slice(0, -1), " from='");
    for (let i = 0; i < 10 && endless.errors().length === 0; i++) endless.write('a'.repeat(50));
    const padded = open('stream', limits);
    padded.write(' '.repeat(400), HEADER);
    for (const s of [whole, endless, padded]) {
      expect(s.errors()).toEqual(['policy-violation']);
      expect(s.events.some((e) => e.type === 'start')).toBe(false);
    }
  });

  it('lets setLimits raise the stanza size for what follows', () => {
    const s = open('stream', { ...LIMITS, maxStanzaBytes: 300 });
    const big = `<message><body>${'a'.repeat(500)}</body></message>`;
    s.write(HEADER);
    s.parser.setLimits({ ...LIMITS, maxStanzaBytes: 1_000 });
    s.write(big);
    expect(s.errors()).toEqual([]);
    s.parser.setLimits({ ...LIMITS, maxStanzaBytes: 300 });
    s.write(big);
    expect(s.errors()).toEqual(['policy-violation']);
  });

  it('limits the depth inside a stanza, the stanza being depth 1', () => {
    const limits = { ...LIMITS, maxDepth: 3 };
    const ok = open('stream', limits);
    ok.write(HEADER, '<message><a><b/></a></message>');
    expect(ok.errors()).toEqual([]);
    const deep = open('stream', limits);
    deep.write(HEADER, '<message><a><b><c/></b></a></message>');
    expect(deep.errors()).toEqual(['policy-violation']);
    expect(deep.elements()).toEqual([]);
  });

  it('limits attributes per element, namespace declarations included', () => {
    const limits = { ...LIMITS, maxAttributes: 3 };
    expect(errorsOf('framed', "<message xmlns='jabber:client' a='1' b='2'/>")).toEqual([]);
    const s = open('framed', limits);
    s.write("<message xmlns='jabber:client' a='1' b='2'/>");
    s.write("<message xmlns='jabber:client' a='1' b='2' c='3'/>");
    expect(s.elements().length).toBe(1);
    expect(s.errors()).toEqual(['policy-violation']);
    const header = open('stream', limits);
    header.write(HEADER);
    expect(header.errors()).toEqual(['policy-violation']);
  });

  it('limits direct children per element but not stanzas per stream', () => {
    const limits = { ...LIMITS, maxChildren: 2 };
    const ok = open('stream', limits);
    ok.write(HEADER, '<message><a><x/><x/></a><b>t<x/>t<x/>t</b></message>'.repeat(3));
    expect(ok.errors()).toEqual([]);
    expect(ok.elements().length).toBe(3);
    const wide = open('stream', limits);
    wide.write(HEADER, '<message><a/><b/><c/></message>');
    expect(wide.errors()).toEqual(['policy-violation']);
  });
});

describe('cost', () => {
  const body = 'x'.repeat(200 * 1024);

  it.each([
    ['ASCII', body],
    ['multibyte', 'é€😀'.repeat((200 * 1024) / 9)],
  ])('parses a 200 KiB %s stanza written one byte at a time in linear work', (_, text) => {
    const input = encoder.encode(`${HEADER}<message><body>${text}</body></message>`);
    const s = open('stream', { ...LIMITS, maxStanzaBytes: 1024 * 1024 });
    for (let i = 0; i < input.length; i++) s.write(input.subarray(i, i + 1));
    expect(s.errors()).toEqual([]);
    expect(s.elements()[0]?.getChildText('body')).toBe(text);
    // Re-scanning buffered input on each write would cost on the order of n²/2 characters.
    expect(s.parser.scannedChars).toBeGreaterThanOrEqual(text.length);
    expect(s.parser.scannedChars).toBeLessThanOrEqual(4 * input.length);
  });
});

describe('hibernation (idle connections)', () => {
  /** Two calls: the first notes that no input came since, the second can put the parser to sleep. */
  function idle(parser: StreamParser): boolean {
    parser.hibernate();
    return parser.hibernate();
  }

  it('sleeps only after a period without input, and goes on where it stopped', () => {
    const s = open();
    s.write(HEADER.replace('>', " xmlns:x='urn:example:x'>"), '<presence/>');
    expect(s.parser.hibernate()).toBe(false);
    s.write(' ');
    expect(s.parser.hibernate()).toBe(false);
    expect(s.parser.hibernate()).toBe(true);
    expect(s.parser.hibernate()).toBe(false);

    // Prefixes of the header stay declared, the header is still the parent, and its end still ends it.
    s.write("<message to='a@b'><x:mark/><body>é</body></message>", '</stream:stream>');
    expect(s.errors()).toEqual([]);
    expect(s.events.map((e) => e.type)).toEqual(['start', 'element', 'element', 'end']);
    const message = s.elements()[1];
    expect(message?.toString()).toBe('<message to="a@b"><x:mark/><body>é</body></message>');
    expect(message?.getChild('mark', 'urn:example:x')).toBeDefined();
    expect(message?.getNS()).toBe('jabber:client');
  });

  it('keeps every limit and check after waking', () => {
    const s = open('stream', { ...LIMITS, maxStanzaBytes: 200 });
    s.write(HEADER, '<presence/>');
    expect(idle(s.parser)).toBe(true);
    s.write(`<message><body>${'a'.repeat(200)}</body></message>`);
    expect(s.errors()).toEqual(['policy-violation']);

    const t = open();
    t.write(HEADER);
    expect(idle(t.parser)).toBe(true);
    t.write('hello');
    expect(t.errors()).toEqual(['not-well-formed']);

    const u = open();
    u.write(HEADER);
    expect(idle(u.parser)).toBe(true);
    u.write('<message><body>hi</message>');
    expect(u.errors()).toEqual(['not-well-formed']);
    expect(u.elements()).toEqual([]);
  });

  it('stays awake inside a stanza, and with a character cut short', () => {
    const s = open();
    s.write(HEADER, '<message><body>h');
    expect(idle(s.parser)).toBe(false);
    s.write('i</body></message>');
    expect(s.elements()[0]?.getChildText('body')).toBe('hi');

    const t = open();
    const euro = encoder.encode('<message><body>€</body></message>');
    t.write(HEADER, '<presence/>', euro.subarray(0, 1));
    expect(idle(t.parser)).toBe(false);
    t.write(euro.subarray(1));
    expect(t.errors()).toEqual([]);
    expect(t.elements()[1]?.getChildText('body')).toBe('€');

    const u = open();
    u.write(HEADER, "<message to='a@b'/><");
    expect(idle(u.parser)).toBe(false);
    u.write('presence/>');
    expect(u.elements().map((el) => el.name)).toEqual(['message', 'presence']);
  });

  it('never sleeps before the stream header, and wakes in framed mode too', () => {
    const s = open();
    s.write("<?xml version='1.0'?>");
    expect(idle(s.parser)).toBe(false);

    const framed = open('framed');
    framed.write("<open xmlns='urn:ietf:params:xml:ns:xmpp-framing' to='example.com' version='1.0'/>");
    expect(idle(framed.parser)).toBe(true);
    framed.write("<message xmlns='jabber:client' to='a@b'><body>hi</body></message>");
    expect(framed.errors()).toEqual([]);
    expect(framed.elements()[1]?.getChildText('body')).toBe('hi');
    expect(idle(framed.parser)).toBe(true);
    framed.write('</framed>');
    expect(framed.errors()).toEqual(['not-well-formed']);
  });
});

describe('failure handling', () => {
  it('reports one error and ignores every later write', () => {
    const s = open();
    s.write(HEADER, '<message>&bogus;');
    s.write('</message><presence/>', '<!-- -->', bytes(0xff));
    expect(s.events.map((e) => e.type)).toEqual(['start', 'error']);
  });

  it('emits nothing after close()', () => {
    const s = open();
    s.write(HEADER);
    s.parser.close();
    s.write('<presence/>', 'garbage');
    expect(s.events.map((e) => e.type)).toEqual(['start']);
  });

  it('stops delivering when a handler closes the parser', () => {
    const seen: string[] = [];
    const parser = new StreamParser('framed', LIMITS, {
      streamStart: () => seen.push('start'),
      element: (el) => {
        seen.push(el.name);
        parser.close();
      },
      streamEnd: () => seen.push('end'),
      error: (err) => seen.push(err.condition),
    });
    parser.write(encoder.encode("<message xmlns='jabber:client'/><iq xmlns='jabber:client'/>"));
    expect(seen).toEqual(['message']);
  });

  it('turns a throwing handler into internal-server-error instead of throwing', () => {
    const conditions: string[] = [];
    const parser = new StreamParser('framed', LIMITS, {
      streamStart: () => undefined,
      element: () => {
        throw new Error('handler bug');
      },
      streamEnd: () => undefined,
      error: (err) => {
        conditions.push(err.condition);
        throw new Error('another bug');
      },
    });
    expect(() => parser.write(encoder.encode("<message xmlns='jabber:client'/><iq/>"))).not.toThrow();
    expect(conditions).toEqual(['internal-server-error']);
  });

  it('never throws and reports at most one error, last, on random input', () => {
    const pieces = [
      '<',
      '>',
      '/',
      '=',
      "'",
      '"',
      '&',
      ';',
      '#',
      'x',
      'a:',
      'message',
      ' ',
      '!',
      '?',
      '[',
      ']',
      'xmlns',
      'stream:stream',
      '-',
      '\u0000',
      'é',
      '😀',
      '&amp;',
      '<![CDATA[',
      ']]>',
    ];
    let seed = 42;
    const random = (n: number): number => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed % n;
    };
    for (let round = 0; round < 300; round++) {
      const s = open(round % 2 === 0 ? 'stream' : 'framed');
      if (round % 2 === 0) s.write(HEADER);
      const input = encoder.encode(Array.from({ length: 60 }, () => pieces[random(pieces.length)]).join(''));
      expect(() => {
        for (let i = 0; i < input.length;) {
          const size = 1 + random(7);
          s.write(input.subarray(i, i + size));
          i += size;
        }
      }).not.toThrow();
      const errorIndexes = s.events.flatMap((e, i) => (e.type === 'error' ? [i] : []));
      expect(errorIndexes.length).toBeLessThanOrEqual(1);
      if (errorIndexes.length === 1) expect(errorIndexes[0]).toBe(s.events.length - 1);
    }
  });
});
