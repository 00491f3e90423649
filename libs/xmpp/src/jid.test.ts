// RFC 7622: parsing addresses into parts (§3.1) and the examples of §3.5.
import { describe, expect, it } from 'vitest';
import { bareOf, Jid, JidError } from './jid.ts';

function parts(text: string): [string, string, string] {
  const jid = Jid.parse(text);
  return [jid.local, jid.domain, jid.resource];
}

describe('Jid.parse', () => {
  it('prepares a text once while it is among the last 4,096 parsed; an invalid or long one every time', () => {
    const first = Jid.parse('Juliet@Example.COM/balcony');
    expect(Jid.parse('Juliet@Example.COM/balcony')).toBe(first);
    expect(first.toString()).toBe('juliet@example.com/balcony');
    for (let i = 0; i < 4096; i++) Jid.parse(`user${String(i)}@example.com`);
    const again = Jid.parse('Juliet@Example.COM/balcony');
    expect(again).not.toBe(first);
    expect(again.equals(first)).toBe(true);
    expect(() => Jid.parse('@example.com')).toThrow(JidError);
    expect(() => Jid.parse('@example.com')).toThrow(JidError);
    const long = `${'r'.repeat(300)}@example.com`;
    expect(Jid.parse(long)).not.toBe(Jid.parse(long));
  });

  it('accepts the valid examples of RFC 7622 §3.5', () => {
    expect(parts('juliet@example.com')).toEqual(['juliet', 'example.com', '']);
    expect(parts('juliet@example.com/foo')).toEqual(['juliet', 'example.com', 'foo']);
    expect(parts('juliet@example.com/foo bar')).toEqual(['juliet', 'example.com', 'foo bar']);
    expect(parts('juliet@example.com/foo@bar')).toEqual(['juliet', 'example.com', 'foo@bar']);
    expect(parts('foo\\20bar@example.com')).toEqual(['foo\\20bar', 'example.com', '']);
    expect(parts('fussball@example.com')).toEqual(['fussball', 'example.com', '']);
    expect(parts('fußball@example.com')).toEqual(['fußball', 'example.com', '']);
    expect(parts('π@example.com')).toEqual(['π', 'example.com', '']);
    expect(parts('Σ@example.com/foo')).toEqual(['σ', 'example.com', 'foo']);
    expect(parts('σ@example.com/foo')).toEqual(['σ', 'example.com', 'foo']);
    expect(parts('ς@example.com/foo')).toEqual(['ς', 'example.com', 'foo']);
    expect(parts('king@example.com/♚')).toEqual(['king', 'example.com', '♚']);
    expect(parts('example.com')).toEqual(['', 'example.com', '']);
    expect(parts('example.com/foobar')).toEqual(['', 'example.com', 'foobar']);
    expect(parts('a.example.com/b@example.net')).toEqual(['', 'a.example.com', 'b@example.net']);
  });

  it('rejects the invalid examples of RFC 7622 §3.5', () => {
    for (const text of [
      '"juliet"@example.com',
      'foo bar@example.com',
      'henry♢@example.com',
      '♚@example.com',
      'juliet@',
      '/foobar',
    ]) {
      expect(() => Jid.parse(text)).toThrow(JidError);
    }
  });

  it('splits at the first slash, then at the first at-sign before it', () => {
    expect(parts('juliet@example.com/a/b@c')).toEqual(['juliet', 'example.com', 'a/b@c']);
    expect(parts('example.com/@')).toEqual(['', 'example.com', '@']);
    // The second '@' lands in the domainpart, which cannot hold it.
    expect(() => Jid.parse('a@b@example.com')).toThrow(JidError);
  });

  it('rejects parts that are present but empty', () => {
    for (const text of [
      '',
      '@',
      '/',
      '@example.com',
      'example.com/',
      'juliet@example.com/',
      '@/',
      'juliet@/r',
    ]) {
      expect(() => Jid.parse(text)).toThrow(JidError);
    }
  });

  it('rejects control characters in every part', () => {
    for (const c of ['\u0000', '\u0008', '\n', '\u007f', '\u0085']) {
      expect(() => Jid.parse(`ju${c}liet@example.com`)).toThrow(JidError);
      expect(() => Jid.parse(`juliet@exa${c}mple.com`)).toThrow(JidError);
      expect(() => Jid.parse(`juliet@example.com/bal${c}cony`)).toThrow(JidError);
    }
  });

  it('prints the canonical form', () => {
    expect(Jid.parse('JULIET@EXAMPLE.COM./Balcony').toString()).toBe('juliet@example.com/Balcony');
    expect(Jid.parse('ＪＵＬＩＥＴ@ｅｘａｍｐｌｅ．ｃｏｍ').toString()).toBe('juliet@example.com');
    expect(Jid.parse('juliet@xn--bcher-kva.example/r').toString()).toBe('juliet@bücher.example/r');
    expect(Jid.parse('juliet@[2001:DB8::1]/r').toString()).toBe('juliet@[2001:db8::1]/r');
    const text = 'Ju\u0308liet@Example.com/Ro\u0308meo';
    const once = Jid.parse(text).toString();
    expect(once).toBe('jüliet@example.com/Römeo');
    expect(Jid.parse(once).toString()).toBe(once);
  });

  it('parses parts of the maximum size and refuses huge input without preparing it', () => {
    const resource = 'r'.repeat(1023);
    expect(Jid.parse(`${'l'.repeat(1023)}@example.com/${resource}`).resource).toBe(resource);
    expect(() => Jid.parse(`juliet@example.com/${resource}r`)).toThrow(JidError);
    const huge = 'é'.repeat(1 << 20);
    for (const text of [huge, `${huge}@example.com`, `juliet@example.com/${huge}`, `juliet@${huge}`]) {
      expect(() => Jid.parse(text)).toThrow(/too long/);
    }
  });
});

describe('Jid', () => {
  it('returns undefined from tryParse for invalid addresses', () => {
    expect(Jid.tryParse('juliet@')).toBeUndefined();
    expect(Jid.tryParse('juliet@example.com')?.toString()).toBe('juliet@example.com');
  });

  it('prepares each part given to of()', () => {
    const jid = Jid.of('Juliet', 'Example.COM', 'Balcony');
    expect(jid.toString()).toBe('juliet@example.com/Balcony');
    expect(Jid.of('', 'example.com').toString()).toBe('example.com');
    expect(() => Jid.of('a@b', 'example.com')).toThrow(JidError);
    expect(() => Jid.of('a', 'example.com/r')).toThrow(JidError);
  });

  it('compares, strips and replaces resources', () => {
    const full = Jid.parse('juliet@example.com/balcony');
    expect(full.isBare).toBe(false);
    expect(full.bare().toString()).toBe('juliet@example.com');
    expect(full.bare().isBare).toBe(true);
    expect(full.equals(Jid.parse('JULIET@example.com/balcony'))).toBe(true);
    expect(full.equals(Jid.parse('juliet@example.com/Balcony'))).toBe(false);
    expect(full.equals(undefined)).toBe(false);
    expect(full.withResource('orchard\u00a0gate').resource).toBe('orchard gate');
    expect(full.withResource('').isBare).toBe(true);
    expect(() => full.withResource('a\u0000')).toThrow(JidError);
  });

  it('gives the bare form of a prepared string', () => {
    expect(bareOf('juliet@example.com/balcony/2')).toBe('juliet@example.com');
    expect(bareOf('example.com')).toBe('example.com');
  });
});
