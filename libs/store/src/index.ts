// @starling/store: the SQL Store (Kysely) with its schema and migrations, and its SQLite and PostgreSQL openers.
export * from './migrations.ts';
export * from './postgres-store.ts';
export type * from './schema.ts';
export * from './sql-store.ts';
export * from './sqlite-store.ts';
export * from './sqlite-driver.ts';
