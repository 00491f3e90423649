// @starling/store: the SQL Store (Kysely) with its schema and migrations, and its SQLite opener.
export * from './migrations.ts';
export type * from './schema.ts';
export * from './sql-store.ts';
export * from './sqlite-store.ts';
export * from './sqlite-driver.ts';
