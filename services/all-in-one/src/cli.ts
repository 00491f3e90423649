// The `starling` command: run the embedded server, manage accounts, check configuration.
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';
import {
  ConfigError,
  createLogger,
  ENV_SETTINGS,
  loadConfig,
  type Config,
  type Logger,
} from '@starling/core';
import { Jid, JidError, deriveAllScramKeys } from '@starling/xmpp';
import { openPostgresStore, openSqliteStore } from '@starling/store';
import type { Store } from '@starling/ports';
import { startClusterRole, type ClusterRole } from './cluster.ts';
import { databaseFile, startEmbedded } from './server.ts';

const VERSION = '0.1.0';

const HELP = `Starling ${VERSION}: an XMPP server.

Usage:
  starling [serve]                      run the server (all roles in one process)
  starling edge|router|presence|archive run one role of a cluster (Kafka, Redis, PostgreSQL settings needed)
  starling user add <user> [--password P]
  starling user passwd <user> [--password P]
  starling user del <user>
  starling user list
  starling config check                 validate the configuration and print it

<user> is a localpart ("alice") or a bare JID of the configured domain ("alice@localhost").
Without --password the password is read from standard input (prompted twice on a terminal).

Options:
  -c, --config FILE    YAML configuration file (every setting; see README)
  -h, --help           this text
  -v, --version        the version

Environment (overrides the file): ${Object.keys(ENV_SETTINGS).join(', ')}
`;

/** A mistake in how the command was called: printed with a hint, exit status 2. */
class UsageError extends Error {}

async function readPassword(prompt: boolean): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: prompt });
  const lines = rl[Symbol.asyncIterator]();
  const ask = async (question: string): Promise<string> => {
    if (prompt) process.stderr.write(question);
    const next = await lines.next();
    if (prompt) process.stderr.write('\n');
    if (next.done === true) throw new UsageError('no password given on standard input');
    return next.value;
  };
  try {
    if (prompt) {
      // Keep the password off the screen: readline echoes through _writeToOutput.
      (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => undefined;
      const first = await ask('Password: ');
      const second = await ask('Repeat password: ');
      if (first !== second) throw new UsageError('the two passwords differ');
      return first;
    }
    return await ask('');
  } finally {
    rl.close();
  }
}

function username(config: Config, given: string | undefined): string {
  if (given === undefined || given === '') throw new UsageError('name the user, e.g. "alice"');
  try {
    const jid = given.includes('@') ? Jid.parse(given) : Jid.of(given, config.domain);
    if (jid.domain !== config.domain) {
      throw new UsageError(`${given} is not on this server's domain (${config.domain})`);
    }
    if (jid.local === '' || !jid.isBare)
      throw new UsageError(`${given} is not a user: give "name" or "name@${config.domain}"`);
    return jid.local;
  } catch (err) {
    if (err instanceof JidError) throw new UsageError(`"${given}" is not a valid username: ${err.message}`);
    throw err;
  }
}

async function password(given: string | undefined): Promise<string> {
  const value = given ?? (await readPassword(process.stdin.isTTY));
  if (value === '') throw new UsageError('the password is empty');
  return value;
}

async function userCommand(
  config: Config,
  args: readonly string[],
  passwordOption: string | undefined,
): Promise<void> {
  const [action, name, ...rest] = args;
  if (rest.length > 0) throw new UsageError(`unexpected argument "${rest.join(' ')}"`);
  const store = await openAccountsStore(config);
  try {
    switch (action) {
      case 'add': {
        const user = username(config, name);
        const scram = await deriveAllScramKeys(await password(passwordOption), config.auth.scramIterations);
        if (!(await store.accounts.create({ username: user, scram, createdAt: Date.now() }))) {
          throw new UsageError(
            `${user}@${config.domain} exists already (use "user passwd" to change its password)`,
          );
        }
        console.log(`added ${user}@${config.domain}`);
        return;
      }
      case 'passwd': {
        const user = username(config, name);
        if ((await store.accounts.get(user)) === undefined)
          throw new UsageError(`no user ${user}@${config.domain}`);
        const scram = await deriveAllScramKeys(await password(passwordOption), config.auth.scramIterations);
        await store.accounts.setCredentials(user, scram);
        console.log(`changed the password of ${user}@${config.domain}`);
        return;
      }
      case 'del': {
        const user = username(config, name);
        if (!(await store.accounts.delete(user))) throw new UsageError(`no user ${user}@${config.domain}`);
        console.log(`deleted ${user}@${config.domain} and everything stored for it`);
        return;
      }
      case 'list': {
        if (name !== undefined) throw new UsageError(`unexpected argument "${name}"`);
        for (const user of await store.accounts.list()) console.log(`${user}@${config.domain}`);
        return;
      }
      default:
        throw new UsageError(`unknown user command "${action ?? ''}": use add, passwd, del or list`);
    }
  } finally {
    await store.close();
  }
}

