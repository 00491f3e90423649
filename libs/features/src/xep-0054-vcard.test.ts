// XEP-0054: reading any account's vCard, writing only the own one, within the storage limit.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { openSqliteStore } from '@starling/store';
import { errorOf, FeatureKit } from './test-kit.ts';
import vcard from './xep-0054-vcard.ts';

const JULIET = 'juliet@example.com';
const BALCONY = `${JULIET}/balcony`;
const ORCHARD = 'romeo@example.com/orchard';
const CARD = '<vCard xmlns="vcard-temp"><FN>Juliet Capulet</FN><NICKNAME>J</NICKNAME></vCard>';
let kit: FeatureKit;

beforeEach(async () => {
  kit = await FeatureKit.open(
    {
      bus: new MemoryStanzaBus(),
      registry: new MemorySessionRegistry(),
      delivery: new LocalDelivery(),
      store: await openSqliteStore(':memory:'),
    },
    [vcard],
    { config: { limits: { storageBytes: 200 } } },
  );
  await kit.addUser('juliet');
  await kit.addUser('romeo');
});

afterEach(async () => {
  await kit.close();
});

describe('XEP-0054 vcard-temp', () => {
  it('answers an empty vCard before one was stored', async () => {
    expect(await kit.iq(BALCONY, '<iq type="get" id="g"><vCard xmlns="vcard-temp"/></iq>')).toBe(
      `<iq type="result" id="g" to="${BALCONY}"><vCard xmlns="vcard-temp"/></iq>`,
    );
  });

  it('stores the own vCard and shows it to anyone', async () => {
    expect(await kit.iq(BALCONY, `<iq type="set" id="s">${CARD}</iq>`)).toBe(
      `<iq type="result" id="s" to="${BALCONY}"/>`,
    );
    expect(await kit.iq(BALCONY, '<iq type="get" id="g"><vCard xmlns="vcard-temp"/></iq>')).toBe(
      `<iq type="result" id="g" to="${BALCONY}">${CARD}</iq>`,
    );
    expect(
      await kit.iq(ORCHARD, `<iq type="get" id="g2" to="${JULIET}"><vCard xmlns="vcard-temp"/></iq>`),
    ).toBe(`<iq type="result" id="g2" to="${ORCHARD}" from="${JULIET}">${CARD}</iq>`);
  });

  it("refuses to set another account's vCard", async () => {
    const reply = await kit.iq(ORCHARD, `<iq type="set" id="s" to="${JULIET}">${CARD}</iq>`);
    expect(errorOf(reply)).toBe('auth forbidden');
    expect(await kit.store.vcards.get('juliet', '')).toBeUndefined();
  });

  it('refuses a vCard larger than the storage limit', async () => {
    const big = `<vCard xmlns="vcard-temp"><DESC>${'x'.repeat(200)}</DESC></vCard>`;
    expect(errorOf(await kit.iq(BALCONY, `<iq type="set" id="s">${big}</iq>`))).toBe(
      'modify policy-violation',
    );
    expect(await kit.store.vcards.get('juliet', '')).toBeUndefined();
  });
});
