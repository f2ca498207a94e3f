/**
 * What exactly-once needs to survive an eviction during a grace period: the
 * gateway's epoch and the answers the client may still ask for again, written
 * to the Durable Object's storage when the last socket drops (and as answers
 * arrive during the grace period), deleted when the client reconnects or the
 * grace period ends. Nothing is stored at any other time.
 *
 * An answer is worth storing until the client gives up on its call (the
 * call's `timeoutMs`, which the client's timer counts from before the gateway
 * got the call): after that the client never resends it. So a drop writes the
 * answers of the last timeout's worth of calls, not every remembered one.
 *
 * Uses the key-value storage API, so it works on gateways with either
 * storage backend (no SQLite migration needed).
 */

const PREFIX = 'meshgate:grace:';
const HEADER_KEY = `${PREFIX}header`;
/** One stored value: at most 3 bytes of UTF-8 per code unit keeps it far under the 128 KiB a key-value-backed object stores per value. */
const CHUNK_CHARS = 32 * 1024;
/** Keys per storage call (the API's limit). */
const KEYS_PER_CALL = 128;

interface Header {
  epoch: string;
  /** chunks per record, in write order; a record is one JSON array of [id, answer] pairs cut into chunks */
  records: number[];
  /** calls still running when the last socket dropped: if this incarnation dies, their outcome is unknown */
  running?: string[];
}

export interface SavedGrace {
  epoch: string;
  /** answers to client → mesh calls, oldest first */
  answers: Array<[id: string, answer: string]>;
  running: string[];
}

/** What one save or append wrote (for the storage-cost figures in docs/deploying.md). */
export interface GraceWrite {
  keys: number;
  chars: number;
}

function chunkKey(index: number): string {
  return `${PREFIX}${index}`;
}

function perStorageCall<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += KEYS_PER_CALL) out.push(items.slice(i, i + KEYS_PER_CALL));
  return out;
}

export class GraceMemory {
  readonly #storage: DurableObjectStorage;
  /** What this incarnation wrote and not yet deleted; null: nothing stored; undefined: unknown (a fresh incarnation). */
  #header: Header | null | undefined;
  /** call id → when the client stops waiting for it (insertion order ≈ time order) */
  readonly #keepUntil = new Map<string, number>();

  constructor(storage: DurableObjectStorage) {
    this.#storage = storage;
  }

  /** A call starts running: its answer is worth storing until `keepUntil` (ms). At most `bound` calls are tracked, the oldest dropped first. */
  noteCall(id: string, keepUntil: number, bound: number): void {
    this.#keepUntil.delete(id);
    this.#keepUntil.set(id, keepUntil);
    // Pruned only past the bound (no iterator per call); an expired entry left until then is filtered when saving.
    if (this.#keepUntil.size <= bound) return;
    const now = Date.now();
    for (const [oldId, until] of this.#keepUntil) {
      if (this.#keepUntil.size <= bound && until > now) break;
      this.#keepUntil.delete(oldId);
    }
  }

  /** Writes the epoch and the answers the client may still ask for (the last socket just dropped). Writes are not awaited: the output gate holds replies until they are durable. */
  save(epoch: string, answers: Iterable<[string, string]>, running: string[] = []): GraceWrite {
    this.#dropStored();
    this.#header = { epoch, records: [], running };
    return this.#write(this.#stillWanted(answers));
  }

  /** Adds answers that arrived during the grace period; a no-op unless this incarnation saved (a running call keeps the gateway in memory, so it did). */
  append(answers: Array<[string, string]>): GraceWrite {
    if (!this.#header) return { keys: 0, chars: 0 };
    return this.#write(this.#stillWanted(answers));
  }

  #stillWanted(answers: Iterable<[string, string]>): Array<[string, string]> {
    const now = Date.now();
    const wanted: Array<[string, string]> = [];
    for (const pair of answers) if ((this.#keepUntil.get(pair[0]) ?? 0) > now) wanted.push(pair);
    return wanted;
  }

  /** What an earlier incarnation saved, if this one did not (after an eviction); undefined if nothing is stored. */
  async restore(): Promise<SavedGrace | undefined> {
    if (this.#header !== undefined) return undefined; // this incarnation's memory is the same, and newer
    const header = (await this.#storage.get<Header>(HEADER_KEY)) ?? null;
    this.#header = header;
    if (!header) return undefined;
    const total = header.records.reduce((a, b) => a + b, 0);
    const keys = Array.from({ length: total }, (_, i) => chunkKey(i));
    const values = new Map<string, unknown>();
    for (const part of perStorageCall(keys)) for (const [key, value] of await this.#storage.get<string>(part)) values.set(key, value);
    const answers: Array<[string, string]> = [];
    let next = 0;
    for (const chunks of header.records) {
      let text = '';
      for (let i = 0; i < chunks; i++) text += String(values.get(chunkKey(next++)) ?? '');
      try {
        for (const pair of JSON.parse(text) as Array<[string, string]>) answers.push(pair);
      } catch {
        // a record written by a newer or broken version: its answers are lost, the resend says "outcome unknown"
      }
    }
    return { epoch: header.epoch, answers, running: header.running ?? [] };
  }

  /**
   * The client is back inside its grace period: it resends at once every call
   * whose answer it is missing, and gets it on the new socket, so answers made
   * before now are not stored again at the next drop. (Otherwise a client that
   * reconnects over and over would rewrite the same answers each time.)
   */
  reconnected(isAnswered: (id: string) => boolean): Promise<void> {
    for (const id of [...this.#keepUntil.keys()]) if (isAnswered(id)) this.#keepUntil.delete(id);
    return this.clear();
  }

  /** Deletes what is stored (the client is back, or the grace period is over). Reads the header first after an eviction. */
  async clear(): Promise<void> {
    if (this.#header === undefined) this.#header = (await this.#storage.get<Header>(HEADER_KEY)) ?? null;
    this.#dropStored();
  }

  #dropStored(): void {
    const header = this.#header;
    this.#header = null;
    if (!header) return;
    const total = header.records.reduce((a, b) => a + b, 0);
    const keys = [HEADER_KEY, ...Array.from({ length: total }, (_, i) => chunkKey(i))];
    for (const part of perStorageCall(keys)) void this.#storage.delete(part);
  }

  #write(answers: Array<[string, string]>): GraceWrite {
    const header = this.#header!;
    const entries: Array<[string, string]> = [];
    let chars = 0;
    if (answers.length > 0) {
      const text = JSON.stringify(answers);
      let next = header.records.reduce((a, b) => a + b, 0);
      const chunks = Math.ceil(text.length / CHUNK_CHARS);
      for (let i = 0; i < chunks; i++) entries.push([chunkKey(next++), text.slice(i * CHUNK_CHARS, (i + 1) * CHUNK_CHARS)]);
      header.records.push(chunks);
      chars = text.length;
    }
    const headerText = JSON.stringify(header);
    const all: Array<[string, unknown]> = [...entries, [HEADER_KEY, { epoch: header.epoch, records: [...header.records], running: header.running ?? [] }]];
    for (const part of perStorageCall(all)) void this.#storage.put(Object.fromEntries(part));
    return { keys: all.length, chars: chars + headerText.length };
  }
}
