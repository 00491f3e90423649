// XEP-0313 §4: a query's data form, XEP-0059 paging and flip-page, read into an archive query.
import type { ArchiveQuery } from '@starling/ports';
import {
  attr,
  Jid,
  NS_DATA_FORMS,
  NS_MAM,
  NS_RSM,
  NS_XDATA_VALIDATE,
  StanzaError,
  xml,
  type Element,
} from '@starling/xmpp';
import { parseRsm } from '../xep-0059-rsm.ts';

/** Results in a page when the client names no `<max/>`. */
export const DEFAULT_PAGE = 50;
/** Most results in one page, and most ids one query may name; a larger `<max/>` gets this many. */
export const MAX_PAGE = 100;

/** A MAM query as the archive runs it. */
export interface MamQuery {
  /** Echoed on every result, so the client tells the results of concurrent queries apart. */
  readonly queryId?: string;
  readonly archive: ArchiveQuery;
  /** §4.3.5: send the page newest first. */
  readonly flip: boolean;
}

type Filters = Omit<ArchiveQuery, 'max' | 'after' | 'before'>;

// XEP-0082 DateTime; the fraction may be longer than milliseconds.
const DATETIME =
  /^(\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])T(?:[01]\d|2[0-3]):[0-5]\d:(?:[0-5]\d|60))(\.\d+)?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/;

/** Milliseconds since the epoch, with the fraction of a millisecond kept. */
function dateTime(field: string, text: string): number {
  const match = DATETIME.exec(text);
  const whole = match === null ? Number.NaN : Date.parse(`${match[1] ?? ''}${match[3] ?? ''}`);
  if (match === null || Number.isNaN(whole)) {
    throw new StanzaError('bad-request', `${field} must be an XEP-0082 DateTime`);
  }
  return whole + (match[2] === undefined ? 0 : Number(`0${match[2]}`) * 1000);
}

/** The one value of a single-valued field; none (or an empty one) counts as the field left out. */
function single(field: string, values: readonly string[]): string | undefined {
  if (values.length > 1) throw new StanzaError('bad-request', `${field} takes one value`);
  const value = values[0];
  return value === '' ? undefined : value;
}

function filtersOf(form: Element | undefined): Filters {
  if (form === undefined) return {};
  const type = attr(form, 'type');
  if (type !== undefined && type !== 'submit') throw new StanzaError('bad-request', 'submit the query form');
  let filters: Filters = {};
  for (const field of form.getChildren('field')) {
    const name = attr(field, 'var');
    const values = field.getChildren('value').map((value) => value.getText());
    switch (name) {
      case 'FORM_TYPE':
        if (values.length !== 1 || values[0] !== NS_MAM) {
          throw new StanzaError('bad-request', `FORM_TYPE must be ${NS_MAM}`);
        }
        break;
      case 'with': {
        const text = single(name, values);
        if (text === undefined) break;
        const jid = Jid.tryParse(text);
        if (jid === undefined) throw new StanzaError('bad-request', 'with must be a JID');
        // Archives keep the other party's bare JID, so a full JID matches all of its resources.
        filters = { ...filters, with: jid.bare().toString() };
        break;
      }
      case 'start': {
        const text = single(name, values);
        // An entry's time is whole milliseconds: the first one at or after the instant.
        if (text !== undefined) filters = { ...filters, start: Math.ceil(dateTime(name, text)) };
        break;
      }
      case 'end': {
        const text = single(name, values);
        if (text !== undefined) filters = { ...filters, end: Math.floor(dateTime(name, text)) };
        break;
      }
      case 'after-id': {
        const id = single(name, values);
        if (id !== undefined) filters = { ...filters, afterId: id };
        break;
      }
      case 'before-id': {
        const id = single(name, values);
        if (id !== undefined) filters = { ...filters, beforeId: id };
        break;
      }
      case 'ids': {
        const ids = [...new Set(values.filter((id) => id !== ''))];
        if (ids.length > MAX_PAGE) throw new StanzaError('bad-request', `ask for at most ${MAX_PAGE} ids`);
        if (ids.length > 0) filters = { ...filters, ids };
        break;
      }
      case undefined:
        throw new StanzaError('bad-request', 'a field without a var');
      default:
        // §4.1.5: a field the server does not know.
        throw new StanzaError('feature-not-implemented', `unsupported field ${name}`);
    }
  }
  return filters;
}

/** Reads a `<query xmlns='urn:xmpp:mam:2'/>` of type set; throws StanzaError for a bad request. */
export function parseMamQuery(query: Element): MamQuery {
  const children = query.getChildElements();
  const forms = children.filter((child) => child.is('x', NS_DATA_FORMS));
  const sets = children.filter((child) => child.is('set', NS_RSM));
  if (forms.length > 1 || sets.length > 1)
    throw new StanzaError('bad-request', 'one form and one set at most');
  const filters = filtersOf(forms[0]);
  const page = parseRsm(sets[0]);
  const archive: ArchiveQuery = {
    ...filters,
    max: Math.min(page.max ?? DEFAULT_PAGE, MAX_PAGE),
    ...(page.after === undefined ? {} : { after: page.after }),
    ...(page.before === undefined ? {} : { before: page.before }),
  };
  const queryId = attr(query, 'queryid');
  return {
    archive,
    flip: children.some((child) => child.is('flip-page', NS_MAM)),
    ...(queryId === undefined ? {} : { queryId }),
  };
}

/** §4.1.5: the fields a query may use, answered to `<iq type='get'><query/></iq>`. */
export function queryForm(): Element {
  const field = (type: string, name: string, ...children: Element[]): Element =>
    xml('field', { type, var: name }, ...children);
  return xml(
    'query',
    { xmlns: NS_MAM },
    xml(
      'x',
      { xmlns: NS_DATA_FORMS, type: 'form' },
      field('hidden', 'FORM_TYPE', xml('value', null, NS_MAM)),
      field('jid-single', 'with'),
      field('text-single', 'start'),
      field('text-single', 'end'),
      field('text-single', 'before-id'),
      field('text-single', 'after-id'),
      // The ids are the client's to name: an open list (XEP-0122), never the archive's contents.
      field(
        'list-multi',
        'ids',
        xml('validate', { xmlns: NS_XDATA_VALIDATE, datatype: 'xs:string' }, xml('open')),
      ),
    ),
  );
}
