// XEP-0059: reading a request's <set/> and writing an answer's.
import { describe, expect, it } from 'vitest';
import { parseTrusted, StanzaError } from '@starling/xmpp';
import { parseRsm, rsmSet } from './xep-0059-rsm.ts';

const set = (inner: string) => parseTrusted(`<set xmlns="http://jabber.org/protocol/rsm">${inner}</set>`);

function refusal(inner: string): string {
  try {
    parseRsm(set(inner));
  } catch (err) {
    if (err instanceof StanzaError) return err.condition;
    throw err;
  }
  return 'accepted';
}

describe('parseRsm', () => {
  it('reads max, after and before, an empty before asking for the last page', () => {
    expect(parseRsm(undefined)).toEqual({});
    expect(parseRsm(set('<max>10</max><after>a1</after>'))).toEqual({ max: 10, after: 'a1' });
    expect(parseRsm(set('<max>0</max><before/>'))).toEqual({ max: 0, before: '' });
    expect(parseRsm(set('<before>b7</before>'))).toEqual({ before: 'b7' });
  });

  it('refuses what it cannot honour', () => {
    expect(refusal('<max>-1</max>')).toBe('bad-request');
    expect(refusal('<max>ten</max>')).toBe('bad-request');
    expect(refusal('<max>1</max><max>2</max>')).toBe('bad-request');
    expect(refusal('<after/>')).toBe('bad-request');
    expect(refusal('<index>3</index>')).toBe('feature-not-implemented');
  });
});

describe('rsmSet', () => {
  it('names the first and last item and the count; an empty page only its count', () => {
    expect(rsmSet({ first: 'a', last: 'b', count: 7 }).toString()).toBe(
      '<set xmlns="http://jabber.org/protocol/rsm"><first>a</first><last>b</last><count>7</count></set>',
    );
    expect(rsmSet({ count: 0 }).toString()).toBe(
      '<set xmlns="http://jabber.org/protocol/rsm"><count>0</count></set>',
    );
  });
});
