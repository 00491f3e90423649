// XEP-0049: one private document per namespace, for its own account only, with reserved namespaces refused.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { openSqliteStore } from '@starling/store';
import { errorOf, FeatureKit } from './test-kit.ts';
import privateXml from './xep-0049-private.ts';

const JULIET = 'juliet@example.com';
const BALCONY = `${JULIET}/balcony`;
const ORCHARD = 'romeo@example.com/orchard';
const PREFS = '<exodus xmlns="exodus:prefs"><defaultnick>Hamlet</defaultnick></exodus>';
let kit: FeatureKit;

function query(type: 'get' | 'set', content: string, to?: string): string {
  const addr = to === undefined ? '' : ` to="${to}"`;
  return `<iq type="${type}" id="p"${addr}><query xmlns="jabber:iq:private">${content}</query></iq>`;
}

beforeEach(async () => {
  kit = await FeatureKit.open(
    {
      bus: new MemoryStanzaBus(),
      registry: new MemorySessionRegistry(),
      delivery: new LocalDelivery(),
      store: await openSqliteStore(':memory:'),
    },
    [privateXml],
    { config: { limits: { storageBytes: 200 } } },
  );
  await kit.addUser('juliet');
  await kit.addUser('romeo');
});

afterEach(async () => {
  await kit.close();
});

describe('XEP-0049 private XML storage', () => {
  it('answers the requested element empty when nothing is stored', async () => {
    expect(await kit.iq(BALCONY, query('get', '<exodus xmlns="exodus:prefs"/>'))).toBe(
      `<iq type="result" id="p" to="${BALCONY}"><query xmlns="jabber:iq:private"><exodus xmlns="exodus:prefs"/></query></iq>`,
    );
  });

  it('stores a document per namespace and returns it', async () => {
    expect(await kit.iq(BALCONY, query('set', PREFS))).toBe(`<iq type="result" id="p" to="${BALCONY}"/>`);
    await kit.iq(BALCONY, query('set', '<other xmlns="urn:other">x</other>'));
    expect(await kit.iq(BALCONY, query('get', '<exodus xmlns="exodus:prefs"/>'))).toBe(
      `<iq type="result" id="p" to="${BALCONY}"><query xmlns="jabber:iq:private">${PREFS}</query></iq>`,
    );
  });

  it("refuses another account's storage", async () => {
    expect(errorOf(await kit.iq(ORCHARD, query('get', '<exodus xmlns="exodus:prefs"/>', JULIET)))).toBe(
      'auth forbidden',
    );
    expect(errorOf(await kit.iq(ORCHARD, query('set', PREFS, JULIET)))).toBe('auth forbidden');
    expect(await kit.store.privateXml.get('juliet', 'exodus:prefs')).toBeUndefined();
  });

  it.each([
    ['no element', ''],
    ['two elements', '<a xmlns="urn:a"/><b xmlns="urn:b"/>'],
    ['an element without a namespace of its own', '<a/>'],
    ['jabber:client', '<message xmlns="jabber:client"/>'],
    ['jabber:server', '<message xmlns="jabber:server"/>'],
    ['jabber:iq:private', '<query xmlns="jabber:iq:private"/>'],
  ])('refuses %s with not-acceptable', async (_case, content) => {
    expect(errorOf(await kit.iq(BALCONY, query('get', content)))).toBe('modify not-acceptable');
    expect(errorOf(await kit.iq(BALCONY, query('set', content)))).toBe('modify not-acceptable');
  });

  it('refuses a document larger than the storage limit', async () => {
    const big = `<big xmlns="urn:big">${'x'.repeat(200)}</big>`;
    expect(errorOf(await kit.iq(BALCONY, query('set', big)))).toBe('modify policy-violation');
    expect(await kit.store.privateXml.get('juliet', 'urn:big')).toBeUndefined();
  });
});
