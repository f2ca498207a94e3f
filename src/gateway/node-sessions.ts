/**
 * Sessions with Durable Object nodes (src/nodes/session.ts): a gateway that
 * calls an object opens a session with it, promise-pipelined into the first
 * call (no extra round trip), and sends every later call to that object
 * through it. Each is still its own event behind the object's input gate,
 * and they keep the order they were sent in, but none is a new RPC to the
 * object: about half the runtime's work per call on the object's side, and
 * on Cloudflare no billed request each.
 *
 * A session lives only while its calls do: it closes once none has run
 * through it for SESSION_IDLE_MS (up to as much again late: the timer's
 * slack), so neither the gateway nor the object is kept in memory after the
 * work. A new one replaces it after MAX_SESSION_CALLS calls or
 * MAX_SESSION_AGE_MS, at a moment no call runs through it, so the order
 * holds across the change; a session never idle is replaced regardless at
 * four times those bounds. A node of an earlier meshgate version has no
 * session entry: the opening fails before anything runs, and that binding's
 * calls go straight to the object's stub from then on.
 */
import type { CallTarget } from '../protocol/frames.js';
import { lacksMethod, type NodeCallee, type NodeStub, type SessionStub } from '../nodes/targets.js';
import { stubKey } from './calls.js';
import { Deadlines } from './deadlines.js';

/**
 * How long a session with no call running stays open for the next one. An
 * open session keeps the object from hibernating, which Cloudflare bills as
 * duration: 10 ms of it (doubled by the timer's slack) cost about a fifth of
 * the request that a call in that window saves.
 */
export const SESSION_IDLE_MS = 10;
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
  calls: number;
  readonly openedAt: number;
  /** replaced, or failed: no new call goes through it, and it closes when its last one settles */
  retired: boolean;
}

export class NodeSessions {
  readonly #open = new Map<string, Session>();
  /** sessions with no call running, each closed at its idle deadline */
  readonly #idle = new Deadlines<string>({ slackMs: SESSION_IDLE_MS });
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
    if (!this.takes(to)) return use(stub);
    const key = stubKey(to);
    const session = this.#session(key, stub);
    session.running++;
    session.calls++;
    this.#idle.delete(key);
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

  #session(key: string, stub: NodeStub): Session {
    const now = Date.now();
    const current = this.#open.get(key);
    if (current) {
      if (!this.#due(current, now, current.running === 0 ? 1 : HARD_BOUND_FACTOR)) return current;
      this.#retire(key, current);
    }
    if (this.#open.size >= this.#maxOpen()) {
      const [oldestKey, oldest] = this.#open.entries().next().value!;
      this.#retire(oldestKey, oldest);
    }
    const opening = stub.__meshgateSession();
    const session: Session = { opening, stub: undefined, running: 0, calls: 0, openedAt: now, retired: false };
    opening.then((resolved) => {
      session.stub = resolved;
      if (session.retired && session.running === 0) dispose(resolved);
    }, () => {}); // a session that never opened has nothing to close; its calls see the rejection
    this.#open.set(key, session);
    return session;
  }

  /** True once `session` has carried its bounds' worth of calls or time, times `factor`. */
  #due(session: Session, now: number, factor: number): boolean {
    return session.calls >= MAX_SESSION_CALLS * factor || now - session.openedAt >= MAX_SESSION_AGE_MS * factor;
  }

  /** A call through `session` settled: left idle, it waits SESSION_IDLE_MS for the next; retired, it closes once idle. */
  #settled(key: string, session: Session): void {
    if (session.running > 0) return;
    if (session.retired) return dispose(session.stub);
    this.#idle.add(key, SESSION_IDLE_MS, () => {
      if (this.#open.get(key) === session && session.running === 0) this.#retire(key, session);
    });
  }

  #retire(key: string, session: Session): void {
    if (this.#open.get(key) === session) {
      this.#open.delete(key);
      this.#idle.delete(key);
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
