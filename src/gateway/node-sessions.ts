/**
 * Sessions with Durable Object nodes (src/nodes/session.ts): a gateway that
 * calls an object again soon after a call to it settled opens a session with
 * it, promise-pipelined into that call (no extra round trip), and sends every
 * later call to that object through it. Each is still its own event behind
 * the object's input gate, and they keep the order they were sent in, but
 * none is a new RPC to the object: about half the runtime's work per call on
 * the object's side, and on Cloudflare no billed request each.
 *
 * A call with none to the same object just before it goes on the object's
 * stub, as one RPC: opening a session costs more than that one call saves,
 * so an isolated call (most calls of a crowd of clients to one room) opens
 * none. A session opens only while no call to the object runs on the stub,
 * and only in room left by maxOpen or by an idle session, so a call through
 * it never overtakes one sent before it; a client that always has a call
 * running on the stub keeps all its calls there.
 *
 * A session lives only while its calls do: it closes once none has run
 * through it for SESSION_IDLE_MS, so neither the gateway nor the object is
 * kept in memory after the work. A new one replaces it after
 * MAX_SESSION_CALLS calls or MAX_SESSION_AGE_MS, at a moment no call runs
 * through it, so the order holds across the change. Two things end a
 * session with calls still running through it, and then a call sent after
 * them may start first: a failed call (the session may be broken), and a
 * session never idle reaching four times those bounds. A node of an earlier
 * meshgate version has no session entry: the opening fails before anything
 * runs, and that binding's calls go straight to the object's stub from then
 * on (an object with a session open keeps it until it closes).
 */
import type { CallTarget } from '../protocol/frames.js';
import { lacksMethod, type NodeCallee, type NodeStub, type SessionStub } from '../nodes/targets.js';
import { stubKey } from './calls.js';
import { Deadlines } from './deadlines.js';

/**
 * How long a session with no call running stays open for the next one, and
 * how soon after a call on the stub the next opens one. An open session
 * keeps the object from hibernating, which Cloudflare bills as duration: at
 * most this long after a run of calls, about one request's worth. Its lease
 * fires at most once per this long per open session while calls run: a
 * shorter window would wake every busy gateway more often (500 clients at
 * 10 ms took a third off the calls/s of the bench's crowd of clients).
 */
export const SESSION_IDLE_MS = 100;
/** Calls one session carries before a new one replaces it (at the next moment none runs). */
export const MAX_SESSION_CALLS = 500;
/** How long one session takes new calls before a new one replaces it (likewise). */
export const MAX_SESSION_AGE_MS = 5_000;
/** Past this many times those bounds, a session is replaced even with calls running through it. */
const HARD_BOUND_FACTOR = 4;

interface Session {
  /** the session as the calls pipelined into it see it; it stays their callee once resolved */
  readonly opening: Promise<SessionStub> & SessionStub;
  /** the resolved stub, which closing disposes */
  stub: SessionStub | undefined;
  running: number;
  /** when its last call settled with none left running */
  settledAt: number;
  calls: number;
  readonly openedAt: number;
  /** replaced, or failed: no new call goes through it, and it closes when its last one settles */
  retired: boolean;
}

export class NodeSessions {
  readonly #open = new Map<string, Session>();
  /** calls now running on an object's stub, by target */
  readonly #direct = new Map<string, number>();
  /** when each target's last call on its stub settled, kept for SESSION_IDLE_MS (no timer: pruned by the next call that may open a session) */
  readonly #recent = new Map<string, number>();
  /** one lease per open session: when it is due, a session idle for SESSION_IDLE_MS closes, a busy one renews it */
  readonly #leases = new Deadlines<string>();
  /** bindings whose nodes have no session entry */
  readonly #unsupported = new Set<string>();
  readonly #maxOpen: () => number;

  /** `maxOpen`: how many sessions may take calls at once (below 1: none, every call goes to the stub) */
  constructor(maxOpen: () => number) {
    this.#maxOpen = maxOpen;
  }

  /** Sessions taking calls (one being replaced stays open, uncounted, until its running calls settle). */
  get size(): number {
    return this.#open.size;
  }

  /** True if calls to `to` go through a session: a Durable Object whose node has the entry. */
  takes(to: CallTarget): boolean {
    return to.instance !== undefined && !this.#unsupported.has(to.binding) && this.#maxOpen() >= 1;
  }

