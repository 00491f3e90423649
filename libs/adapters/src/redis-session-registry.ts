// SessionRegistry on Redis (cluster shape): sessions per bare JID, edge leases, per-edge indexes; Redis Cluster safe.
//
// Key layout (`prefix` defaults to "starling:"):
//   <prefix>sessions:{<bare>}   hash, every session of one bare JID: field "<code><suffix>" per record field,
//                               where suffix is what follows the bare JID in the full JID ("/balcony")
//   <prefix>edge:{<edge>}       set, the sessions bound on one edge: members "<bind token> <full JID>"
//   <prefix>{leases}:expiry     sorted set, edge id scored by lease expiry (ms since the epoch, Redis clock)
//   <prefix>{leases}:address    hash, edge id to its Delivery address
//   <prefix>stream:{<bare>}:<id>   hash, XEP-0198 state of one stream: jid, sid, edge, tmo, h, ack, until
//   <prefix>streamq:{<bare>}:<id>  list, that stream's unacknowledged stanzas to the client, oldest first
//   <prefix>streamr:{<bare>}:<id>  list, SHA-1 of the last stanzas queued, to take each stanza only once
//   <prefix>{streams}:expiry    sorted set, "<id> <full JID>" of detached streams scored by expiry
// Text inside {…} is escaped so that it never holds a brace: the hash tag is then exactly that text,
// whatever characters a JID (RFC 7622 allows { and } in localparts) or an edge id contains.
import { createHash, randomBytes } from 'node:crypto';
import { Cluster, Redis, type ClusterNode, type ClusterOptions, type RedisOptions } from 'ioredis';
import type {
  ClosedStream,
  EdgeLease,
  ResumedStream,
  SessionPatch,
  SessionRecord,
  SessionRegistry,
} from '@starling/ports';

/** RFC 7622 §3.1: the resourcepart starts at the first slash, so the bare JID is what precedes it. */
function bareOf(jid: string): string {
  const slash = jid.indexOf('/');
  return slash === -1 ? jid : jid.slice(0, slash);
}

/** Percent-escapes the characters that would end or nest a hash tag (and the escape character itself). */
function tag(text: string): string {
  return `{${text.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}}`;
}

type Kind = 'string' | 'number' | 'boolean' | 'list';

/**
 * Each record field is its own hash field, so `update` writes only what it patches: router and presence
 * changing different fields of one session never undo each other. Values are encoded here, never in Lua,
 * so numbers and empty lists survive exactly (Lua's cjson would turn [] into {}).
 */
const FIELDS = [
  { code: 'sid', name: 'sessionId', kind: 'string' },
  { code: 'edge', name: 'edgeId', kind: 'string' },
  { code: 'at', name: 'boundAt', kind: 'number' },
  { code: 'prio', name: 'priority', kind: 'number' },
  { code: 'avail', name: 'available', kind: 'boolean' },
  { code: 'int', name: 'interested', kind: 'boolean' },
  { code: 'blk', name: 'blocklistRequested', kind: 'boolean' },
  { code: 'pres', name: 'presence', kind: 'string' },
  { code: 'dir', name: 'directed', kind: 'list' },
  { code: 'sm', name: 'stream', kind: 'string' },
] as const satisfies readonly { code: string; name: keyof SessionRecord; kind: Kind }[];

/** Names the edge-index member of the bind that wrote the record; not part of SessionRecord. */
const TOKEN_CODE = 'tok';
/**
 * Every stored code, in the order the scripts return their values. The session id comes first (the
 * scripts check it as f[1]); codes never contain '/', which is how a hash field splits into code and suffix.
 */
const CODES = [...FIELDS.map((f) => f.code), TOKEN_CODE];
const PATCHABLE = new Set<string>(['priority', 'available', 'interested', 'blocklistRequested', 'directed']);

function encode(kind: Kind, value: unknown): string {
  switch (kind) {
    case 'string':
    case 'number':
      return String(value);
    case 'boolean':
      return value === true ? '1' : '0';
    case 'list':
      return JSON.stringify(value);
  }
}

function decode(kind: Kind, raw: string): unknown {
  switch (kind) {
    case 'string':
      return raw;
    case 'number':
      return Number(raw);
    case 'boolean':
      return raw === '1';
    case 'list':
      return JSON.parse(raw) as unknown;
  }
}

