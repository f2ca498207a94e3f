/**
 * A topic's history, in the Durable Object's SQLite: what it published, each
 * with an offset that grows by one and the topic's epoch, kept by count and
 * by age. A client that comes back says where it was (`TopicPosition`) and
 * gets what it missed, in order — or is told the history does not reach back.
 *
 * Pruning happens when something is published, never on a timer: a quiet
 * topic keeps its last `maxCount` rows until its next publication, and
 * recovery never returns a row older than `maxAgeMs` whether pruned or not.
 */
import { LimitExceededError } from '../protocol/errors.js';
import { decodeValue, encodeValue } from '../protocol/codec.js';
import type { Publication, Recovery, TopicPosition } from '../protocol/topics.js';

export interface HistoryOptions {
  /** publications kept per topic (default 100, at most 10 000) */
  maxCount?: number;
  /** how long a publication can be recovered (ms; default 10 min, at most 24 h) */
  maxAgeMs?: number;
  /** the most one recovery returns, in characters of the encoded publications (default 256 Ki, at most 768 Ki: it must fit in one frame) */
  maxRecoveryBytes?: number;
}

export const HISTORY_DEFAULTS = { maxCount: 100, maxAgeMs: 10 * 60_000, maxRecoveryBytes: 256 * 1024 } as const;
export const HISTORY_CAPS = { maxCount: 10_000, maxAgeMs: 24 * 60 * 60_000, maxRecoveryBytes: 768 * 1024 } as const;
/** Longest epoch a client may send back (ours are 16 characters). */
const MAX_EPOCH_LENGTH = 64;

type Limits = Required<HistoryOptions>;

function limitsOf(options: HistoryOptions): Limits {
  const pick = (name: keyof Limits): number => {
    const value = options[name] ?? HISTORY_DEFAULTS[name];
    if (!Number.isInteger(value) || value < 1 || value > HISTORY_CAPS[name]) {
      throw new RangeError(`Subscriptions option history.${name} must be a whole number from 1 to ${HISTORY_CAPS[name]}, got ${String(value)}.`);
    }
    return value;
  };
  return { maxCount: pick('maxCount'), maxAgeMs: pick('maxAgeMs'), maxRecoveryBytes: pick('maxRecoveryBytes') };
}

/** A position from a client, checked before it is used: a whole offset ≥ 0 and a short epoch string. */
export function checkPosition(value: unknown): TopicPosition | undefined {
  if (value === undefined || value === null) return undefined;
  const { offset, epoch } = value as Partial<TopicPosition>;
  if (typeof value !== 'object' || !Number.isSafeInteger(offset) || (offset as number) < 0
    || typeof epoch !== 'string' || epoch.length === 0 || epoch.length > MAX_EPOCH_LENGTH) {
    throw new TypeError(`A topic position must be { offset: a whole number ≥ 0, epoch: a string of 1 to ${MAX_EPOCH_LENGTH} characters } `
      + '(the one the last publication or recovery carried), or undefined for none.');
  }
  return { offset: offset as number, epoch };
}

