// RFC 7622 §3.2-3.4, RFC 8264/8265, RFC 5890-5893: the preparation of each address part on its own.
import { domainToASCII } from 'node:url';
import { describe, expect, it } from 'vitest';
import { JidError } from './jid.ts';
import {
  inFreeformClass,
  inIdentifierClass,
  prepareDomainpart,
  prepareLocalpart,
  prepareResourcepart,
} from './precis.ts';
import { punycodeDecode, punycodeEncode } from './precis-punycode.ts';
import { bidiClass, joiningType } from './precis-tables.ts';

function rejects(prepare: (s: string) => string, input: string): JidError {
  try {
    prepare(input);
  } catch (err) {
    if (err instanceof JidError) return err;
    throw err;
  }
  throw new Error(`accepted ${JSON.stringify(input)}`);
}

const CONTROLS = ['\u0000', '\u0007', '\t', '\n', '\r', '\u001b', '\u007f', '\u0085', '\u009f'];

describe('prepareLocalpart', () => {
  it('keeps plain lowercase ASCII and lowercases ASCII capitals', () => {
    expect(prepareLocalpart('juliet')).toBe('juliet');
    expect(prepareLocalpart('Juliet.Capulet+1')).toBe('juliet.capulet+1');
    expect(prepareLocalpart('foo\\20bar')).toBe('foo\\20bar');
    expect(prepareLocalpart('!#$%*=?^_`{|}~-')).toBe('!#$%*=?^_`{|}~-');
  });

  it('maps fullwidth and halfwidth forms to their ordinary forms', () => {
    expect(prepareLocalpart('ｊｕｌｉｅｔ')).toBe('juliet');
    expect(prepareLocalpart('ＪＵＬＩＥＴ')).toBe('juliet');
    expect(prepareLocalpart('ｶﾀｶﾅ')).toBe('カタカナ');
    // A halfwidth voiced sound mark composes with the katakana before it once mapped.
    expect(prepareLocalpart('ｶﾞ')).toBe('ガ');
  });

  it('lowercases Latin, Greek and Cyrillic', () => {
    expect(prepareLocalpart('ÀÉÎÕÜ')).toBe('àéîõü');
    expect(prepareLocalpart('Σ')).toBe('σ');
    expect(prepareLocalpart('ΠΑΝΑΓΙΩΤΗΣ')).toBe('παναγιωτης');
    expect(prepareLocalpart('ПРИВЕТ')).toBe('привет');
  });

  it('keeps the letters IDNA2003 folded away', () => {
    expect(prepareLocalpart('fußball')).toBe('fußball');
    expect(prepareLocalpart('ς')).toBe('ς');
  });

  it('normalizes combining sequences to NFC', () => {
    expect(prepareLocalpart('e\u0301')).toBe('é');
    expect(prepareLocalpart('A\u030A')).toBe('å');
    expect(prepareLocalpart('\u212B')).toBe('å');
    expect(prepareLocalpart('\u1100\u1161\u11A8')).toBe('각');
  });

  it('rejects the characters RFC 7622 forbids in a localpart', () => {
    for (const ch of ['"', '&', "'", '/', ':', '<', '>', '@']) {
      expect(rejects(prepareLocalpart, `a${ch}b`).message).toMatch(/disallowed/);
    }
  });

  it('rejects spaces, controls, symbols and compatibility characters', () => {
    for (const s of ['foo bar', 'a\u00a0b', 'a\u3000b', ...CONTROLS.map((c) => `a${c}b`)]) {
      rejects(prepareLocalpart, s);
    }
    for (const s of ['henry♢', '♚', 'x²', 'ﬁsh', '\u2163', 'a\u00adb', 'a\u200bb', 'a\ue000', 'a\ud800b']) {
      rejects(prepareLocalpart, s);
    }
    rejects(prepareLocalpart, '\u0378');
    rejects(prepareLocalpart, '\u0640');
    rejects(prepareLocalpart, '\u1100');
  });

  it('accepts scripts other than Latin', () => {
    expect(prepareLocalpart('π')).toBe('π');
    expect(prepareLocalpart('한국어')).toBe('한국어');
    expect(prepareLocalpart('日本語')).toBe('日本語');
    expect(prepareLocalpart('हिन्दी')).toBe('हिन्दी');
  });

  it('applies the context rules to joiners and CONTEXTO characters', () => {
    expect(prepareLocalpart('l·l')).toBe('l·l');
    rejects(prepareLocalpart, 'a·b');
    expect(prepareLocalpart('א׳')).toBe('א׳');
    rejects(prepareLocalpart, 'a׳');
    expect(prepareLocalpart('カ・カ')).toBe('カ・カ');
    rejects(prepareLocalpart, 'a・b');
    expect(prepareLocalpart('ا١٢')).toBe('ا١٢');
    rejects(prepareLocalpart, 'ا١۲');
    // A non-joiner is allowed after a virama, or between letters that would otherwise join.
    expect(prepareLocalpart('क्\u200cष')).toBe('क्\u200cष');
    expect(prepareLocalpart('ب\u200cا')).toBe('ب\u200cا');
    rejects(prepareLocalpart, 'ا\u200cب');
    rejects(prepareLocalpart, 'a\u200cb');
    expect(prepareLocalpart('क्\u200dष')).toBe('क्\u200dष');
    rejects(prepareLocalpart, 'a\u200db');
  });

  it('applies the bidi rule to strings with right-to-left characters', () => {
    expect(prepareLocalpart('שלום')).toBe('שלום');
    expect(prepareLocalpart('سلام')).toBe('سلام');
    expect(prepareLocalpart('א1')).toBe('א1');
    expect(prepareLocalpart('ا١')).toBe('ا١');
    expect(rejects(prepareLocalpart, '1א').message).toMatch(/bidi/);
    rejects(prepareLocalpart, 'abcא');
    rejects(prepareLocalpart, 'אa');
    rejects(prepareLocalpart, 'ا1١');
    // Left-to-right strings need not follow it.
    expect(prepareLocalpart('1abc')).toBe('1abc');
  });

  it('limits the prepared localpart to 1023 octets', () => {
    expect(prepareLocalpart('a'.repeat(1023))).toHaveLength(1023);
    expect(rejects(prepareLocalpart, 'a'.repeat(1024)).message).toMatch(/too long/);
    expect(prepareLocalpart('π'.repeat(511))).toHaveLength(511);
    rejects(prepareLocalpart, 'π'.repeat(512));
    expect(prepareLocalpart('한'.repeat(341))).toHaveLength(341);
    rejects(prepareLocalpart, '한'.repeat(342));
    // The limit applies to the prepared form: fullwidth letters shrink to one octet each.
    expect(prepareLocalpart('ａ'.repeat(1023))).toBe('a'.repeat(1023));
    expect(rejects(prepareLocalpart, 'é'.repeat(1 << 20)).message).toMatch(/too long/);
  });

  it('rejects the empty string', () => {
    expect(rejects(prepareLocalpart, '').message).toMatch(/empty/);
  });

  it('is idempotent', () => {
    for (const s of ['Juliet', 'ＦＵßball', 'ΣΑΣ', 'e\u0301\u0327', 'ᾈ', 'İstanbul', 'שלום', 'ᲀ']) {
      const once = prepareLocalpart(s);
      expect(prepareLocalpart(once)).toBe(once);
    }
  });
});

