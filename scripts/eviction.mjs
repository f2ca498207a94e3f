/**
 * Sees Durable Objects leave memory from outside, without waking them:
 * workerd keeps each object's SQLite file (`<id hex>.sqlite`, whichever
 * storage backend the class has) open exactly while the object is in
 * memory. Watches the workerd processes this Node process started (Linux
 * /proc). Shared by the hibernation tests and the cost benchmark.
 */
import fs from 'node:fs';

const POLL_MS = 50;
const SQLITE_FILE = /\/([0-9a-f]{64})\.sqlite$/;

/** Processes started (directly or not) by `root`. */
function descendants(root) {
  const children = new Map();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(Number(entry));
    } catch {
      // the process ended while we looked
    }
  }
  const found = [];
  const queue = [root];
  for (let guard = 0; queue.length > 0 && guard < 10_000; guard++) {
    for (const child of children.get(queue.pop()) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

export class EvictionWatcher {
  #pids;
  #timer;
  /** @type {Set<{ id: string; resolve(at: number): void; reject(e: Error): void; until: number }>} */
  #waiters = new Set();

  constructor(pids) {
    this.#pids = pids;
  }

  /** Watches the workerd processes under this Node process (start Miniflare first). */
  static forThisProcess() {
    const pids = descendants(process.pid).filter((pid) => {
      try {
        return fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'workerd';
      } catch {
        return false;
      }
    });
    if (pids.length === 0) throw new Error('EvictionWatcher: no workerd process under this one (start Miniflare first; Linux only).');
    return new EvictionWatcher(pids);
  }

  /** Ids (64 hex digits) of the Durable Objects in memory now. */
  inMemory() {
    const ids = new Set();
    for (const pid of this.#pids) {
      let fds = [];
      try {
        fds = fs.readdirSync(`/proc/${pid}/fd`);
      } catch {
        continue;
      }
      for (const fd of fds) {
        try {
          const match = SQLITE_FILE.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
          if (match) ids.add(match[1]);
        } catch {
          // the descriptor closed while we looked
        }
      }
    }
    return ids;
  }

  isInMemory(id) {
    return this.inMemory().has(id);
  }

  /** Resolves with the time (Date.now()) the object is first seen out of memory; rejects after `timeoutMs`. */
  evicted(id, timeoutMs = 30_000) {
    return new Promise((resolve, reject) => {
      this.#waiters.add({ id, resolve, reject, until: Date.now() + timeoutMs });
      this.#timer ??= setInterval(() => this.#poll(), POLL_MS);
    });
  }

  #poll() {
    const now = Date.now();
    const ids = this.inMemory();
    for (const waiter of this.#waiters) {
      if (!ids.has(waiter.id)) waiter.resolve(now);
      else if (now > waiter.until) waiter.reject(new Error(`Durable Object ${waiter.id.slice(0, 12)}… still in memory after the wait`));
      else continue;
      this.#waiters.delete(waiter);
    }
    if (this.#waiters.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }
}
