// Store port: the system of record (accounts, rosters, offline messages, message archives, per-user XML).

/** RFC 5802 salted credentials for one hash; binary values base64-encoded. */
export interface ScramCredentials {
  readonly salt: string;
  readonly iterations: number;
  readonly storedKey: string;
  readonly serverKey: string;
}

export type ScramHash = 'SHA-1' | 'SHA-256';

export interface Account {
  /** Prepared localpart. */
  readonly username: string;
  readonly scram: Readonly<Record<ScramHash, ScramCredentials>>;
  readonly createdAt: number;
}

export type Subscription = 'none' | 'to' | 'from' | 'both';

/** RFC 6121 §2.1.2 roster item plus the server-side subscription flags of §3 and Appendix A. */
export interface RosterItem {
  /** Bare JID of the contact. */
  readonly jid: string;
  readonly name?: string;
  readonly subscription: Subscription;
  /** Pending out: the user asked to subscribe and the contact has not answered. */
  readonly askOut: boolean;
  /** The user pre-approved the contact's subscription request (RFC 6121 §3.4). */
  readonly approved: boolean;
  readonly groups: readonly string[];
}

export interface Roster {
  /** Increases with every change; the XEP-0237 version string. */
  readonly version: number;
  readonly items: readonly RosterItem[];
}

export interface OfflineMessage {
  readonly id: number;
  /** Serialized stanza, already carrying its XEP-0203 delay. */
  readonly stanza: string;
  readonly storedAt: number;
}

export interface AccountStore {
  /** Creates the account; false if the username is taken. */
  create(account: Account): Promise<boolean>;
  get(username: string): Promise<Account | undefined>;
  setCredentials(username: string, scram: Account['scram']): Promise<boolean>;
  /** Deletes the account and everything the store holds for it. */
  delete(username: string): Promise<boolean>;
  list(): Promise<string[]>;
}

export interface RosterStore {
  get(username: string): Promise<Roster>;
  getItem(username: string, contact: string): Promise<RosterItem | undefined>;
  /** Inserts or replaces the item; returns the new roster version. */
  setItem(username: string, item: RosterItem): Promise<number>;
  /** Removes the item; returns the new roster version, or undefined if there was none. */
  removeItem(username: string, contact: string): Promise<number | undefined>;
}

/** Inbound subscription requests awaiting the user's decision (RFC 6121 §3.1.3, pending in). */
export interface SubscriptionRequestStore {
  /** Stores (or replaces) the request stanza from `contact`. */
  add(username: string, contact: string, stanza: string): Promise<void>;
  remove(username: string, contact: string): Promise<boolean>;
  has(username: string, contact: string): Promise<boolean>;
  list(username: string): Promise<{ contact: string; stanza: string }[]>;
}

export interface OfflineStore {
  /** Stores a message; false when the user's queue is full (`limit` messages). */
  push(username: string, stanza: string, storedAt: number, limit: number): Promise<boolean>;
  /** Oldest first. */
  list(username: string): Promise<OfflineMessage[]>;
  /** Removes delivered messages by id. */
  remove(username: string, ids: readonly number[]): Promise<void>;
  count(username: string): Promise<number>;
}

/** One XML document per user and key: vCard-temp (key ''), private XML storage (key = namespace). */
export interface XmlStore {
  get(username: string, key: string): Promise<string | undefined>;
  set(username: string, key: string, xml: string): Promise<void>;
  delete(username: string, key: string): Promise<void>;
}

export interface BlocklistStore {
  list(username: string): Promise<string[]>;
  add(username: string, jids: readonly string[]): Promise<void>;
  /** Removes the given JIDs, or all when `jids` is undefined. */
  remove(username: string, jids?: readonly string[]): Promise<void>;
}

export interface LastActivity {
  /** Milliseconds since the epoch of the last logout. */
  readonly at: number;
  readonly status: string;
}