describe('prepareResourcepart', () => {
  it('keeps ASCII as is, including spaces, case and punctuation', () => {
    expect(prepareResourcepart('foo bar')).toBe('foo bar');
    expect(prepareResourcepart(' Balcony ')).toBe(' Balcony ');
    expect(prepareResourcepart('foo@bar/baz:"<>&\'')).toBe('foo@bar/baz:"<>&\'');
  });

  it('accepts symbols, punctuation and compatibility characters', () => {
    expect(prepareResourcepart('♚')).toBe('♚');
    expect(prepareResourcepart('x² ﬁ Ⅳ ½')).toBe('x² ﬁ Ⅳ ½');
    expect(prepareResourcepart('ｆｏｏ')).toBe('ｆｏｏ');
    expect(prepareResourcepart('Ǆ')).toBe('Ǆ');
    // OpaqueString has no directionality rule.
    expect(prepareResourcepart('a\u05d0')).toBe('a\u05d0');
  });

  it('maps non-ASCII spaces to U+0020 and normalizes to NFC', () => {
    expect(prepareResourcepart('a\u00a0b\u3000c\u2003d')).toBe('a b c d');
    expect(prepareResourcepart('e\u0301')).toBe('é');
  });

  it('rejects controls, ignorables, unassigned, private-use and surrogate code points', () => {
    for (const s of [
      ...CONTROLS.map((c) => `a${c}b`),
      'a\u00adb',
      'a\u200bb',
      'a\u2028b',
      '\u0378',
      '\ue000',
      '\ud800',
      '\ufffe',
      '\u0640',
    ]) {
      expect(rejects(prepareResourcepart, s).message).toMatch(/disallowed/);
    }
  });

  it('limits the prepared resourcepart to 1023 octets', () => {
    expect(prepareResourcepart('r'.repeat(1023))).toHaveLength(1023);
    rejects(prepareResourcepart, 'r'.repeat(1024));
    expect(prepareResourcepart('♚'.repeat(341))).toHaveLength(341);
    expect(rejects(prepareResourcepart, '♚'.repeat(342)).message).toMatch(/too long/);
    rejects(prepareResourcepart, '');
    expect(rejects(prepareResourcepart, '♚'.repeat(1 << 20)).message).toMatch(/too long/);
  });
});

