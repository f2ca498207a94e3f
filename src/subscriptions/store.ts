/**
 * The durable list of subscribers per topic, in the Durable Object's own
 * SQLite storage (`ctx.storage.sql`), so it survives eviction, restarts and
 * deploys without a round trip to anything else.
 *
 * Every row carries a `seq` from an AUTOINCREMENT key, which never repeats.
 * A fan-out remembers the highest `seq` it saw before calling anyone; when a
 * call then proves a client gone, only rows up to that mark are removed. A
 * client that came back and subscribed again while the call was in flight
 * has a newer row, and keeps it.
 *
 * Each row also counts the subscriber's consecutive timeouts (so a silent
 * one can be dropped) and names its `sub` (so one user's subscriptions to a
 * topic can be capped).
 */

const DEFAULT_TABLE = 'meshgate_subscriptions';
/** A plain SQL identifier; `_cf_` tables are reserved by Cloudflare. */
const TABLE_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export interface Subscriber {
  topic: string;
  instanceName: string;
  /** when it (last) subscribed, ms since epoch */
  subscribedAt: number;
}

/** The user part of an instance name `{sub}.{tabId}`: up to the last dot, since a tab id has none (a name without one is its own sub). */
export function subOf(instanceName: string): string {
  const dot = instanceName.lastIndexOf('.');
  return dot < 0 ? instanceName : instanceName.slice(0, dot);
}

const NO_SQLITE_ADVICE = 'meshgate subscriptions need a SQLite-backed Durable Object: list the class under `new_sqlite_classes` in a wrangler migration '
  + '(Miniflare: durableObjects: { BINDING: { className, useSQLite: true } }).';

/** Runs the schema statements, turning "no SQLite here" into an error that says what to change. */
function createSchema(storage: DurableObjectStorage, table: string): SqlStorage {
  // On a key-value DO, `storage.sql` may be missing or may exist and throw on first use: handle both.
  let sql: SqlStorage | undefined;
  try {
    sql = storage.sql;
    if (!sql || typeof sql.exec !== 'function') throw new TypeError('storage.sql is missing');
    sql.exec(`CREATE TABLE IF NOT EXISTS ${table} (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      topic TEXT NOT NULL,
      instance TEXT NOT NULL,
      subscribed_at INTEGER NOT NULL,
      sub TEXT,
      timeouts INTEGER NOT NULL DEFAULT 0,
      UNIQUE (topic, instance)
    )`);
    addColumnsOfThisVersion(sql, table);
    sql.exec(`CREATE INDEX IF NOT EXISTS ${table}_by_instance ON ${table} (instance)`);
    sql.exec(`CREATE INDEX IF NOT EXISTS ${table}_by_sub ON ${table} (topic, sub)`);
  } catch (error) {
    const detail = (error as Error)?.message ?? String(error);
    if (!/not enabled|storage\.sql is missing/i.test(detail)) throw error; // a real SQL failure, not a missing SQLite
    throw new TypeError(`${NO_SQLITE_ADVICE} (runtime said: ${detail})`, { cause: error });
  }
  return sql;
}

/** A table made by an earlier meshgate lacks `sub` and `timeouts`: add them, filling `sub` from the instance names. */
function addColumnsOfThisVersion(sql: SqlStorage, table: string): void {
  const columns = new Set(sql.exec<{ name: string }>(`PRAGMA table_info(${table})`).toArray().map((row) => row.name));
  if (!columns.has('timeouts')) sql.exec(`ALTER TABLE ${table} ADD COLUMN timeouts INTEGER NOT NULL DEFAULT 0`);
  if (!columns.has('sub')) {
    sql.exec(`ALTER TABLE ${table} ADD COLUMN sub TEXT`);
    // Tables this old were written when a sub could have no dot, so the first dot ends it.
    sql.exec(`UPDATE ${table} SET sub = CASE WHEN instr(instance, '.') > 0 THEN substr(instance, 1, instr(instance, '.') - 1) ELSE instance END`);
  }
}

export class SubscriptionStore {
  readonly #sql: SqlStorage;
  readonly #table: string;

  constructor(storage: DurableObjectStorage, table = DEFAULT_TABLE) {
    if (!TABLE_PATTERN.test(table) || table.toLowerCase().startsWith('_cf_')) {
      throw new TypeError(`Subscription table name "${table.slice(0, 64)}" must be a plain SQL identifier (letters, digits, _) not starting with _cf_.`);
    }
    // Idempotent, and cheap enough to run in every constructor.
    this.#sql = createSchema(storage, table);
    this.#table = table;
  }