  /**
   * Runs `use` on `to`'s session, opened at need from `stub`, or on `stub`
   * itself where no session is to be had. `use` may be run twice: on the
   * session, and again on the stub if the node turned out to have no session
   * entry — then the first run reached nothing.
   */
  async run<T>(to: CallTarget, stub: NodeStub, use: (node: NodeCallee) => Promise<T>): Promise<T> {
    const key = stubKey(to);
    if (!this.#open.has(key)) {
      if (!this.takes(to)) return use(stub);
      if (!this.#settledJustNow(key) || this.#direct.has(key) || !this.#makeRoom()) return this.#onStub(key, stub, use);
    }
    const session = this.#session(key, stub);
    session.running++;
    session.calls++;
    try {
      return await use(session.opening);
    } catch (error) {
      this.#retire(key, session);
      // Only an opening that failed, for want of the entry, ran nothing: then the stub gets the call.
      if (!lacksMethod(error, '__meshgateSession') || !(await session.opening.then(() => false, () => true))) throw error;
      this.#unsupported.add(to.binding);
    } finally {
      session.running--;
      this.#settled(key, session);
    }
    return use(stub);
  }

  /** One call on the object's stub; once none runs there, the next within SESSION_IDLE_MS opens a session. */
  async #onStub<T>(key: string, stub: NodeStub, use: (node: NodeCallee) => Promise<T>): Promise<T> {
    this.#direct.set(key, (this.#direct.get(key) ?? 0) + 1);
    try {
      return await use(stub);
    } finally {
      const running = this.#direct.get(key)! - 1;
      if (running > 0) {
        this.#direct.set(key, running);
      } else {
        this.#direct.delete(key);
        this.#recent.delete(key); // re-inserted last: the map stays in order of settling
        this.#recent.set(key, Date.now());
      }
    }
  }

  /** True if `key`'s last call on its stub settled within SESSION_IDLE_MS; entries older than that are dropped on the way. */
  #settledJustNow(key: string): boolean {
    const now = Date.now();
    for (const [oldest, at] of this.#recent) {
      if (now - at < SESSION_IDLE_MS) break;
      this.#recent.delete(oldest);
    }
    return this.#recent.has(key);
  }

  #session(key: string, stub: NodeStub): Session {
    const now = Date.now();
    const current = this.#open.get(key);
    if (current) {
      if (!this.#due(current, now, current.running === 0 ? 1 : HARD_BOUND_FACTOR)) return current;
      this.#retire(key, current);
    }
    const opening = stub.__meshgateSession();
    const session: Session = { opening, stub: undefined, running: 0, settledAt: now, calls: 0, openedAt: now, retired: false };
    opening.then((resolved) => {
      session.stub = resolved;
      if (session.retired && session.running === 0) dispose(resolved);
    }, () => {}); // a session that never opened has nothing to close; its calls see the rejection
    this.#open.set(key, session);
    return session;
  }

  /** True if a session may open: below maxOpen, or an idle one closed to make room (a busy one would let later calls overtake its own). */
  #makeRoom(): boolean {
    if (this.#open.size < this.#maxOpen()) return true;
    for (const [key, session] of this.#open) {
      if (session.running > 0) continue;
      this.#retire(key, session);
      return true;
    }
    return false;
  }

  /** True once `session` has carried its bounds' worth of calls or time, times `factor`. */
  #due(session: Session, now: number, factor: number): boolean {
    return session.calls >= MAX_SESSION_CALLS * factor || now - session.openedAt >= MAX_SESSION_AGE_MS * factor;
  }

  /** A call through `session` settled: retired, it closes once idle; else its lease sees to it. */
  #settled(key: string, session: Session): void {
    if (session.running > 0) return;
    session.settledAt = Date.now();
    if (session.retired) return dispose(session.stub);
    if (!this.#leases.has(key)) this.#lease(key, session, SESSION_IDLE_MS);
  }

  /** Closes `session` once it has been idle SESSION_IDLE_MS: checked when the lease is due, renewed while it is not. */
  #lease(key: string, session: Session, ms: number): void {
    this.#leases.add(key, ms, () => {
      if (this.#open.get(key) !== session) return;
      const idleFor = Date.now() - session.settledAt;
      if (session.running === 0 && idleFor >= SESSION_IDLE_MS) this.#retire(key, session);
      else this.#lease(key, session, session.running > 0 ? SESSION_IDLE_MS : SESSION_IDLE_MS - idleFor);
    });
  }

  #retire(key: string, session: Session): void {
    if (this.#open.get(key) === session) {
      this.#open.delete(key);
      this.#leases.delete(key);
    }
    if (session.retired) return;
    session.retired = true;
    if (session.running === 0) dispose(session.stub);
  }
}

function dispose(stub: SessionStub | undefined): void {
  try {
    stub?.[Symbol.dispose]();
  } catch {
    // a stub whose session already broke has nothing left to release
  }
}