describe('prepareDomainpart', () => {
  it('lowercases ASCII host names and strips one trailing dot', () => {
    expect(prepareDomainpart('example.com')).toBe('example.com');
    expect(prepareDomainpart('EXAMPLE.Com')).toBe('example.com');
    expect(prepareDomainpart('example.com.')).toBe('example.com');
    expect(prepareDomainpart('localhost')).toBe('localhost');
    expect(prepareDomainpart('a-b.c-d.example')).toBe('a-b.c-d.example');
    // Reserved-looking LDH labels are used in practice; only xn-- labels are held to the A-label rules.
    expect(prepareDomainpart('ab--cd.example')).toBe('ab--cd.example');
  });

  it('rejects empty domains and empty labels', () => {
    for (const s of ['', '.', 'example.com..', '.example.com', 'a..b']) rejects(prepareDomainpart, s);
  });

  it('rejects characters not allowed in host names', () => {
    for (const s of [
      'exa mple.com',
      'a@b',
      'a/b',
      'a_b.com',
      'a:b',
      '-abc.com',
      'abc-.com',
      '♚.example',
      '💩.la',
      'a\u00adb.example',
      'ᾳ.example',
      'µ.example',
      ...CONTROLS.map((c) => `a${c}b.example`),
    ]) {
      rejects(prepareDomainpart, s);
    }
  });

  it('accepts IPv4 literals and bracketed IPv6 literals', () => {
    expect(prepareDomainpart('127.0.0.1')).toBe('127.0.0.1');
    expect(prepareDomainpart('[::1]')).toBe('[::1]');
    expect(prepareDomainpart('[2001:DB8:0:0::0001]')).toBe('[2001:db8::1]');
    for (const s of ['[::1', '::1', '[fe80::1%eth0]', '[1.2.3.4]', '[]', '[example.com]']) {
      expect(rejects(prepareDomainpart, s).message).toBeTruthy();
    }
  });

  it('maps case, width and ideographic full stops, and keeps U-labels', () => {
    expect(prepareDomainpart('BÜCHER.example')).toBe('bücher.example');
    expect(prepareDomainpart('ｅｘａｍｐｌｅ．ｃｏｍ')).toBe('example.com');
    expect(prepareDomainpart('例え。テスト')).toBe('例え.テスト');
    expect(prepareDomainpart('u\u0308.example')).toBe('ü.example');
    expect(prepareDomainpart('faß.de')).toBe('faß.de');
    // Case folding maps Cherokee small letters to the capitals.
    expect(prepareDomainpart('\uab70.example')).toBe('\u13a0.example');
  });

  it('turns A-labels into U-labels and rejects invalid ones', () => {
    expect(prepareDomainpart('xn--bcher-kva.example')).toBe('bücher.example');
    expect(prepareDomainpart('XN--BCHER-KVA.example')).toBe('bücher.example');
    const decomposed = `xn--${punycodeEncode('bu\u0308cher')}`;
    for (const s of ['xn--zz', 'xn--', 'xn--abc-', 'xn--bcher-kvb', 'xn--ls8h', decomposed]) {
      expect(rejects(prepareDomainpart, s).message).toMatch(/A-label|disallowed|U-label/);
    }
  });

  it('applies IDNA2008 label rules to U-labels', () => {
    rejects(prepareDomainpart, '\u0301a.example');
    rejects(prepareDomainpart, 'ab--ü.example');
    rejects(prepareDomainpart, '-ü.example');
    expect(prepareDomainpart('l·l.example')).toBe('l·l.example');
    rejects(prepareDomainpart, 'a·b.example');
    expect(prepareDomainpart('क्\u200cष.example')).toBe('क्\u200cष.example');
    rejects(prepareDomainpart, 'a\u200cb.example');
  });

  it('applies the bidi rule to every label once one is right-to-left', () => {
    expect(prepareDomainpart('אב.example')).toBe('אב.example');
    expect(prepareDomainpart('مثال.إختبار')).toBe('مثال.إختبار');
    expect(rejects(prepareDomainpart, '1אב.example').message).toMatch(/bidi/);
    rejects(prepareDomainpart, 'אב.1com');
    expect(prepareDomainpart('1com.example')).toBe('1com.example');
  });

  it('limits labels to 63 octets in A-label form and the domain to 1023 octets', () => {
    expect(prepareDomainpart(`${'a'.repeat(63)}.example`)).toHaveLength(71);
    rejects(prepareDomainpart, `${'a'.repeat(64)}.example`);
    let fits = 'ü';
    while (4 + punycodeEncode(`${fits}a`).length <= 63) fits += 'a';
    expect(4 + punycodeEncode(fits).length).toBe(63);
    expect(prepareDomainpart(fits)).toBe(fits);
    expect(rejects(prepareDomainpart, `${fits}a`).message).toMatch(/too long/);
    const label = 'a'.repeat(63);
    const longest = `${Array<string>(15).fill(label).join('.')}.${label}`;
    expect(longest).toHaveLength(1023);
    expect(prepareDomainpart(longest)).toBe(longest);
    expect(prepareDomainpart(`${longest}.`)).toBe(longest);
    const tooLong = `${Array<string>(15).fill(label).join('.')}.${'a'.repeat(62)}.a`;
    expect(tooLong).toHaveLength(1024);
    expect(rejects(prepareDomainpart, tooLong).message).toMatch(/too long/);
    expect(rejects(prepareDomainpart, 'ü'.repeat(1 << 20)).message).toMatch(/too long/);
  });
});

