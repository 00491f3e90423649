// The fault drills' history check on its own: how each acknowledged message is accounted for.
import { describe, expect, it } from 'vitest';
import { formatReport, History, type Observations } from './history.ts';

function observations(partial: Partial<Observations>): Observations {
  return {
    delivered: new Map(),
    offline: new Map(),
    archived: new Set(),
    errors: new Set(),
    ...partial,
  };
}

describe('the history check', () => {
  it('accounts for each acknowledged message once: delivered, offline, archived, error, or lost', () => {
    const history = new History('t');
    for (let i = 0; i < 6; i++) history.sent('a@x', 'b@x', `m${i}`);
    history.acknowledged('a@x', 5);
    const report = history.check(
      observations({
        delivered: new Map([['b@x', ['m0', 'm1']]]),
        offline: new Map([['b@x', ['m1', 'm2']]]),
        archived: new Set(['m0', 'm3']),
        errors: new Set(['m5']),
      }),
    );
    expect(report).toMatchObject({
      sent: 6,
      acknowledged: 5,
      delivered: 2,
      offline: 1,
      archivedOnly: 1,
      errors: 0,
      lost: 1,
      duplicates: 1,
      outOfOrder: 0,
      lostIds: ['m4'],
    });
    expect(formatReport('t', report)).toContain('5 acknowledged of 6 sent, 2 delivered, 1 offline');
  });

  it('counts an error answer, and only acknowledged messages as lost', () => {
    const history = new History('t');
    history.sent('a@x', 'b@x', 'm0');
    history.sent('a@x', 'b@x', 'm1');
    history.acknowledged('a@x', 1);
    const report = history.check(observations({ errors: new Set(['m0']) }));
    expect(report).toMatchObject({ acknowledged: 1, errors: 1, lost: 0 });
  });

  it('checks per-sender order on first copies only, so replays are duplicates, not reordering', () => {
    const history = new History('t');
    for (let i = 0; i < 4; i++) history.sent('a@x', 'c@x', `a${i}`);
    for (let i = 0; i < 2; i++) history.sent('b@x', 'c@x', `b${i}`);
    history.acknowledged('a@x', 4);
    history.acknowledged('b@x', 2);
    const inOrder = history.check(
      observations({ delivered: new Map([['c@x', ['a0', 'b0', 'a1', 'a2', 'a1', 'a2', 'b1', 'a3']]]) }),
    );
    expect(inOrder).toMatchObject({ delivered: 6, duplicates: 2, outOfOrder: 0, lost: 0 });
    const swapped = history.check(
      observations({ delivered: new Map([['c@x', ['a0', 'a2', 'a1', 'a3', 'b1', 'b0']]]) }),
    );
    expect(swapped.outOfOrderIds).toEqual(['a1', 'b0']);
  });

  it('refuses an h beyond what was sent', () => {
    const history = new History('t');
    history.sent('a@x', 'b@x', 'm0');
    expect(() => history.acknowledged('a@x', 2)).toThrow(/acknowledges more/);
  });
});