  /** Adds a subscriber; true if it was not subscribed to this topic yet. Subscribing again refreshes its row (a new seq). */
  subscribe(topic: string, instanceName: string): boolean {
    const existed = this.has(topic, instanceName);
    // REPLACE deletes the old row and inserts a new one with a fresh seq (see the file comment); the timeout
    // streak carries over, so subscribing again between fan-outs cannot keep a silent subscriber from being dropped.
    this.#sql.exec(`INSERT OR REPLACE INTO ${this.#table} (topic, instance, subscribed_at, sub, timeouts) VALUES (?, ?, ?, ?, `
      + `COALESCE((SELECT timeouts FROM ${this.#table} WHERE topic = ? AND instance = ?), 0))`,
      topic, instanceName, Date.now(), subOf(instanceName), topic, instanceName);
    return !existed;
  }

  /** How many topics `instanceName` is subscribed to. */
  countOfInstance(instanceName: string): number {
    return this.#sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${this.#table} WHERE instance = ?`, instanceName).one().n;
  }

  /** How many subscriptions to `topic` belong to `sub` (one per tab or process of that user). */
  countOfSub(topic: string, sub: string): number {
    return this.#sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${this.#table} WHERE topic = ? AND sub = ?`, topic, sub).one().n;
  }

  /** Consecutive timeouts of the subscribers of `topic` that have any, by instance name. */
  timeoutCounts(topic: string): Map<string, number> {
    return new Map(this.#sql.exec<{ instance: string; timeouts: number }>(
      `SELECT instance, timeouts FROM ${this.#table} WHERE topic = ? AND timeouts > 0`, topic,
    ).toArray().map((row) => [row.instance, row.timeouts]));
  }

  /** Sets a subscriber's count of consecutive timeouts, on its row no newer than `watermark` (a resubscribe starts at 0). */
  setTimeouts(topic: string, instanceName: string, timeouts: number, watermark: number): void {
    this.#sql.exec(`UPDATE ${this.#table} SET timeouts = ? WHERE topic = ? AND instance = ? AND seq <= ?`, timeouts, topic, instanceName, watermark);
  }

  /** Removes one subscription if its row is no newer than `watermark`; true if it went. */
  unsubscribeStale(topic: string, instanceName: string, watermark: number): boolean {
    return this.#sql.exec(`DELETE FROM ${this.#table} WHERE topic = ? AND instance = ? AND seq <= ?`, topic, instanceName, watermark).rowsWritten > 0;
  }

  /** Removes a subscriber from one topic; true if it was subscribed. */
  unsubscribe(topic: string, instanceName: string): boolean {
    return this.#sql.exec(`DELETE FROM ${this.#table} WHERE topic = ? AND instance = ?`, topic, instanceName).rowsWritten > 0;
  }

  /** Removes a subscriber from every topic; returns how many subscriptions it had. */
  unsubscribeAll(instanceName: string): number {
    return this.#sql.exec(`DELETE FROM ${this.#table} WHERE instance = ?`, instanceName).rowsWritten;
  }

  /** Removes a whole topic; returns how many subscribers it had. */
  clearTopic(topic: string): number {
    return this.#sql.exec(`DELETE FROM ${this.#table} WHERE topic = ?`, topic).rowsWritten;
  }

  has(topic: string, instanceName: string): boolean {
    return this.#sql.exec(`SELECT 1 FROM ${this.#table} WHERE topic = ? AND instance = ?`, topic, instanceName).toArray().length > 0;
  }

  /** Instance names subscribed to `topic`, oldest subscription first. */
  list(topic: string): string[] {
    return this.#sql.exec<{ instance: string }>(`SELECT instance FROM ${this.#table} WHERE topic = ? ORDER BY seq`, topic)
      .toArray().map((row) => row.instance);
  }

  /** Full rows for `topic` (or every topic), oldest first. */
  subscribers(topic?: string): Subscriber[] {
    const rows = topic === undefined
      ? this.#sql.exec<{ topic: string; instance: string; subscribed_at: number }>(`SELECT topic, instance, subscribed_at FROM ${this.#table} ORDER BY seq`)
      : this.#sql.exec<{ topic: string; instance: string; subscribed_at: number }>(`SELECT topic, instance, subscribed_at FROM ${this.#table} WHERE topic = ? ORDER BY seq`, topic);
    return rows.toArray().map((row) => ({ topic: row.topic, instanceName: row.instance, subscribedAt: row.subscribed_at }));
  }

  count(topic: string): number {
    return this.#sql.exec<{ n: number }>(`SELECT count(*) AS n FROM ${this.#table} WHERE topic = ?`, topic).one().n;
  }

  /** Topics with at least one subscriber. */
  topics(): string[] {
    return this.#sql.exec<{ topic: string }>(`SELECT DISTINCT topic FROM ${this.#table} ORDER BY topic`).toArray().map((row) => row.topic);
  }

  /** Topics `instanceName` is subscribed to. */
  topicsOf(instanceName: string): string[] {
    return this.#sql.exec<{ topic: string }>(`SELECT topic FROM ${this.#table} WHERE instance = ? ORDER BY topic`, instanceName)
      .toArray().map((row) => row.topic);
  }

  /** The highest seq now stored (0 if none): rows added later have a higher one. */
  watermark(): number {
    return this.#sql.exec<{ w: number | null }>(`SELECT max(seq) AS w FROM ${this.#table}`).one().w ?? 0;
  }

  /**
   * Removes `instanceName` from every topic, but only rows no newer than
   * `watermark`: a subscription made after the mark (the client came back)
   * stays. Returns how many rows went.
   */
  dropStale(instanceName: string, watermark: number): number {
    return this.#sql.exec(`DELETE FROM ${this.#table} WHERE instance = ? AND seq <= ?`, instanceName, watermark).rowsWritten;
  }
}