// RFC 8264 §8, read literally: the rules in order, for one code point at a time.
function derivedProperty(cp: number): 'PVALID' | 'CONTEXT' | 'FREE_PVAL' | 'DISALLOWED' | 'UNASSIGNED' {
  const ch = String.fromCodePoint(cp);
  if ([0xdf, 0x3c2, 0x6fd, 0x6fe, 0xf0b, 0x3007].includes(cp)) return 'PVALID';
  if ([0xb7, 0x375, 0x5f3, 0x5f4, 0x30fb].includes(cp) || (cp >= 0x660 && cp <= 0x669)) return 'CONTEXT';
  if (cp >= 0x6f0 && cp <= 0x6f9) return 'CONTEXT';
  if ([0x640, 0x7fa, 0x302e, 0x302f, 0x3031, 0x3032, 0x3033, 0x3034, 0x3035, 0x303b].includes(cp)) {
    return 'DISALLOWED';
  }
  if (/\p{Cn}/u.test(ch) && !/\p{Noncharacter_Code_Point}/u.test(ch)) return 'UNASSIGNED';
  if (cp >= 0x21 && cp <= 0x7e) return 'PVALID';
  if (cp === 0x200c || cp === 0x200d) return 'CONTEXT';
  const jamo: [number, number][] = [
    [0x1100, 0x11ff],
    [0xa960, 0xa97c],
    [0xd7b0, 0xd7c6],
    [0xd7cb, 0xd7fb],
  ];
  if (jamo.some(([from, to]) => cp >= from && cp <= to)) return 'DISALLOWED';
  if (/[\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}]/u.test(ch)) return 'DISALLOWED';
  if (/\p{Cc}/u.test(ch)) return 'DISALLOWED';
  if (ch.normalize('NFKC') !== ch) return 'FREE_PVAL';
  if (/[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}]/u.test(ch)) return 'PVALID';
  if (/[\p{Lt}\p{Nl}\p{No}\p{Me}]/u.test(ch)) return 'FREE_PVAL';
  if (/\p{Zs}/u.test(ch)) return 'FREE_PVAL';
  if (/[\p{Sm}\p{Sc}\p{Sk}\p{So}]/u.test(ch)) return 'FREE_PVAL';
  if (/[\p{Pc}\p{Pd}\p{Ps}\p{Pe}\p{Pi}\p{Pf}\p{Po}]/u.test(ch)) return 'FREE_PVAL';
  return 'DISALLOWED';
}