interface Stored {
  readonly record: SessionRecord;
  readonly token: string;
}

/** Rebuilds a record from values in CODES order; undefined when nothing is stored (no session id). */
function fromValues(jid: string, values: readonly (string | null | undefined)[]): Stored | undefined {
  if (typeof values[0] !== 'string') return undefined;
  const record: Record<string, unknown> = { jid };
  FIELDS.forEach((field, i) => {
    const raw = values[i];
    if (typeof raw === 'string') record[field.name] = decode(field.kind, raw);
  });
  return { record: record as unknown as SessionRecord, token: values[FIELDS.length] ?? '' };
}

function member(token: string, jid: string): string {
  return `${token} ${jid}`;
}

/** Lua helpers shared by the scripts: the hash fields of one full JID, given its suffix. */
const LUA_FIELDS = `
local codes = {${CODES.map((c) => `'${c}'`).join(',')}}
local function fields(suffix)
  local out = {}
  for i, code in ipairs(codes) do out[i] = code .. suffix end
  return out
end`;

/**
 * KEYS[1] sessions hash; ARGV[1] suffix, ARGV[2..] code/value pairs of the new record.
 * Clears whatever the full JID held and writes the new record; returns the replaced values (nil when none).
 */
const BIND = `${LUA_FIELDS}
local f = fields(ARGV[1])
local old = redis.call('HMGET', KEYS[1], unpack(f))
redis.call('HDEL', KEYS[1], unpack(f))
local kv = {}
for i = 2, #ARGV, 2 do
  kv[#kv + 1] = ARGV[i] .. ARGV[1]
  kv[#kv + 1] = ARGV[i + 1]
end
redis.call('HSET', KEYS[1], unpack(kv))
return old`;

/** KEYS[1] sessions hash; ARGV as BIND. Writes the record only if the full JID holds none; returns 1 if so. */
const RESTORE = `${LUA_FIELDS}
local f = fields(ARGV[1])
if redis.call('HGET', KEYS[1], f[1]) then return 0 end
local kv = {}
for i = 2, #ARGV, 2 do
  kv[#kv + 1] = ARGV[i] .. ARGV[1]
  kv[#kv + 1] = ARGV[i + 1]
end
redis.call('HSET', KEYS[1], unpack(kv))
return 1`;

/** KEYS[1] sessions hash; ARGV[1] suffix, ARGV[2] session id. Returns the removed values, or nil. */
const UNBIND = `${LUA_FIELDS}
local f = fields(ARGV[1])
if redis.call('HGET', KEYS[1], f[1]) ~= ARGV[2] then return nil end
local old = redis.call('HMGET', KEYS[1], unpack(f))
redis.call('HDEL', KEYS[1], unpack(f))
return old`;

/**
 * KEYS[1] sessions hash; ARGV[1] suffix, ARGV[2] session id, ARGV[3] number of field/value pairs to set,
 * then those pairs, then the codes to delete. Returns the updated values, or nil for a stale session id.
 */
const UPDATE = `${LUA_FIELDS}
local suffix = ARGV[1]
local f = fields(suffix)
if redis.call('HGET', KEYS[1], f[1]) ~= ARGV[2] then return nil end
local n = tonumber(ARGV[3])
for i = 4, 3 + 2 * n, 2 do redis.call('HSET', KEYS[1], ARGV[i] .. suffix, ARGV[i + 1]) end
for i = 4 + 2 * n, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i] .. suffix) end
return redis.call('HMGET', KEYS[1], unpack(f))`;

/**
 * Leases are measured on the Redis server's clock (TIME), read inside the scripts that write and judge
 * them: edges, routers and presence pods then agree on expiry even when their own clocks drift. All
 * lease keys share one hash tag, so on Redis Cluster this is one node's clock.
 */
const LUA_NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * KEYS[1] expiry zset, KEYS[2] address hash; ARGV[1] edge, ARGV[2] address, ARGV[3] ttl in ms. Returns 1
 * if the lease was there, 0 if it was created.
 */
const RENEW = `${LUA_NOW}
local existed = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
if existed then return 1 end
return 0`;

/** KEYS[1] expiry zset. Edges whose expiry is now or earlier. */
const EXPIRED = `${LUA_NOW}
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)`;

