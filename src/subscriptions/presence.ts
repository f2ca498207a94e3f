/**
 * Presence for a MeshDurableObject: who is in a topic, with metadata each
 * connection sets (a name, "typing…", a cursor), in the object's SQLite.
 * Members are users (`sub`); each tab or process is one of its connections.
 * Every change goes to the other connections as a notification to their
 * `meshgatePresence` handler (the client helper `Topics` keeps the list),
 * carrying a version so a client applies each once, after its snapshot.
 *
 * A connection leaves when it says so, when a notification finds it gone,
 * and — without any polling — when its gateway's grace period ends: joining
 * asks the gateway to tell this object then (`mesh.watchDeparture`).
 */
import { ForbiddenError, LimitExceededError } from '../protocol/errors.js';
import { decodeValue, encodeValue } from '../protocol/codec.js';
import { PRESENCE_HANDLER, type PresenceEvent, type PresenceMember, type PresenceSnapshot } from '../protocol/topics.js';
import type { MeshApi } from '../nodes/mesh-api.js';
import { getCallContext } from '../nodes/context.js';
import { mapConcurrent, notifyOne } from './fan-out.js';
import { subOf } from './store.js';
import { MAX_TOPIC_LENGTH } from './subscriptions.js';

export interface PresenceOptions {
  /** SQLite table (default 'meshgate_presence'); also `{table}_versions`. */
  table?: string;
  /** Gateway binding the members connect through (default 'GATEWAY'). */
  gateway?: string;
  /** Characters of one connection's encoded metadata (default 1 024, at most 16 384). */
  maxMetaBytes?: number;
  /** Connections present in one topic (default 256, at most 4 096; with maxMetaBytes at most 512 Ki characters, so a snapshot fits a frame). */
  maxConnections?: number;
  /** Connections one user may have in one topic (default 16). */
  maxConnectionsPerSub?: number;
  /** Shortest time between two metadata updates of one connection (ms, default 100); a faster one is refused. */
  minUpdateIntervalMs?: number;
  /** Notifications in flight at once when a change goes out (default 64). */
  concurrency?: number;
  /** How long a member may leave a notification unanswered before it counts as silent (default: the gateway's). */
  timeoutMs?: number;
}

export const PRESENCE_DEFAULTS = { maxMetaBytes: 1024, maxConnections: 256, maxConnectionsPerSub: 16, minUpdateIntervalMs: 100 } as const;
export const PRESENCE_CAPS = { maxMetaBytes: 16 * 1024, maxConnections: 4096, snapshotChars: 512 * 1024 } as const;
const TABLE_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
/** Rounds of leave notices for members a notification found gone (each round may find more). */
const MAX_LEAVE_ROUNDS = 2;

/** A snapshot with the version of the last change in it: events at or below it are already in. */
export type VersionedSnapshot<M = unknown> = PresenceSnapshot<M> & { version: number };
type VersionedEvent = PresenceEvent & { version: number };

function whole(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isInteger(v) || v < min || v > max) throw new RangeError(`Presence option ${name} must be a whole number from ${min} to ${max}, got ${String(value)}.`);
  return v;
}

function callerInstance(action: string): string {
  const origin = getCallContext()?.origin;
  if (origin?.kind !== 'client') throw new ForbiddenError(`Only a client can ${action} presence itself: call this from a method a client called.`);
  return origin.instance;
}

function checkTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC_LENGTH) {
    throw new TypeError(`A topic must be a string of 1 to ${MAX_TOPIC_LENGTH} characters.`);
  }
}

export class Presence {
  readonly #sql: SqlStorage;
  readonly #mesh: MeshApi;
  readonly #table: string;
  readonly #options: PresenceOptions;
  readonly #limits: { maxMetaBytes: number; maxConnections: number; maxConnectionsPerSub: number; minUpdateIntervalMs: number };
  /** `${topic}\n${instance}` → when its metadata last changed (memory only: an eviction forgets, which only allows one more update) */
  readonly #lastUpdate = new Map<string, number>();
  /** `${topic}\n${sub}` → what is left of the user's change budget in the topic (memory only, like #lastUpdate) */
  readonly #userBudget = new Map<string, { tokens: number; at: number }>();

