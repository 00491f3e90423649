// XEP-0313 §4: reading a query's form, paging and flip-page; the errors for what it cannot run.
import { describe, expect, it } from 'vitest';
import { parseTrusted, StanzaError } from '@starling/xmpp';
import { DEFAULT_PAGE, MAX_PAGE, parseMamQuery, queryForm } from './query.ts';

function field(name: string, ...values: string[]): string {
  return `<field var="${name}">${values.map((v) => `<value>${v}</value>`).join('')}</field>`;
}

function query(fields: string[] = [], rest = '', attrs = ''): string {
  const form = `<x xmlns="jabber:x:data" type="submit">${field('FORM_TYPE', 'urn:xmpp:mam:2')}${fields.join('')}</x>`;
  return `<query xmlns="urn:xmpp:mam:2"${attrs}>${form}${rest}</query>`;
}

const parse = (xml: string) => parseMamQuery(parseTrusted(xml));

function refusal(xml: string): string {
  try {
    parse(xml);
  } catch (err) {
    if (err instanceof StanzaError) return err.condition;
    throw err;
  }
  return 'accepted';
}

describe('parseMamQuery', () => {
  it('runs an empty query over the whole archive with the default page', () => {
    expect(parse('<query xmlns="urn:xmpp:mam:2"/>')).toEqual({ archive: { max: DEFAULT_PAGE }, flip: false });
  });

  it('reads every field, the paging and flip-page, and keeps the queryid', () => {
    const parsed = parse(
      query(
        [
          field('with', 'Romeo@Example.net'),
          field('start', '2010-06-07T00:00:00Z'),
          field('end', '2010-07-07T13:23:54.5+02:00'),
          field('after-id', 'a1'),
          field('before-id', 'b9'),
          field('ids', 'x', 'y', 'x'),
        ],
        '<set xmlns="http://jabber.org/protocol/rsm"><max>10</max><before>b5</before></set><flip-page/>',
        ' queryid="q1"',
      ),
    );
    expect(parsed).toEqual({
      queryId: 'q1',
      flip: true,
      archive: {
        with: 'romeo@example.net',
        start: Date.UTC(2010, 5, 7),
        end: Date.UTC(2010, 6, 7, 11, 23, 54, 500),
        afterId: 'a1',
        beforeId: 'b9',
        ids: ['x', 'y'],
        max: 10,
        before: 'b5',
      },
    });
  });

  it('matches a full JID by its bare JID, rounds times inward to whole milliseconds, and caps max', () => {
    const parsed = parse(
      query(
        [
          field('with', 'romeo@example.net/orchard'),
          field('start', '2010-06-07T00:00:00.0001Z'),
          field('end', '2010-06-07T00:00:00.9999Z'),
        ],
        `<set xmlns="http://jabber.org/protocol/rsm"><max>${MAX_PAGE + 1}</max><after>a</after></set>`,
      ),
    );
    const midnight = Date.UTC(2010, 5, 7);
    expect(parsed.archive).toEqual({
      with: 'romeo@example.net',
      start: midnight + 1,
      end: midnight + 999,
      max: MAX_PAGE,
      after: 'a',
    });
  });

  it('takes fields without a value as left out', () => {
    expect(parse(query([field('with'), field('start', ''), field('ids')])).archive).toEqual({
      max: DEFAULT_PAGE,
    });
  });

  it('answers feature-not-implemented to a field it does not know (§4.1.5)', () => {
    expect(refusal(query([field('include-groupchat', 'true')]))).toBe('feature-not-implemented');
    expect(refusal(query([field('{urn:xmpp:fulltext:0}fulltext', 'love')]))).toBe('feature-not-implemented');
  });

  it('answers bad-request to malformed values and forms', () => {
    expect(refusal(query([field('start', 'yesterday')]))).toBe('bad-request');
    expect(refusal(query([field('end', '2010-13-01T00:00:00Z')]))).toBe('bad-request');
    expect(refusal(query([field('start', '2010-06-07')]))).toBe('bad-request');
    expect(refusal(query([field('with', 'not@valid@jid')]))).toBe('bad-request');
    expect(refusal(query([field('with', 'a@example.com', 'b@example.com')]))).toBe('bad-request');
    expect(refusal(query([field('ids', ...Array.from({ length: MAX_PAGE + 1 }, (_, i) => `i${i}`))]))).toBe(
      'bad-request',
    );
    expect(
      refusal(
        '<query xmlns="urn:xmpp:mam:2"><x xmlns="jabber:x:data" type="submit">' +
          field('FORM_TYPE', 'urn:xmpp:mam:1') +
          '</x></query>',
      ),
    ).toBe('bad-request');
    expect(refusal('<query xmlns="urn:xmpp:mam:2"><x xmlns="jabber:x:data" type="cancel"/></query>')).toBe(
      'bad-request',
    );
    expect(refusal(query([], '<set xmlns="http://jabber.org/protocol/rsm"><max>x</max></set>'))).toBe(
      'bad-request',
    );
  });
});

describe('queryForm', () => {
  it('offers the fields of urn:xmpp:mam:2 and #extended, the ids as an open list', () => {
    const form = queryForm().getChild('x', 'jabber:x:data');
    expect(form?.attrs.type).toBe('form');
    const fields = form?.getChildren('field').map((f) => `${String(f.attrs.var)}:${String(f.attrs.type)}`);
    expect(fields).toEqual([
      'FORM_TYPE:hidden',
      'with:jid-single',
      'start:text-single',
      'end:text-single',
      'before-id:text-single',
      'after-id:text-single',
      'ids:list-multi',
    ]);
    const ids = form?.getChildren('field').find((f) => f.attrs.var === 'ids');
    expect(
      ids?.getChild('validate', 'http://jabber.org/protocol/xdata-validate')?.getChild('open'),
    ).toBeDefined();
  });
});