function newEpoch(): string {
  const bytes = new Uint8Array(8);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export class TopicHistory {
  readonly #sql: SqlStorage;
  readonly #table: string;
  #unpublished: string | undefined;
  readonly limits: Limits;

  /** `table` is checked by the caller (SubscriptionStore's rule); two tables are made: `{table}` and `{table}_topics`. */
  constructor(sql: SqlStorage, table: string, options: HistoryOptions = {}) {
    this.limits = limitsOf(options);
    this.#sql = sql;
    this.#table = table;
    sql.exec(`CREATE TABLE IF NOT EXISTS ${table}_topics (topic TEXT PRIMARY KEY, epoch TEXT NOT NULL, last_offset INTEGER NOT NULL)`);
    sql.exec(`CREATE TABLE IF NOT EXISTS ${table} (topic TEXT NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, data TEXT NOT NULL,
      PRIMARY KEY (topic, seq)) WITHOUT ROWID`);
  }

  /**
   * The topic's epoch and last offset. A topic never published to is at
   * offset 0 of the epoch every such topic shares, which its first
   * publication takes: reading writes nothing, so subscribing to names never
   * published leaves no rows behind.
   */
  position(topic: string): TopicPosition {
    const row = this.#sql.exec<{ epoch: string; last_offset: number }>(`SELECT epoch, last_offset FROM ${this.#table}_topics WHERE topic = ?`, topic).toArray()[0];
    return row ? { epoch: row.epoch, offset: row.last_offset } : { epoch: this.#unpublishedEpoch(), offset: 0 };
  }

  /**
   * The epoch of topics not yet published to, kept in the row of topic ''
   * (never a topic's name): made once per table, and made anew by clear(),
   * so a position from a topic's earlier history never matches its next one.
   */
  #unpublishedEpoch(): string {
    if (this.#unpublished !== undefined) return this.#unpublished;
    const row = this.#sql.exec<{ epoch: string }>(`SELECT epoch FROM ${this.#table}_topics WHERE topic = ''`).toArray()[0];
    if (row) return (this.#unpublished = row.epoch);
    return this.#renewUnpublishedEpoch();
  }

  #renewUnpublishedEpoch(): string {
    const epoch = newEpoch();
    this.#sql.exec(`INSERT OR REPLACE INTO ${this.#table}_topics (topic, epoch, last_offset) VALUES ('', ?, 0)`, epoch);
    return (this.#unpublished = epoch);
  }

  /** Stores `data` as the topic's next publication and prunes what is past the count or the age. */
  append<T>(topic: string, data: T, now = Date.now()): Publication<T> {
    if (topic === '') throw new TypeError('A topic must be a string of at least 1 character.');
    const encoded = encodeValue(data);
    if (encoded.length > this.limits.maxRecoveryBytes) {
      throw new LimitExceededError('history.maxRecoveryBytes', this.limits.maxRecoveryBytes,
        `a publication of ${encoded.length} characters could never be recovered; publish less (an id the client fetches), or raise history.maxRecoveryBytes.`);
    }
    const { epoch, last_offset: offset } = this.#sql.exec<{ epoch: string; last_offset: number }>(
      `INSERT INTO ${this.#table}_topics (topic, epoch, last_offset) VALUES (?, ?, 1)
       ON CONFLICT (topic) DO UPDATE SET last_offset = last_offset + 1 RETURNING epoch, last_offset`, topic, this.#unpublishedEpoch()).one();
    this.#sql.exec(`INSERT INTO ${this.#table} (topic, seq, at, data) VALUES (?, ?, ?, ?)`, topic, offset, now, encoded);
    this.#sql.exec(`DELETE FROM ${this.#table} WHERE topic = ? AND (seq <= ? OR at < ?)`, topic, offset - this.limits.maxCount, now - this.limits.maxAgeMs);
    return { topic, offset, epoch, at: now, data };
  }

  /**
   * What a client at `since` missed. `recovered` only when `since` is of this
   * epoch and every publication after it is still kept, within `maxAgeMs`,
   * and fits in `maxRecoveryBytes`; otherwise none are returned.
   */
  since<T = unknown>(topic: string, since: TopicPosition | undefined, now = Date.now()): Recovery<T> {
    const current = this.position(topic);
    const none: Recovery<T> = { topic, ...current, recovered: false, publications: [] };
    if (!since || since.epoch !== current.epoch || since.offset > current.offset) return none;
    if (since.offset === current.offset) return { ...none, recovered: true };
    if (current.offset - since.offset > this.limits.maxCount) return none; // more missed than is ever kept
    // Read lazily and stop past the byte bound: a hostile old offset costs at most that (plus one row), not maxCount rows.
    const cursor = this.#sql.exec<{ seq: number; at: number; data: string }>(
      `SELECT seq, at, data FROM ${this.#table} WHERE topic = ? AND seq > ? AND at >= ? ORDER BY seq LIMIT ?`,
      topic, since.offset, now - this.limits.maxAgeMs, this.limits.maxCount);
    const rows: Array<{ seq: number; at: number; data: string }> = [];
    let bytes = 0;
    for (const row of cursor) {
      if ((bytes += row.data.length) > this.limits.maxRecoveryBytes) return none;
      rows.push(row);
    }
    if (rows[0]?.seq !== since.offset + 1 || rows.length !== current.offset - since.offset) return none;
    const publications = rows.map((row) => ({ topic, offset: row.seq, epoch: current.epoch, at: row.at, data: decodeValue(row.data) as T }));
    return { ...none, recovered: true, publications };
  }

  /** Forgets a topic's history; its next publication starts a new epoch, so no old position recovers. */
  clear(topic: string): void {
    this.#sql.exec(`DELETE FROM ${this.#table} WHERE topic = ?`, topic);
    this.#sql.exec(`DELETE FROM ${this.#table}_topics WHERE topic = ?`, topic);
    this.#renewUnpublishedEpoch();
  }
}