/** KEYS[1] expiry zset, KEYS[2] address hash; ARGV[1] edge. Both halves of a lease, read atomically. */
const LEASE = `
return {redis.call('ZSCORE', KEYS[1], ARGV[1]), redis.call('HGET', KEYS[2], ARGV[1])}`;

/** KEYS[1] expiry zset, KEYS[2] address hash; ARGV[1] edge. */
const DROP = `
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1`;

/** How many recently queued stanzas a stream remembers, to take a stanza delivered twice only once. */
const RECENT_STANZAS = 256;

// XEP-0198 stream state. A state and its queue share the bare JID's hash tag with the sessions hash, so
// one script can check the session that holds a state, and resumption can move both in one step.

/**
 * KEYS[1] sessions hash, KEYS[2] state, KEYS[3] queue, KEYS[4] recent; ARGV[1] suffix, [2] sid, [3] id,
 * [4] jid, [5] tmo, [6] handled, [7] acked.
 */
const STREAM_OPEN = `
local suffix = ARGV[1]
if redis.call('HGET', KEYS[1], 'sid' .. suffix) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
local edge = redis.call('HGET', KEYS[1], 'edge' .. suffix)
redis.call('HSET', KEYS[2], 'jid', ARGV[4], 'sid', ARGV[2], 'edge', edge, 'tmo', ARGV[5], 'h', ARGV[6], 'ack', ARGV[7])
redis.call('HSET', KEYS[1], 'sm' .. suffix, ARGV[3])
return 1`;

/** KEYS[1] state; ARGV[1] sid, ARGV[2] handled count. */
const STREAM_HANDLED = `
if redis.call('HGET', KEYS[1], 'sid') ~= ARGV[1] then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'h')) < tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'h', ARGV[2])
end
return 1`;

/**
 * KEYS[1] state, KEYS[2] queue, KEYS[3] recent; ARGV[1] sid, ARGV[2] stanza. Returns the stanza's number,
 * 0 if the same stanza was queued recently, or nil.
 */
const STREAM_PUSH = `
if redis.call('HGET', KEYS[1], 'sid') ~= ARGV[1] then return nil end
local digest = redis.sha1hex(ARGV[2])
if redis.call('LPOS', KEYS[3], digest) then return 0 end
redis.call('RPUSH', KEYS[3], digest)
redis.call('LTRIM', KEYS[3], -${RECENT_STANZAS}, -1)
local n = redis.call('RPUSH', KEYS[2], ARGV[2])
return tonumber(redis.call('HGET', KEYS[1], 'ack')) + n`;

/** KEYS[1] state, KEYS[2] queue; ARGV[1] sid, ARGV[2] after. Returns {sent, {stanzas after it}}, or nil. */
const STREAM_QUEUED = `
if redis.call('HGET', KEYS[1], 'sid') ~= ARGV[1] then return nil end
local acked = tonumber(redis.call('HGET', KEYS[1], 'ack'))
local from = math.max(tonumber(ARGV[2]) - acked, 0)
return {acked + redis.call('LLEN', KEYS[2]), redis.call('LRANGE', KEYS[2], from, -1)}`;

/** KEYS[1] state, KEYS[2] queue; ARGV[1] sid, ARGV[2] h. Returns {ok, sent}, or nil. */
const STREAM_ACK = `
if redis.call('HGET', KEYS[1], 'sid') ~= ARGV[1] then return nil end
local acked = tonumber(redis.call('HGET', KEYS[1], 'ack'))
local sent = acked + redis.call('LLEN', KEYS[2])
local h = tonumber(ARGV[2])
if h > sent then return {0, sent} end
if h > acked then
  redis.call('LTRIM', KEYS[2], h - acked, -1)
  redis.call('HSET', KEYS[1], 'ack', h)
end
return {1, sent}`;

/** KEYS[1] state; ARGV[1] sid. Returns the expiry (Redis clock), or nil. */
const STREAM_DETACH = `${LUA_NOW}
if redis.call('HGET', KEYS[1], 'sid') ~= ARGV[1] then return nil end
local expiry = now + tonumber(redis.call('HGET', KEYS[1], 'tmo'))
redis.call('HSET', KEYS[1], 'until', expiry)
return tostring(expiry)`;