export interface LastActivityStore {
  get(username: string): Promise<LastActivity | undefined>;
  set(username: string, activity: LastActivity): Promise<void>;
}

/** Which way an archived message went, seen from the archive's owner (XEP-0313 §3). */
export type ArchiveDirection = 'in' | 'out';

/** One message in a user's archive (XEP-0313 §3). */
export interface ArchiveEntry {
  /** The archive's id for the message, as in its XEP-0359 stanza-id; unique within one archive. */
  readonly id: string;
  /** Bare JID of the other party: the recipient of an outgoing message, the sender of an incoming one. */
  readonly with: string;
  /** Milliseconds since the epoch when the server routed the message. */
  readonly ts: number;
  /** The message as routed, serialized, ready to be forwarded (XEP-0297). */
  readonly stanza: string;
  readonly direction: ArchiveDirection;
}

/** Which entries a query selects and which page of them it wants (XEP-0313 §4 filters, XEP-0059 paging). */
export interface ArchiveQuery {
  /** Only entries with this bare JID. */
  readonly with?: string;
  /** Only entries at or after this time (milliseconds since the epoch). */
  readonly start?: number;
  /** Only entries at or before this time. */
  readonly end?: number;
  /** Only entries after this one (exclusive): a filter, so it also bounds `count`. */
  readonly afterId?: string;
  /** Only entries before this one (exclusive): a filter, so it also bounds `count`. */
  readonly beforeId?: string;
  /** Only these entries. */
  readonly ids?: readonly string[];
  /** Page cursor: the page starts right after this entry and goes forward. */
  readonly after?: string;
  /**
   * Page cursor: the page ends right before this entry and is taken from the newest end of what
   * matches; `''` gives the last page. With `before` set, paging goes backward.
   */
  readonly before?: string;
  /** Most entries in the page; 0 asks for `complete` and `count` only. */
  readonly max: number;
}

export interface ArchivePage {
  /** Oldest first, also when paging backward. */
  readonly items: readonly ArchiveEntry[];
  /** No matching entry lies beyond the page in the paging direction (newer forward, older backward). */
  readonly complete: boolean;
  /** Id of the oldest item of the page; absent when it is empty. */
  readonly first?: string;
  /** Id of the newest item of the page; absent when it is empty. */
  readonly last?: string;
  /** Entries the filters match over all pages (the cursors `after` and `before` left out). */
  readonly count?: number;
}

/**
 * Per-user message archives (XEP-0313). Entries are ordered by `ts`, and entries of equal `ts` in the
 * order they were appended, so pages stay stable while the archive grows.
 */
export interface ArchiveStore {
  /**
   * Appends an entry, settling once it is stored. An entry whose id the user's archive holds already is
   * left out: the first one stays (a write delivered twice is stored once).
   */
  append(username: string, entry: ArchiveEntry): Promise<void>;
  /**
   * Appends entries of any users, in the order given, in as few writes as the store can (archiving is the
   * busiest write), settling once all are stored. A repeated id keeps its first entry, as with `append`.
   */
  appendMany(entries: readonly { readonly username: string; readonly entry: ArchiveEntry }[]): Promise<void>;
  /**
   * A page of the entries `query` selects; undefined when an id it names (`afterId`, `beforeId`, `ids`,
   * `after`, a non-empty `before`) is not in the user's archive.
   */
  query(username: string, query: ArchiveQuery): Promise<ArchivePage | undefined>;
  /** Empties the user's archive. */
  removeAll(username: string): Promise<void>;
}

export interface Store {
  readonly accounts: AccountStore;
  readonly rosters: RosterStore;
  readonly subscriptionRequests: SubscriptionRequestStore;
  readonly offline: OfflineStore;
  readonly vcards: XmlStore;
  readonly privateXml: XmlStore;
  readonly blocklists: BlocklistStore;
  readonly lastActivity: LastActivityStore;
  readonly archive: ArchiveStore;
  close(): Promise<void>;
}
