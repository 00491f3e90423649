// RFC 6121 Appendix A: every subscription stanza, outbound and inbound, from each of the nine states.
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalDelivery, MemorySessionRegistry, MemoryStanzaBus } from '@starling/adapters';
import { openSqliteStore } from '@starling/store';
import type { Subscription } from '@starling/ports';
import { parseTrusted } from '@starling/xmpp';
import type { SubscriptionType } from './subscription-state.ts';
import { summary, type TestSession, World } from './test-world.ts';

const JULIET = 'juliet@example.com';
const ROMEO = 'romeo@example.com';

interface State {
  readonly subscription: Subscription;
  readonly pendingOut: boolean;
  readonly pendingIn: boolean;
}

const STATES = {
  None: { subscription: 'none', pendingOut: false, pendingIn: false },
  'None+PendingOut': { subscription: 'none', pendingOut: true, pendingIn: false },
  'None+PendingIn': { subscription: 'none', pendingOut: false, pendingIn: true },
  'None+PendingOut+In': { subscription: 'none', pendingOut: true, pendingIn: true },
  To: { subscription: 'to', pendingOut: false, pendingIn: false },
  'To+PendingIn': { subscription: 'to', pendingOut: false, pendingIn: true },
  From: { subscription: 'from', pendingOut: false, pendingIn: false },
  'From+PendingOut': { subscription: 'from', pendingOut: true, pendingIn: false },
  Both: { subscription: 'both', pendingOut: false, pendingIn: false },
} as const satisfies Record<string, State>;

type StateName = keyof typeof STATES;

/** New state (undefined: no change), whether the stanza passes (routed / delivered), whether a push goes. */
type Row = readonly [next: StateName | undefined, pass: boolean, push: boolean];

// A.2.1-A.2.4, with §3.4: an outbound "subscribed" in None, None+PendingOut or To is a pre-approval,
// stored as approved="true" and pushed, never routed (the push column marks it).
const OUTBOUND: Record<SubscriptionType, Record<StateName, Row>> = {
  subscribe: {
    None: ['None+PendingOut', true, true],
    'None+PendingOut': [undefined, true, false],
    'None+PendingIn': ['None+PendingOut+In', true, true],
    'None+PendingOut+In': [undefined, true, false],
    To: [undefined, true, false],
    'To+PendingIn': [undefined, true, false],
    From: ['From+PendingOut', true, true],
    'From+PendingOut': [undefined, true, false],
    Both: [undefined, true, false],
  },
  unsubscribe: {
    None: [undefined, true, false],
    'None+PendingOut': ['None', true, true],
    'None+PendingIn': [undefined, true, false],
    'None+PendingOut+In': ['None+PendingIn', true, true],
    To: ['None', true, true],
    'To+PendingIn': ['None+PendingIn', true, true],
    From: [undefined, true, false],
    'From+PendingOut': ['From', true, true],
    Both: ['From', true, true],
  },
  subscribed: {
    None: [undefined, false, true],
    'None+PendingOut': [undefined, false, true],
    'None+PendingIn': ['From', true, true],
    'None+PendingOut+In': ['From+PendingOut', true, true],
    To: [undefined, false, true],
    'To+PendingIn': ['Both', true, true],
    From: [undefined, false, false],
    'From+PendingOut': [undefined, false, false],
    Both: [undefined, false, false],
  },
  unsubscribed: {
    None: [undefined, false, false],
    'None+PendingOut': [undefined, false, false],
    'None+PendingIn': ['None', true, false],
    'None+PendingOut+In': ['None+PendingOut', true, false],
    To: [undefined, false, false],
    'To+PendingIn': ['To', true, false],
    From: ['None', true, true],
    'From+PendingOut': ['None+PendingOut', true, true],
    Both: ['To', true, true],
  },
};

// A.3.1-A.3.4. An inbound "subscribe" in a state with "from" is answered "subscribed" by the server (§3.1.3).
const INBOUND: Record<SubscriptionType, Record<StateName, Row>> = {
  subscribe: {
    None: ['None+PendingIn', true, false],
    'None+PendingOut': ['None+PendingOut+In', true, false],
    'None+PendingIn': [undefined, false, false],
    'None+PendingOut+In': [undefined, false, false],
    To: ['To+PendingIn', true, false],
    'To+PendingIn': [undefined, false, false],
    From: [undefined, false, false],
    'From+PendingOut': [undefined, false, false],
    Both: [undefined, false, false],
  },
  subscribed: {
    None: [undefined, false, false],
    'None+PendingOut': ['To', true, true],
    'None+PendingIn': [undefined, false, false],
    'None+PendingOut+In': ['To+PendingIn', true, true],
    To: [undefined, false, false],
    'To+PendingIn': [undefined, false, false],
    From: [undefined, false, false],
    'From+PendingOut': ['Both', true, true],
    Both: [undefined, false, false],
  },
  unsubscribe: {
    None: [undefined, false, false],
    'None+PendingOut': [undefined, false, false],
    'None+PendingIn': ['None', true, false],
    'None+PendingOut+In': ['None+PendingOut', true, false],
    To: [undefined, false, false],
    'To+PendingIn': ['To', true, false],
    From: ['None', true, true],
    'From+PendingOut': ['None+PendingOut', true, true],
    Both: ['To', true, true],
  },
  unsubscribed: {
    None: [undefined, false, false],
    'None+PendingOut': ['None', true, true],
    'None+PendingIn': [undefined, false, false],
    'None+PendingOut+In': ['None+PendingIn', true, true],
    To: ['None', true, true],
    'To+PendingIn': ['None+PendingIn', true, true],
    From: [undefined, false, false],
    'From+PendingOut': ['From', true, true],
    Both: ['From', true, true],
  },
};