/**
 * KEYS[1] sessions hash, KEYS[2] state, KEYS[3] queue; ARGV[1] expected jid, [2] suffix, [3] new sid,
 * [4] new edge, [5] new bind token. Returns {old sid, old edge, old token, tmo, h, ack, {queue}}, or nil.
 */
const STREAM_RESUME = `
local sid = redis.call('HGET', KEYS[2], 'sid')
if not sid or redis.call('HGET', KEYS[2], 'jid') ~= ARGV[1] then return nil end
local suffix = ARGV[2]
if redis.call('HGET', KEYS[1], 'sid' .. suffix) ~= sid then return nil end
local edge = redis.call('HGET', KEYS[2], 'edge')
local token = redis.call('HGET', KEYS[1], 'tok' .. suffix)
redis.call('HSET', KEYS[1], 'sid' .. suffix, ARGV[3], 'edge' .. suffix, ARGV[4], 'tok' .. suffix, ARGV[5])
redis.call('HSET', KEYS[2], 'sid', ARGV[3], 'edge', ARGV[4])
redis.call('HDEL', KEYS[2], 'until')
local s = redis.call('HMGET', KEYS[2], 'tmo', 'h', 'ack')
return {sid, edge, token or '', s[1], s[2], s[3], redis.call('LRANGE', KEYS[3], 0, -1)}`;

/** KEYS[1] expiry zset. Members whose expiry is now or earlier. */
const STREAM_EXPIRED = `${LUA_NOW}
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)`;

/**
 * KEYS[1] sessions hash, KEYS[2] state, KEYS[3] queue, KEYS[4] recent; ARGV[1] jid, [2] suffix, [3] sid ('' to close only
 * an expired detached state). Returns {status, {queue}, {removed record values}}: status 'closed', or
 * 'gone' (no such state, or another session holds it), 'attached' or 'later' (not expired yet).
 */
const STREAM_CLOSE = `${LUA_FIELDS}${LUA_NOW}
local sid = redis.call('HGET', KEYS[2], 'sid')
if not sid or redis.call('HGET', KEYS[2], 'jid') ~= ARGV[1] then return {'gone'} end
if ARGV[3] ~= '' then
  if sid ~= ARGV[3] then return {'gone'} end
else
  local expiry = redis.call('HGET', KEYS[2], 'until')
  if not expiry then return {'attached'} end
  if tonumber(expiry) > now then return {'later'} end
end
local queue = redis.call('LRANGE', KEYS[3], 0, -1)
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
local f = fields(ARGV[2])
if redis.call('HGET', KEYS[1], f[1]) ~= sid then return {'closed', queue} end
local old = redis.call('HMGET', KEYS[1], unpack(f))
redis.call('HDEL', KEYS[1], unpack(f))
return {'closed', queue, old}`;

interface Script {
  readonly lua: string;
  readonly sha: string;
}

function script(lua: string): Script {
  return { lua, sha: createHash('sha1').update(lua).digest('hex') };
}

const SCRIPTS = {
  bind: script(BIND),
  restore: script(RESTORE),
  unbind: script(UNBIND),
  update: script(UPDATE),
  renew: script(RENEW),
  expired: script(EXPIRED),
  lease: script(LEASE),
  drop: script(DROP),
  streamOpen: script(STREAM_OPEN),
  streamHandled: script(STREAM_HANDLED),
  streamPush: script(STREAM_PUSH),
  streamQueued: script(STREAM_QUEUED),
  streamAck: script(STREAM_ACK),
  streamDetach: script(STREAM_DETACH),
  streamResume: script(STREAM_RESUME),
  streamExpired: script(STREAM_EXPIRED),
  streamClose: script(STREAM_CLOSE),
};

/** Edge-index members read per batch; also bounds the concurrent record reads of `sessionsOfEdge`. */
const SCAN_BATCH = 500;

export interface RedisSessionRegistryOptions {
  /** Prepended to every key, so several deployments can share one Redis; must not contain braces. */
  readonly prefix?: string;
}

/** Client options `connect` passes on; replies are read in their RESP2 shapes, so `replyMapping` stays default. */
export type RedisClientOptions = Omit<RedisOptions, 'host' | 'port' | 'lazyConnect' | 'replyMapping'>;
/** Cluster client options `connect` passes on, under the same proviso. */
export type RedisClusterOptions = Omit<ClusterOptions, 'lazyConnect' | 'redisOptions'> & {
  readonly redisOptions?: Omit<NonNullable<ClusterOptions['redisOptions']>, 'replyMapping'>;
};