/** Accounts live in PostgreSQL for a cluster (when configured), else in the embedded SQLite file. */
function openAccountsStore(config: Config): Promise<Store> {
  const url = config.cluster.postgresUrl;
  return url === undefined ? openSqliteStore(databaseFile(config)) : openPostgresStore(url);
}

/** Runs `close` on SIGINT/SIGTERM and exits; a second signal exits at once. */
function exitOnSignal(close: () => Promise<void>, log: Logger): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      process.stderr.write(`${signal} again: exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function serveCluster(role: ClusterRole, config: Config): Promise<void> {
  const log = createLogger(config.log.level, { shape: 'cluster' });
  const running = await startClusterRole(role, config, log);
  const lines = [`Starling ${VERSION} ${role} ${running.nodeId} serving ${config.domain}`];
  if (running.ports) {
    const { address } = config.listen;
    lines.push(
      `  client connections (STARTTLS)  ${address}:${running.ports.c2s}`,
      `  client connections (TLS)       ${address}:${running.ports.directTls}`,
      `  WebSocket                      ws://${address}:${running.ports.http}/xmpp-websocket`,
    );
  }
  lines.push(
    `  metrics and health             http://${config.listen.address}:${running.opsPort}/metrics`,
    '',
  );
  process.stderr.write(lines.join('\n'));
  exitOnSignal(() => running.close(), log);
}

async function serve(config: Config): Promise<void> {
  const log = createLogger(config.log.level, { shape: 'embedded' });
  const server = await startEmbedded(config, log);
  const { address } = config.listen;
  const { c2s, directTls, http } = server.ports;
  const certificate =
    server.tls.source === 'configured'
      ? server.tls.certFile
      : `self-signed (${server.tls.source}): ${server.tls.certFile}`;
  process.stderr.write(
    [
      `Starling ${VERSION} serving ${config.domain}`,
      `  client connections (STARTTLS)  ${address}:${c2s}`,
      `  client connections (TLS)       ${address}:${directTls}`,
      `  WebSocket                      ws://${address}:${http}/xmpp-websocket`,
      `  health                         http://${address}:${http}/healthz`,
      `  data                           ${server.databaseFile}`,
      `  certificate                    ${certificate}`,
      `  registration                   ${config.registration}`,
      `Add a user with:  npm run starling -- user add alice`,
      '',
    ].join('\n'),
  );
  exitOnSignal(() => server.close(), log);
}

export async function main(argv: readonly string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        password: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (err) {
    process.stderr.write(`starling: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help === true) {
    process.stdout.write(HELP);
    return 0;
  }
  if (values.version === true) {
    process.stdout.write(`${VERSION}\n`);
    return 0;
  }
  const [command = 'serve', ...rest] = positionals;
  try {
    const config = loadConfig(values.config);
    switch (command) {
      case 'serve':
        if (rest.length > 0) throw new UsageError(`unexpected argument "${rest.join(' ')}"`);
        await serve(config);
        return -1;
      case 'edge':
      case 'router':
      case 'presence':
      case 'archive':
        if (rest.length > 0) throw new UsageError(`unexpected argument "${rest.join(' ')}"`);
        await serveCluster(command, config);
        return -1;
      case 'user':
        await userCommand(config, rest, values.password);
        return 0;
      case 'config':
        if (rest[0] !== 'check' || rest.length > 1) throw new UsageError('use "starling config check"');
        process.stdout.write(`configuration is valid:\n${JSON.stringify(config, null, 2)}\n`);
        return 0;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`starling: ${err.message}\n`);
      return 2;
    }
    if (err instanceof UsageError) {
      process.stderr.write(`starling: ${err.message}\nRun "starling --help" for usage.\n`);
      return 2;
    }
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE' || code === 'EACCES') {
      const { address, port } = err as { address?: string; port?: number };
      process.stderr.write(
        `starling: cannot listen on ${address ?? '?'}:${port ?? '?'} (${code === 'EADDRINUSE' ? 'in use' : 'not permitted'}); ` +
          'choose other ports with listen.* in the config file or STARLING_C2S_PORT, STARLING_DIRECT_TLS_PORT, STARLING_HTTP_PORT\n',
      );
      return 1;
    }
    throw err;
  }
}
