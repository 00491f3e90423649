// RFC 7622: XMPP addresses. Parsing splits the parts (§3.1); each part is prepared by its PRECIS profile.
import { BoundedMap } from './bounded-map.ts';
import { prepareDomainpart, prepareLocalpart, prepareResourcepart } from './precis.ts';

// Three parts of at most 1023 octets each after preparation, with room for what preparation may shrink;
// longer input is refused before it is split or normalized.
const MAX_ADDRESS_UNITS = 3 * 4 * 1023 + 2;

/**
 * Addresses parsed lately, by their text: every stanza names two, mostly the same few over and over, and
 * preparing one is the costly part. Jids are immutable, so one instance serves every caller. Oldest first
 * out beyond the bound; invalid text is never kept, nor text longer than any everyday address, so that
 * clients sending long addresses cannot make the cache hold megabytes.
 */
const PARSED_MAX = 4096;
const PARSED = new BoundedMap<string, Jid>(PARSED_MAX);
const PARSED_LONGEST = 256;

/** An address that cannot be prepared; answered with `jid-malformed`. */
export class JidError extends Error {}

/** A prepared, validated address. Instances are immutable; compare with `equals` or by `toString()`. */
export class Jid {
  readonly local: string;
  readonly domain: string;
  readonly resource: string;
  // Made on first use and kept: a parsed address is cached, and routing asks every stanza's for both.
  #bare: Jid | undefined = undefined;
  #text: string | undefined = undefined;

  private constructor(local: string, domain: string, resource: string) {
    this.local = local;
    this.domain = domain;
    this.resource = resource;
  }

  /** Parses and prepares `text`; throws JidError if any part is invalid. */
  static parse(text: string): Jid {
    let jid = PARSED.get(text);
    if (jid === undefined) {
      jid = Jid.#prepare(text);
      if (text.length > PARSED_LONGEST) return jid;
      PARSED.set(text, jid);
    }
    return jid;
  }

  static #prepare(text: string): Jid {
    if (text.length > MAX_ADDRESS_UNITS) throw new JidError('address too long');
    // §3.1: the resourcepart starts at the first '/', the localpart ends at the first '@' before it.
    const slash = text.indexOf('/');
    const beforeResource = slash === -1 ? text : text.slice(0, slash);
    const resource = slash === -1 ? '' : text.slice(slash + 1);
    if (slash !== -1 && resource === '') throw new JidError('empty resourcepart');
    const at = beforeResource.indexOf('@');
    const local = at === -1 ? '' : beforeResource.slice(0, at);
    const domain = at === -1 ? beforeResource : beforeResource.slice(at + 1);
    if (at !== -1 && local === '') throw new JidError('empty localpart');
    return Jid.of(local, domain, resource);
  }

  /** Returns the address for `text`, or undefined if it is not a valid JID. */
  static tryParse(text: string): Jid | undefined {
    try {
      return Jid.parse(text);
    } catch (err) {
      if (err instanceof JidError) return undefined;
      throw err;
    }
  }

  /** Builds an address from parts, preparing each one. Empty strings mean "absent". */
  static of(local: string, domain: string, resource = ''): Jid {
    return new Jid(
      local === '' ? '' : prepareLocalpart(local),
      prepareDomainpart(domain),
      resource === '' ? '' : prepareResourcepart(resource),
    );
  }

  get isBare(): boolean {
    return this.resource === '';
  }

  /** The bare JID (localpart@domainpart, or the domain alone). */
  bare(): Jid {
    if (this.resource === '') return this;
    return (this.#bare ??= new Jid(this.local, this.domain, ''));
  }

  withResource(resource: string): Jid {
    return new Jid(this.local, this.domain, resource === '' ? '' : prepareResourcepart(resource));
  }

  equals(other: Jid | undefined): boolean {
    return (
      other !== undefined &&
      other.local === this.local &&
      other.domain === this.domain &&
      other.resource === this.resource
    );
  }

  toString(): string {
    if (this.#text !== undefined) return this.#text;
    let s = this.local === '' ? this.domain : `${this.local}@${this.domain}`;
    if (this.resource !== '') s += `/${this.resource}`;
    this.#text = s;
    return s;
  }
}

/** The bare form of an already prepared JID string, without re-preparing it. */
export function bareOf(jid: string): string {
  const slash = jid.indexOf('/');
  return slash === -1 ? jid : jid.slice(0, slash);
}