// Commands issued in one turn of the event loop go to Redis in one write (a router looks up the
// recipients of a whole fetched batch at once): a write to a socket costs more than the command in it.
const AUTO_PIPELINING = true;

/** Where `RedisSessionRegistry.connect` finds Redis: one server, or seed nodes of a Redis Cluster. */
export type RedisTarget =
  | { readonly host: string; readonly port: number; readonly options?: RedisClientOptions }
  | { readonly cluster: readonly ClusterNode[]; readonly options?: RedisClusterOptions };

/**
 * The cluster SessionRegistry. `bind`, `unbind` and `update` are one Lua script each on the bare JID's
 * slot, plus one write to the edge index; `resources` and `get` are one command.
 *
 * Leases are timed by the Redis server's clock (TIME inside the lease scripts), never the client's.
 */
export class RedisSessionRegistry implements SessionRegistry {
  readonly #client: Redis | Cluster;
  readonly #prefix: string;
  readonly #expiryKey: string;
  readonly #addressKey: string;
  readonly #streamExpiryKey: string;
  #owned = false;

  /** Uses `client` without owning it: `close()` leaves it open for its owner to quit. */
  constructor(client: Redis | Cluster, options: RedisSessionRegistryOptions = {}) {
    const prefix = options.prefix ?? 'starling:';
    if (/[{}]/.test(prefix)) throw new Error('RedisSessionRegistry prefix must not contain { or }');
    this.#client = client;
    this.#prefix = prefix;
    this.#expiryKey = `${prefix}{leases}:expiry`;
    this.#addressKey = `${prefix}{leases}:address`;
    this.#streamExpiryKey = `${prefix}{streams}:expiry`;
  }

  /** Opens a client of its own (closed by `close()`), resolving once Redis answered. */
  static async connect(
    target: RedisTarget,
    options: RedisSessionRegistryOptions = {},
  ): Promise<RedisSessionRegistry> {
    let client: Redis | Cluster;
    if ('cluster' in target) {
      const { redisOptions, ...rest } = target.options ?? {};
      client = new Cluster([...target.cluster], {
        enableAutoPipelining: AUTO_PIPELINING,
        ...rest,
        ...(redisOptions === undefined ? {} : { redisOptions }),
        lazyConnect: true,
      });
    } else {
      client = new Redis({
        enableAutoPipelining: AUTO_PIPELINING,
        ...target.options,
        host: target.host,
        port: target.port,
        lazyConnect: true,
      });
    }
    try {
      await client.connect();
    } catch (err) {
      client.disconnect();
      throw err;
    }
    const registry = new RedisSessionRegistry(client, options);
    registry.#owned = true;
    return registry;
  }

  /** The hash holding every session of `bareJid`. Exposed for operational tooling and tests. */
  sessionsKey(bareJid: string): string {
    return `${this.#prefix}sessions:${tag(bareJid)}`;
  }

  /** The set indexing the sessions of `edgeId`. */
  edgeKey(edgeId: string): string {
    return `${this.#prefix}edge:${tag(edgeId)}`;
  }