  constructor(storage: DurableObjectStorage, mesh: MeshApi, options: PresenceOptions = {}) {
    const table = options.table ?? 'meshgate_presence';
    if (!TABLE_PATTERN.test(table) || table.startsWith('_cf_')) throw new TypeError(`Presence table name "${table}" must be a plain SQL identifier (letters, digits, _), not starting with _cf_.`);
    this.#limits = {
      maxMetaBytes: whole('maxMetaBytes', options.maxMetaBytes, PRESENCE_DEFAULTS.maxMetaBytes, 2, PRESENCE_CAPS.maxMetaBytes),
      maxConnections: whole('maxConnections', options.maxConnections, PRESENCE_DEFAULTS.maxConnections, 1, PRESENCE_CAPS.maxConnections),
      maxConnectionsPerSub: whole('maxConnectionsPerSub', options.maxConnectionsPerSub, PRESENCE_DEFAULTS.maxConnectionsPerSub, 1, PRESENCE_CAPS.maxConnections),
      minUpdateIntervalMs: whole('minUpdateIntervalMs', options.minUpdateIntervalMs, PRESENCE_DEFAULTS.minUpdateIntervalMs, 0, 60_000),
    };
    if (this.#limits.maxConnections * this.#limits.maxMetaBytes > PRESENCE_CAPS.snapshotChars) {
      throw new RangeError(`Presence options maxConnections × maxMetaBytes must be at most ${PRESENCE_CAPS.snapshotChars} (a snapshot must fit in one frame).`);
    }
    this.#sql = storage.sql;
    this.#mesh = mesh;
    this.#table = table;
    this.#options = options;
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS ${table} (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, instance TEXT NOT NULL,
      sub TEXT NOT NULL, meta TEXT NOT NULL, joined_at INTEGER NOT NULL, touched_at INTEGER NOT NULL, UNIQUE (topic, instance))`);
    this.#sql.exec(`CREATE INDEX IF NOT EXISTS ${table}_by_instance ON ${table} (instance)`);
    this.#sql.exec(`CREATE TABLE IF NOT EXISTS ${table}_versions (topic TEXT PRIMARY KEY, version INTEGER NOT NULL)`);
    mesh.onClientGone((instanceName, at) => this.#gone(instanceName, at), { holds: (instanceName) => this.#presentAnywhere(instanceName) });
  }

  /**
   * The calling client joins `topic` with `meta` (or sets its metadata again
   * if it is in already). Returns the snapshot, itself included; the other
   * connections get a `join` (the user's first connection) or `update`.
   */
  async joinCaller<M = unknown>(topic: string, meta: M = null as M): Promise<VersionedSnapshot<M>> {
    checkTopic(topic);
    const instanceName = callerInstance('join');
    const encoded = this.#encodeMeta(meta);
    const now = Date.now();
    const find = () => this.#sql.exec<{ meta: string }>(`SELECT meta FROM ${this.#table} WHERE topic = ? AND instance = ?`, topic, instanceName).toArray()[0];
    // Every join (a fresh socket after a grace period carries no watchers). The watch comes first, an await:
    // the checks and the insert after it then run in one go, so concurrent joins cannot pass a limit together.
    if (!(await this.#mesh.watchDeparture(instanceName, this.#gatewayOption()))) return this.snapshot<M>(topic);
    const existing = find();
    if (!existing) this.#checkRoom(topic, subOf(instanceName));
    const sub = subOf(instanceName);
    const changed = !existing || existing.meta !== encoded;
    // New metadata is an update; a first join is free, but one just after this connection left is refused: leave and join cannot flap.
    if (existing ? changed : this.#lastUpdate.has(`${topic}\n${instanceName}`)) this.#throttle(topic, instanceName, now);
    if (changed) this.#spend(topic, sub, now);
    this.#sql.exec(`INSERT INTO ${this.#table} (topic, instance, sub, meta, joined_at, touched_at) VALUES (?, ?, ?, ?, ?, ?)
      ON CONFLICT (topic, instance) DO UPDATE SET meta = excluded.meta, touched_at = excluded.touched_at`, topic, instanceName, sub, encoded, now, now);
    const event = changed ? this.#eventFor(topic, sub, this.#wasPresent(existing, topic, sub, instanceName) ? 'update' : 'join') : undefined;
    const snapshot = this.snapshot<M>(topic);
    if (event) await this.#send(topic, event, instanceName);
    return snapshot;
  }

  /** The calling client sets new metadata (it must have joined); refused if it updates faster than `minUpdateIntervalMs`. Unchanged metadata sends nothing. */
  async updateCaller(topic: string, meta: unknown): Promise<void> {
    checkTopic(topic);
    const instanceName = callerInstance('update');
    const encoded = this.#encodeMeta(meta);
    const row = this.#sql.exec<{ meta: string; sub: string }>(`SELECT meta, sub FROM ${this.#table} WHERE topic = ? AND instance = ?`, topic, instanceName).toArray()[0];
    if (!row) throw new ForbiddenError(`Not present in "${topic.slice(0, 100)}": join it before updating.`);
    if (row.meta === encoded) return;
    const now = Date.now();
    this.#throttle(topic, instanceName, now);
    this.#spend(topic, row.sub, now);
    this.#sql.exec(`UPDATE ${this.#table} SET meta = ?, touched_at = ? WHERE topic = ? AND instance = ?`, encoded, now, topic, instanceName);
    await this.#send(topic, this.#eventFor(topic, row.sub, 'update'), instanceName);
  }

  /** The calling client leaves `topic`; true if it was present. */
  leaveCaller(topic: string): Promise<boolean> {
    return this.leave(topic, callerInstance('leave'));
  }

  /** `instanceName` leaves `topic`; the others get `leave` (its user's last connection) or `update`. */
  async leave(topic: string, instanceName: string): Promise<boolean> {
    const removed = this.#sql.exec<{ sub: string }>(`DELETE FROM ${this.#table} WHERE topic = ? AND instance = ? RETURNING sub`, topic, instanceName).toArray();
    if (removed.length > 0) this.#changed(topic, instanceName, Date.now()); // never refused, but it starts the interval: leave and join cannot flap past it
    for (const { sub } of removed) {
      this.#spend(topic, sub, Date.now(), true);
      await this.#send(topic, this.#eventFor(topic, sub, 'update'));
    }
    this.#forgetIfEmpty(topic);
    // Present nowhere in this object any more (no Presence of it holds the client): free its place among the gateway's watchers.
    if (removed.length > 0) {
      await this.#mesh.releaseDeparture(instanceName, this.#gatewayOption()).catch(() => {}); // at worst it stays watched: told once, finding nothing
    }
    return removed.length > 0;
  }

  /** Who is present in `topic`, users in the order they came, each with its connections. */
  snapshot<M = unknown>(topic: string): VersionedSnapshot<M> {
    const rows = this.#sql.exec<{ instance: string; sub: string; meta: string; joined_at: number }>(
      `SELECT instance, sub, meta, joined_at FROM ${this.#table} WHERE topic = ? ORDER BY seq`, topic).toArray();
    const members = new Map<string, PresenceMember<M>>();
    for (const row of rows) {
      let member = members.get(row.sub);
      if (!member) members.set(row.sub, (member = { sub: row.sub, connections: [] }));
      member.connections.push({ instanceName: row.instance, meta: decodeValue(row.meta) as M, joinedAt: row.joined_at });
    }
    return { topic, members: [...members.values()], version: this.#version(topic) };
  }

  /** An empty topic keeps no row: a client naming topic after topic leaves nothing behind. Its versions start again (nobody holds one). */
  #forgetIfEmpty(topic: string): void {
    if (this.count(topic) === 0) this.#sql.exec(`DELETE FROM ${this.#table}_versions WHERE topic = ?`, topic);
  }

  #presentAnywhere(instanceName: string): boolean {
    return this.#sql.exec(`SELECT 1 FROM ${this.#table} WHERE instance = ? LIMIT 1`, instanceName).toArray().length > 0;
  }

  /** Connections present in `topic`. */
  count(topic: string): number {
    return this.#sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${this.#table} WHERE topic = ?`, topic).one().n;
  }

  /** Refuses a metadata change sooner than minUpdateIntervalMs after the last one of this connection; else counts it. */
  #throttle(topic: string, instanceName: string, now: number): void {
    const key = `${topic}\n${instanceName}`;
    const wait = (this.#lastUpdate.get(key) ?? 0) + this.#limits.minUpdateIntervalMs - now;
    if (wait > 0) {
      throw new LimitExceededError('presence.minUpdateIntervalMs', this.#limits.minUpdateIntervalMs,
        `metadata changes at most once per ${this.#limits.minUpdateIntervalMs} ms; send the latest again in ${wait} ms.`);
    }
    this.#changed(topic, instanceName, now);
  }

  /**
   * Each event carries the user's whole entry (up to maxConnectionsPerSub
   * connections), so the changes of all of a user's connections in a topic
   * share one budget: one per minUpdateIntervalMs, in bursts of
   * maxConnectionsPerSub (tabs opening together). A leave spends without
   * being refused.
   */
  #spend(topic: string, sub: string, now: number, always = false): void {
    const key = `${topic}\n${sub}`;
    const { maxConnectionsPerSub: burst, minUpdateIntervalMs: interval } = this.#limits;
    const bucket = this.#userBudget.get(key);
    const tokens = bucket ? Math.min(burst, bucket.tokens + (interval === 0 ? burst : (now - bucket.at) / interval)) : burst;
    if (tokens < 1 && !always) {
      const wait = Math.ceil((1 - tokens) * interval);
      throw new LimitExceededError('presence.minUpdateIntervalMs', interval,
        `the connections of "${sub.slice(0, 128)}" changed their presence in this topic too often (one change per ${interval} ms across them, in bursts of ${burst}); send the latest again in ${wait} ms.`);
    }
    this.#userBudget.set(key, { tokens: Math.max(0, tokens - 1), at: now });
    if (this.#userBudget.size <= 2 * this.#limits.maxConnections) return;
    for (const [k, b] of this.#userBudget) if (b.tokens + (now - b.at) / Math.max(1, interval) >= burst) this.#userBudget.delete(k); // full again: as if never seen
  }

  #changed(topic: string, instanceName: string, now: number): void {
    this.#lastUpdate.set(`${topic}\n${instanceName}`, now);
    if (this.#lastUpdate.size <= 2 * this.#limits.maxConnections) return;
    for (const [key, at] of this.#lastUpdate) if (at + this.#limits.minUpdateIntervalMs <= now) this.#lastUpdate.delete(key); // can refuse nothing any more
  }

  #checkRoom(topic: string, sub: string): void {
    if (this.count(topic) >= this.#limits.maxConnections) {
      throw new LimitExceededError('presence.maxConnections', this.#limits.maxConnections, `topic "${topic.slice(0, 100)}" has that many connections present; try again later.`);
    }
    const ofSub = this.#sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${this.#table} WHERE topic = ? AND sub = ?`, topic, sub).one().n;
    if (ofSub >= this.#limits.maxConnectionsPerSub) {
      throw new LimitExceededError('presence.maxConnectionsPerSub', this.#limits.maxConnectionsPerSub, 'this user is present from that many tabs or processes; close one first.');
    }
  }

  #encodeMeta(meta: unknown): string {
    const encoded = encodeValue(meta);
    if (encoded.length > this.#limits.maxMetaBytes) {
      throw new LimitExceededError('presence.maxMetaBytes', this.#limits.maxMetaBytes, `presence metadata encodes to ${encoded.length} characters; send less (a name, a flag, a position).`);
    }
    return encoded;
  }

  #wasPresent(existing: unknown, topic: string, sub: string, instanceName: string): boolean {
    if (existing) return true;
    return this.#sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${this.#table} WHERE topic = ? AND sub = ? AND instance != ?`, topic, sub, instanceName).one().n > 0;
  }

  /** The event for a change to `sub` just made: `leave` if it has no connection left, else `kind` with its entry; the topic's version goes up. */
  #eventFor(topic: string, sub: string, kind: 'join' | 'update'): VersionedEvent {
    const version = this.#sql.exec<{ version: number }>(`INSERT INTO ${this.#table}_versions (topic, version) VALUES (?, 1)
      ON CONFLICT (topic) DO UPDATE SET version = version + 1 RETURNING version`, topic).one().version;
    const member = this.#memberOf(topic, sub);
    return member ? { topic, kind, sub, member, version } : { topic, kind: 'leave', sub, version };
  }

  #memberOf(topic: string, sub: string): PresenceMember | undefined {
    const rows = this.#sql.exec<{ instance: string; meta: string; joined_at: number }>(
      `SELECT instance, meta, joined_at FROM ${this.#table} WHERE topic = ? AND sub = ? ORDER BY seq`, topic, sub).toArray();
    if (rows.length === 0) return undefined;
    return { sub, connections: rows.map((row) => ({ instanceName: row.instance, meta: decodeValue(row.meta), joinedAt: row.joined_at })) };
  }

  #version(topic: string): number {
    return this.#sql.exec<{ version: number }>(`SELECT version FROM ${this.#table}_versions WHERE topic = ?`, topic).toArray()[0]?.version ?? 0;
  }

  #gatewayOption(): { gateway?: string } {
    return this.#options.gateway === undefined ? {} : { gateway: this.#options.gateway };
  }

  /** Notifies every connection in `topic` but `except`; those found gone leave, and the others are told (a bounded number of rounds). */
  async #send(topic: string, event: VersionedEvent, except?: string, round = 0): Promise<void> {
    const startedAt = Date.now();
    const targets = this.#sql.exec<{ instance: string }>(`SELECT instance FROM ${this.#table} WHERE topic = ? ORDER BY seq`, topic)
      .toArray().map((row) => row.instance).filter((name) => name !== except);
    const options = { ownChain: true, ...this.#gatewayOption(), ...(this.#options.timeoutMs === undefined ? {} : { timeoutMs: this.#options.timeoutMs }) };
    const outcomes = await mapConcurrent(targets, this.#options.concurrency ?? 64, (name) =>
      notifyOne(name, () => this.#mesh.notifyClient(name, PRESENCE_HANDLER, [event], options)));
    const gone = outcomes.filter((o) => o.status === 'dropped').map((o) => o.instanceName);
    if (gone.length > 0 && round < MAX_LEAVE_ROUNDS) await this.#removeGone(gone, startedAt, round + 1, topic);
  }

  /** The gateway says `instanceName` is gone for good: it leaves every topic (rows not touched since `at`: a rejoin after it stays). */
  async #gone(instanceName: string, at: number): Promise<void> {
    await this.#removeGone([instanceName], at, 0);
  }

  async #removeGone(names: string[], at: number, round: number, onlyTopic?: string): Promise<void> {
    const changes: Array<{ topic: string; sub: string }> = [];
    for (const name of names) {
      const removed = this.#sql.exec<{ topic: string; sub: string }>(
        `DELETE FROM ${this.#table} WHERE instance = ? AND touched_at <= ?${onlyTopic === undefined ? '' : ' AND topic = ?'} RETURNING topic, sub`,
        ...(onlyTopic === undefined ? [name, at] : [name, at, onlyTopic])).toArray();
      for (const row of removed) {
        this.#lastUpdate.delete(`${row.topic}\n${name}`);
        changes.push(row);
      }
    }
    for (const { topic, sub } of changes) await this.#send(topic, this.#eventFor(topic, sub, 'update'), undefined, round);
    for (const topic of new Set(changes.map((c) => c.topic))) this.#forgetIfEmpty(topic);
  }
}