describe('string classes', () => {
  it('agree with the ordered rules of RFC 8264 for every code point', () => {
    const wrong: string[] = [];
    for (let cp = 0; cp <= 0x10ffff; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue;
      const property = derivedProperty(cp);
      if (property === 'CONTEXT') continue;
      const ch = String.fromCodePoint(cp);
      if (inIdentifierClass(ch) !== (property === 'PVALID')) wrong.push(`identifier ${cp.toString(16)}`);
      const free = property === 'PVALID' || property === 'FREE_PVAL';
      if (inFreeformClass(ch) !== free) wrong.push(`freeform ${cp.toString(16)}`);
    }
    expect(wrong).toEqual([]);
  });

  it('judge code points one by one, also in strings not in NFC', () => {
    expect(inIdentifierClass('e\u0301')).toBe(true);
    expect(inIdentifierClass('\u212b')).toBe(false);
    expect(inFreeformClass('\u212b')).toBe(true);
  });
});

describe('Unicode tables', () => {
  it('give the Bidi_Class of representative code points', () => {
    expect(bidiClass(0x61)).toBe('L');
    expect(bidiClass(0x31)).toBe('EN');
    expect(bidiClass(0x5d0)).toBe('R');
    expect(bidiClass(0x627)).toBe('AL');
    expect(bidiClass(0x661)).toBe('AN');
    expect(bidiClass(0x301)).toBe('NSM');
    expect(bidiClass(0x2d)).toBe('ES');
    expect(bidiClass(0x2c)).toBe('CS');
    expect(bidiClass(0x24)).toBe('ET');
    expect(bidiClass(0x21)).toBe('ON');
    expect(bidiClass(0xad)).toBe('BN');
    expect(bidiClass(0x20)).toBe('X');
    // Unassigned code points in right-to-left blocks take the UCD default, so later additions stay right-to-left.
    expect(bidiClass(0x5ff)).toBe('R');
    expect(bidiClass(0x7bf)).toBe('AL');
  });

  it('give the Joining_Type of representative code points', () => {
    expect(joiningType(0x628)).toBe('D');
    expect(joiningType(0x627)).toBe('R');
    expect(joiningType(0xa872)).toBe('L');
    expect(joiningType(0x64e)).toBe('T');
    expect(joiningType(0x200c)).toBe('U');
    expect(joiningType(0x61)).toBe('U');
  });
});

describe('Punycode', () => {
  // Sample strings of RFC 3492 §7.1.
  const samples: [string, string][] = [
    ['ليهمابتكلموشعربي؟', 'egbpdaj6bu4bxfgehfvwxn'],
    ['他们为什么不说中文', 'ihqwcrb4cv8a8dqg056pqjye'],
    ['3年B組金八先生', '3B-ww4c5e180e575a65lsy2b'],
    ['安室奈美恵-with-SUPER-MONKEYS', '-with-SUPER-MONKEYS-pc58ag80a8qai00g7n9n'],
    ['ひとつ屋根の下2', '2-u9tlzr9756bt3uc0v'],
    ['そのスピードで', 'd9juau41awczczp'],
    ['bücher', 'bcher-kva'],
  ];

  it('encodes and decodes the RFC 3492 samples', () => {
    for (const [unicode, encoded] of samples) {
      expect(punycodeEncode(unicode)).toBe(encoded);
      expect(punycodeDecode(encoded)).toBe(unicode);
    }
  });

  it('matches the A-labels Node computes for valid U-labels', () => {
    for (const label of ['bücher', 'ελληνικά', 'россия', '日本語', 'مثال', 'faß', 'hörbuch-über']) {
      expect(`xn--${punycodeEncode(label)}`).toBe(domainToASCII(label));
    }
  });

  it('rejects malformed input', () => {
    for (const bad of ['a-!', 'ü', '99999999999999', 'zzzzzzzzzzzzzzzzzzzz', '-a']) {
      expect(punycodeDecode(bad)).toBeUndefined();
    }
  });
});
