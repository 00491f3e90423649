// XEP-0077 after authentication: the registered form, password change and account removal.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { parseConfig } from '@starling/core';
import { openSqliteStore } from '@starling/store';
import { verifyPassword } from '@starling/xmpp';
import { errorOf, FeatureKit } from './test-kit.ts';
import register from './xep-0077-register.ts';

const JULIET = 'juliet@example.com';
const BALCONY = `${JULIET}/balcony`;
const CHAMBER = `${JULIET}/chamber`;
const ORCHARD = 'romeo@example.com/orchard';
let kit: FeatureKit;

function set(content: string, to = 'example.com'): string {
  return `<iq type="set" id="r" to="${to}"><query xmlns="jabber:iq:register">${content}</query></iq>`;
}

beforeEach(async () => {
  kit = await FeatureKit.open(
    {
      bus: new MemoryStanzaBus(),
      registry: new MemorySessionRegistry(),
      delivery: new LocalDelivery(),
      store: await openSqliteStore(':memory:'),
    },
    [register],
    { config: { registration: 'open' } },
  );
  await kit.addUser('juliet');
  await kit.addUser('romeo');
});

afterEach(async () => {
  await kit.close();
});

describe('XEP-0077 for an authenticated account', () => {
  it('runs only when registration is open', () => {
    expect(register.enabled?.(parseConfig({ registration: 'open' }))).toBe(true);
    expect(register.enabled?.(parseConfig({ registration: 'closed' }))).toBe(false);
  });

  it('shows the account as registered, addressed to the server or not addressed', async () => {
    const form =
      '<query xmlns="jabber:iq:register"><registered/><username>juliet</username><password/></query>';
    expect(
      await kit.iq(
        BALCONY,
        '<iq type="get" id="g" to="example.com"><query xmlns="jabber:iq:register"/></iq>',
      ),
    ).toBe(`<iq type="result" id="g" to="${BALCONY}" from="example.com">${form}</iq>`);
    expect(await kit.iq(BALCONY, '<iq type="get" id="g"><query xmlns="jabber:iq:register"/></iq>')).toBe(
      `<iq type="result" id="g" to="${BALCONY}">${form}</iq>`,
    );
  });

  it('changes the password', async () => {
    expect(await kit.iq(BALCONY, set('<username>Juliet</username><password>n3w ♥</password>'))).toBe(
      `<iq type="result" id="r" to="${BALCONY}" from="example.com"/>`,
    );
    const account = await kit.store.accounts.get('juliet');
    expect(await verifyPassword('SHA-256', 'n3w ♥', account!.scram['SHA-256'])).toBe(true);
    expect(await verifyPassword('SHA-1', 'n3w ♥', account!.scram['SHA-1'])).toBe(true);
    expect(account!.scram['SHA-256'].iterations).toBe(kit.config.auth.scramIterations);
  });

  it.each([
    ['no password', '<username>juliet</username>', 'modify bad-request'],
    ['an empty password', '<username>juliet</username><password></password>', 'modify bad-request'],
    ['no username', '<password>x</password>', 'modify bad-request'],
    ["another account's username", '<username>romeo</username><password>x</password>', 'cancel not-allowed'],
  ])('refuses a change with %s', async (_case, content, error) => {
    const before = await kit.store.accounts.get('juliet');
    expect(errorOf(await kit.iq(BALCONY, set(content)))).toBe(error);
    expect(await kit.store.accounts.get('juliet')).toEqual(before);
  });

  it("refuses requests addressed to another account's bare JID", async () => {
    const reply = await kit.iq(ORCHARD, set('<remove/>', JULIET));
    expect(errorOf(reply)).toBe('auth forbidden');
    expect(await kit.store.accounts.get('juliet')).toBeDefined();
  });

  it('removes the account, tells the hooks, answers, then closes every session', async () => {
    await kit.bind(BALCONY);
    await kit.bind(CHAMBER);
    const removed: string[] = [];
    kit.host.hooks.on('account-removed', ({ username }) => {
      removed.push(username);
    });
    expect(
      await kit.iq(
        BALCONY,
        '<iq type="set" id="rm"><query xmlns="jabber:iq:register"><remove/></query></iq>',
      ),
    ).toBe(`<iq type="result" id="rm" to="${BALCONY}"/>`);
    expect(await kit.store.accounts.get('juliet')).toBeUndefined();
    expect(removed).toEqual(['juliet']);
    expect(kit.trace).toEqual([
      `${BALCONY} <iq type="result" id="rm" to="${BALCONY}"/>`,
      `${BALCONY} close not-authorized`,
      `${CHAMBER} close not-authorized`,
    ]);
  });
});
