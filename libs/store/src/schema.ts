// Store schema: the tables behind the Store port, typed for Kysely; one schema for SQLite and PostgreSQL.
import type { ColumnType } from 'kysely';

/**
 * A 64-bit integer column (millisecond timestamps, message ids). SQLite hands back a number; PostgreSQL's
 * driver hands back int8 as a string unless told otherwise, so reads go through `Number()`.
 */
export type Int8 = ColumnType<number | string, number, number>;

/** Booleans are stored as 0/1 so that both dialects share the column type. */
export type Flag = 0 | 1;

export interface AccountsTable {
  username: string;
  /** JSON text of `Account['scram']`. */
  scram: string;
  created_at: Int8;
}

export interface RosterItemsTable {
  username: string;
  contact: string;
  name: string | null;
  subscription: string;
  ask_out: Flag;
  approved: Flag;
  /** JSON text of the group names. */
  group_names: string;
}

/** One row per user with a roster; a user without a row is at version 0. */
export interface RosterVersionsTable {
  username: string;
  version: number;
}

export interface SubscriptionRequestsTable {
  username: string;
  contact: string;
  stanza: string;
}

export interface OfflineMessagesTable {
  /** Assigned by the database, never written. */
  id: ColumnType<number | string, never, never>;
  username: string;
  stanza: string;
  stored_at: Int8;
}

/** Messages held per user, kept beside the messages so the limit check is one row lock, not a count. */
export interface OfflineCountsTable {
  username: string;
  count: number;
}

export interface UserDocumentsTable {
  username: string;
  kind: UserDocumentKind;
  key: string;
  xml: string;
}

export type UserDocumentKind = 'vcard' | 'private';

export interface BlocklistTable {
  username: string;
  jid: string;
}

export interface LastActivityTable {
  username: string;
  at: Int8;
  status: string;
}

/** One archived message (XEP-0313) of one user. */
export interface ArchiveTable {
  /** Assigned by the database in insertion order, never written: orders entries of equal `ts`. */
  seq: ColumnType<number | string, never, never>;
  username: string;
  /** The stanza-id; unique per user. */
  id: string;
  with_jid: string;
  ts: Int8;
  direction: string;
  stanza: string;
}

/** Every table of the store, as Kysely sees them. */
export interface Database {
  accounts: AccountsTable;
  roster_items: RosterItemsTable;
  roster_versions: RosterVersionsTable;
  subscription_requests: SubscriptionRequestsTable;
  offline_messages: OfflineMessagesTable;
  offline_counts: OfflineCountsTable;
  user_documents: UserDocumentsTable;
  blocklist: BlocklistTable;
  last_activity: LastActivityTable;
  archive: ArchiveTable;
}