  /**
   * The edge index lives on another slot than the record, so no script can change both. The rule that
   * keeps them consistent: every stored record has its member in its edge's index at all times.
   * - The member is added before the record is written, and removed only after the record that
   *   named it was replaced or unbound (the scripts return it, token included).
   * - Members carry a token unique to one bind, so removing a replaced bind's member can never remove
   *   the member of a later bind of the same full JID on the same edge, however calls interleave.
   * A client that dies between the two steps leaves a member without a record (or with another bind's
   * record); `sessionsOfEdge` ignores such members. It does not delete them: a bind in flight looks
   * exactly like that until its script ran.
   */
  async bind(record: SessionRecord): Promise<SessionRecord | undefined> {
    const bare = bareOf(record.jid);
    const { args } = await this.#indexed(record);
    const replaced = fromValues(record.jid, await this.#run(SCRIPTS.bind, [this.sessionsKey(bare)], args));
    if (replaced) await this.#forget(replaced);
    return replaced?.record;
  }

  async restore(record: SessionRecord): Promise<boolean> {
    const { token, args } = await this.#indexed(record);
    if ((await this.#eval(SCRIPTS.restore, [this.sessionsKey(bareOf(record.jid))], args)) === 1) return true;
    await this.#client.srem(this.edgeKey(record.edgeId), member(token, record.jid));
    return false;
  }

  /** The script arguments of a new bind of `record`, once its member is in its edge's index (see bind). */
  async #indexed(record: SessionRecord): Promise<{ token: string; args: string[] }> {
    const suffix = record.jid.slice(bareOf(record.jid).length);
    const token = randomBytes(8).toString('hex');
    const args: string[] = [suffix];
    for (const field of FIELDS) {
      const value = record[field.name];
      if (value !== undefined) args.push(field.code, encode(field.kind, value));
    }
    args.push(TOKEN_CODE, token);
    await this.#client.sadd(this.edgeKey(record.edgeId), member(token, record.jid));
    return { token, args };
  }

  async unbind(jid: string, sessionId: string): Promise<SessionRecord | undefined> {
    const bare = bareOf(jid);
    const removed = fromValues(
      jid,
      await this.#run(SCRIPTS.unbind, [this.sessionsKey(bare)], [jid.slice(bare.length), sessionId]),
    );
    if (removed) await this.#forget(removed);
    return removed?.record;
  }

  async get(jid: string): Promise<SessionRecord | undefined> {
    return (await this.#read(jid))?.record;
  }

  async resources(bareJid: string): Promise<SessionRecord[]> {
    const hash = await this.#client.hgetall(this.sessionsKey(bareJid));
    const bySuffix = new Map<string, (string | undefined)[]>();
    for (const [field, value] of Object.entries(hash)) {
      const slash = field.indexOf('/');
      const code = slash === -1 ? field : field.slice(0, slash);
      const index = CODES.indexOf(code);
      if (index === -1) continue;
      const suffix = slash === -1 ? '' : field.slice(slash);
      let values = bySuffix.get(suffix);
      if (!values) bySuffix.set(suffix, (values = []));
      values[index] = value;
    }
    return [...bySuffix].flatMap(([suffix, values]) => fromValues(bareJid + suffix, values)?.record ?? []);
  }

  async update(jid: string, sessionId: string, patch: SessionPatch): Promise<SessionRecord | undefined> {
    const bare = bareOf(jid);
    const set: string[] = [];
    const remove: string[] = [];
    for (const field of FIELDS) {
      const value = (patch as Record<string, unknown>)[field.name];
      if (field.name === 'presence') {
        if (value === null) remove.push(field.code);
        else if (value !== undefined) set.push(field.code, encode(field.kind, value));
      } else if (PATCHABLE.has(field.name) && value !== undefined) {
        set.push(field.code, encode(field.kind, value));
      }
    }
    const values = await this.#run(
      SCRIPTS.update,
      [this.sessionsKey(bare)],
      [jid.slice(bare.length), sessionId, String(set.length / 2), ...set, ...remove],
    );
    return fromValues(jid, values)?.record;
  }

  async renewLease(edgeId: string, address: string, ttlMs: number): Promise<boolean> {
    if (!Number.isFinite(ttlMs)) throw new RangeError(`lease ttl must be finite, got ${ttlMs}`);
    const existed = await this.#eval(
      SCRIPTS.renew,
      [this.#expiryKey, this.#addressKey],
      [edgeId, address, String(Math.round(ttlMs))],
    );
    return existed === 1;
  }

  async lease(edgeId: string): Promise<EdgeLease | undefined> {
    const reply = await this.#run(SCRIPTS.lease, [this.#expiryKey, this.#addressKey], [edgeId]);
    const [expiry, address] = reply;
    if (typeof expiry !== 'string') return undefined;
    return { edgeId, address: address ?? '', expiresAt: Number(expiry) };
  }

  async expiredEdges(): Promise<string[]> {
    const reply = await this.#run(SCRIPTS.expired, [this.#expiryKey], []);
    return reply.filter((edge): edge is string => typeof edge === 'string');
  }

  async sessionsOfEdge(edgeId: string): Promise<SessionRecord[]> {
    const key = this.edgeKey(edgeId);
    const found = new Map<string, SessionRecord>();
    let cursor = '0';
    do {
      const [next, members] = await this.#client.sscan(key, cursor, 'COUNT', SCAN_BATCH);
      cursor = next;
      // SSCAN may return a member twice while the set is rehashed; the map keeps one.
      const reads = members.map(async (entry) => {
        const space = entry.indexOf(' ');
        const stored = await this.#read(entry.slice(space + 1));
        // Only the bind that added this member makes it live; anything else is a leftover (see bind).
        return stored?.token === entry.slice(0, space) && stored.record.edgeId === edgeId
          ? stored.record
          : undefined;
      });
      for (const record of await Promise.all(reads)) if (record) found.set(record.jid, record);
    } while (cursor !== '0');
    return [...found.values()];
  }

  async dropEdge(edgeId: string): Promise<void> {
    await this.#run(SCRIPTS.drop, [this.#expiryKey, this.#addressKey], [edgeId]);
  }

  /** The hash and the list of XEP-0198 stream `id` of `bareJid`. */
  streamKeys(bareJid: string, id: string): [state: string, queue: string, recent: string] {
    const key = `${tag(bareJid)}:${id}`;
    return [`${this.#prefix}stream:${key}`, `${this.#prefix}streamq:${key}`, `${this.#prefix}streamr:${key}`];
  }

  async openStream(
    jid: string,
    sessionId: string,
    id: string,
    timeoutMs: number,
    counts?: { readonly handled: number; readonly acked: number },
  ): Promise<boolean> {
    const bare = bareOf(jid);
    const reply = await this.#eval(
      SCRIPTS.streamOpen,
      [this.sessionsKey(bare), ...this.streamKeys(bare, id)],
      [
        jid.slice(bare.length),
        sessionId,
        id,
        jid,
        String(Math.round(timeoutMs)),
        String(counts?.handled ?? 0),
        String(counts?.acked ?? 0),
      ],
    );
    return reply === 1;
  }

  async streamHandled(jid: string, id: string, sessionId: string, handled: number): Promise<boolean> {
    const [state] = this.streamKeys(bareOf(jid), id);
    return (await this.#eval(SCRIPTS.streamHandled, [state], [sessionId, String(handled)])) === 1;
  }

  async streamPush(jid: string, id: string, sessionId: string, xml: string): Promise<number | undefined> {
    const reply = await this.#eval(SCRIPTS.streamPush, this.streamKeys(bareOf(jid), id), [sessionId, xml]);
    return typeof reply === 'number' ? reply : undefined;
  }

  async streamQueued(
    jid: string,
    id: string,
    sessionId: string,
    after: number,
  ): Promise<{ readonly sent: number; readonly stanzas: readonly string[] } | undefined> {
    const [state, queue] = this.streamKeys(bareOf(jid), id);
    const reply = await this.#eval(SCRIPTS.streamQueued, [state, queue], [sessionId, String(after)]);
    if (!Array.isArray(reply)) return undefined;
    const [sent, stanzas] = reply as [number, string[]];
    return { sent, stanzas };
  }

  async streamAck(
    jid: string,
    id: string,
    sessionId: string,
    h: number,
  ): Promise<{ readonly ok: boolean; readonly sent: number } | undefined> {
    const [state, queue] = this.streamKeys(bareOf(jid), id);
    const reply = await this.#eval(SCRIPTS.streamAck, [state, queue], [sessionId, String(h)]);
    if (!Array.isArray(reply)) return undefined;
    return { ok: reply[0] === 1, sent: Number(reply[1]) };
  }

  /**
   * The expiry index is on another slot than the state, so it is written after the script. An edge that
   * dies in between leaves a detached state out of the index; its lease then runs out and the sweep of its
   * sessions detaches (and indexes) the state again.
   */
  async detachStream(jid: string, id: string, sessionId: string): Promise<boolean> {
    const [state] = this.streamKeys(bareOf(jid), id);
    const expiry = await this.#eval(SCRIPTS.streamDetach, [state], [sessionId]);
    if (typeof expiry !== 'string') return false;
    await this.#client.zadd(this.#streamExpiryKey, expiry, `${id} ${jid}`);
    return true;
  }

  async resumeStream(
    bareJid: string,
    id: string,
    sessionId: string,
    edgeId: string,
  ): Promise<ResumedStream | undefined> {
    const [stateKey, queueKey] = this.streamKeys(bareJid, id);
    const jid = await this.#client.hget(stateKey, 'jid');
    if (jid === null || bareOf(jid) !== bareJid) return undefined;
    // As in bind: the new edge's index member exists before the record names that edge.
    const token = randomBytes(8).toString('hex');
    await this.#client.sadd(this.edgeKey(edgeId), member(token, jid));
    const reply = await this.#eval(
      SCRIPTS.streamResume,
      [this.sessionsKey(bareJid), stateKey, queueKey],
      [jid, jid.slice(bareJid.length), sessionId, edgeId, token],
    );
    if (!Array.isArray(reply)) {
      await this.#client.srem(this.edgeKey(edgeId), member(token, jid));
      return undefined;
    }
    const [oldSession, oldEdge, oldToken, timeout, handled, acked, queue] = reply as [
      string,
      string,
      string,
      string,
      string,
      string,
      string[],
    ];
    await Promise.all([
      this.#client.srem(this.edgeKey(oldEdge), member(oldToken, jid)),
      this.#client.zrem(this.#streamExpiryKey, `${id} ${jid}`),
    ]);
    return {
      state: {
        id,
        jid,
        sessionId,
        edgeId,
        timeoutMs: Number(timeout),
        handled: Number(handled),
        acked: Number(acked),
        unacked: queue,
      },
      previous: { sessionId: oldSession, edgeId: oldEdge },
    };
  }

  async expiredStreams(): Promise<{ readonly jid: string; readonly id: string }[]> {
    const reply = await this.#run(SCRIPTS.streamExpired, [this.#streamExpiryKey], []);
    return reply.flatMap((entry) => {
      if (typeof entry !== 'string') return [];
      const space = entry.indexOf(' ');
      return [{ id: entry.slice(0, space), jid: entry.slice(space + 1) }];
    });
  }

  async closeStream(jid: string, id: string, sessionId?: string): Promise<ClosedStream | undefined> {
    const bare = bareOf(jid);
    const reply = await this.#eval(
      SCRIPTS.streamClose,
      [this.sessionsKey(bare), ...this.streamKeys(bare, id)],
      [jid, jid.slice(bare.length), sessionId ?? ''],
    );
    const [status, queue, old] = Array.isArray(reply)
      ? (reply as [string, string[]?, (string | null)[]?])
      : [];
    // The expiry index forgets a state that is gone or attached again (resumed); 'later' stays indexed.
    if (status !== 'later' && sessionId === undefined) {
      await this.#client.zrem(this.#streamExpiryKey, `${id} ${jid}`);
    }
    if (status !== 'closed') return undefined;
    if (sessionId !== undefined) await this.#client.zrem(this.#streamExpiryKey, `${id} ${jid}`);
    const removed = old === undefined ? undefined : fromValues(jid, old);
    if (removed) await this.#forget(removed);
    return removed ? { record: removed.record, unacked: queue ?? [] } : { unacked: queue ?? [] };
  }

  async close(): Promise<void> {
    if (this.#owned && this.#client.status !== 'end') await this.#client.quit();
  }

  async #read(jid: string): Promise<Stored | undefined> {
    const bare = bareOf(jid);
    const suffix = jid.slice(bare.length);
    const values = await this.#client.hmget(this.sessionsKey(bare), ...CODES.map((code) => code + suffix));
    return fromValues(jid, values);
  }

  async #forget(stored: Stored): Promise<void> {
    await this.#client.srem(this.edgeKey(stored.record.edgeId), member(stored.token, stored.record.jid));
  }

  /**
   * EVALSHA, falling back to EVAL when the server does not know the script (first use, a restarted or
   * failed-over server, a cluster node that never saw it): one round trip in the steady state.
   */
  async #run(script: Script, keys: readonly string[], args: readonly string[]): Promise<(string | null)[]> {
    const reply = await this.#eval(script, keys, args);
    return Array.isArray(reply) ? (reply as (string | null)[]) : [];
  }

  async #eval(script: Script, keys: readonly string[], args: readonly string[]): Promise<unknown> {
    try {
      return await this.#client.evalsha(script.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return await this.#client.eval(script.lua, keys.length, ...keys, ...args);
    }
  }
}