const TYPES: readonly SubscriptionType[] = ['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed'];

let world: World | undefined;

afterEach(async () => {
  await world?.close();
  world = undefined;
});

/** Juliet (online, available, interested) in `state` towards Romeo; only Juliet's side is processed. */
async function julietIn(state: State): Promise<{ world: World; juliet: TestSession }> {
  world = await World.open(
    {
      bus: new MemoryStanzaBus(),
      registry: new MemorySessionRegistry(),
      delivery: new LocalDelivery(),
      store: await openSqliteStore(':memory:'),
    },
    { handles: (key) => key === JULIET },
  );
  await world.account('juliet');
  await world.account('romeo');
  await world.setItem('juliet', ROMEO, state.subscription, { askOut: state.pendingOut });
  if (state.pendingIn) {
    await world.backends.store.subscriptionRequests.add(
      'juliet',
      ROMEO,
      `<presence from='${ROMEO}' to='${JULIET}' type='subscribe'/>`,
    );
  }
  const juliet = await world.connect(`${JULIET}/balcony`, { available: true, presence: '<presence/>' });
  return { world, juliet };
}

async function stateOf(w: World): Promise<State & { approved: boolean }> {
  const item = await w.backends.store.rosters.getItem('juliet', ROMEO);
  return {
    subscription: item?.subscription ?? 'none',
    pendingOut: item?.askOut ?? false,
    pendingIn: await w.backends.store.subscriptionRequests.has('juliet', ROMEO),
    approved: item?.approved ?? false,
  };
}

function pushOf(state: State, approved: boolean): string {
  return `push ${ROMEO} ${state.subscription}${state.pendingOut ? ' ask' : ''}${approved ? ' approved' : ''}`;
}

/** Summaries of what reached Romeo's side of the presence topic. */
function toRomeo(w: World): string[] {
  return w.published.flatMap(({ key, envelope }) =>
    key === ROMEO && envelope.t === 'stanza' && envelope.dir === 'in'
      ? [summary(parseTrusted(envelope.xml))]
      : [],
  );
}

describe('A.2: outbound subscription stanzas', () => {
  for (const type of TYPES) {
    for (const [name, before] of Object.entries(STATES) as [StateName, State][]) {
      const [next, pass, push] = OUTBOUND[type][name];
      const after = next === undefined ? before : STATES[next];
      const preApproval = type === 'subscribed' && !pass && push;
      it(`${type} from ${name}: ${next ?? 'no change'}, ${pass ? 'routed' : 'not routed'}`, async () => {
        const { world: w, juliet } = await julietIn(before);
        await w.send(juliet, `<presence to='${ROMEO}' type='${type}' id='s1'/>`);
        expect(w.failures).toEqual([]);
        expect(await stateOf(w)).toEqual({ ...after, approved: preApproval });
        expect(w.take(juliet.jid)).toEqual(push ? [pushOf(after, preApproval)] : []);
        expect(toRomeo(w)).toEqual(pass ? [`presence ${type} ${JULIET} -> ${ROMEO}`] : []);
      });
    }
  }
});

describe('A.3: inbound subscription stanzas', () => {
  for (const type of TYPES) {
    for (const [name, before] of Object.entries(STATES) as [StateName, State][]) {
      const [next, pass, push] = INBOUND[type][name];
      const after = next === undefined ? before : STATES[next];
      const autoReply =
        type === 'subscribe' && (before.subscription === 'from' || before.subscription === 'both');
      it(`${type} from ${name}: ${next ?? 'no change'}, ${pass ? 'delivered' : 'not delivered'}`, async () => {
        const { world: w, juliet } = await julietIn(before);
        await w.publish(JULIET, {
          t: 'stanza',
          dir: 'in',
          id: randomUUID(),
          from: ROMEO,
          sessionId: '',
          edgeId: '',
          ts: Date.now(),
          xml: `<presence from='${ROMEO}' to='${JULIET}' type='${type}' id='r1'/>`,
        });
        expect(w.failures).toEqual([]);
        expect(await stateOf(w)).toEqual({ ...after, approved: false });
        const expected = [
          ...(push ? [pushOf(after, false)] : []),
          ...(pass ? [`presence ${type} ${ROMEO} -> ${JULIET}`] : []),
        ];
        expect(w.take(juliet.jid)).toEqual(expected);
        expect(toRomeo(w)).toEqual(autoReply ? [`presence subscribed ${JULIET} -> ${ROMEO}`] : []);
      });
    }
  }
});
