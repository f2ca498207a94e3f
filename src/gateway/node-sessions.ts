/**
 * Sessions with Durable Object nodes (src/nodes/session.ts): a gateway that
 * sends one object call after call opens a session with it, promise-pipelined
 * into the first call (no extra round trip), and sends the next calls through
 * it. Each is still its own event behind the object's input gate, but no new
 * RPC to the object: about half the runtime's work per call, and on
 * Cloudflare no billed request each.
 *
 * A session lives only while its calls do: it is closed once no call has run
 * through it for SESSION_IDLE_MS, so neither the gateway nor the object is
 * kept in memory after the work, and a new one replaces it after
 * MAX_SESSION_CALLS calls or MAX_SESSION_AGE_MS, so the calls of one session
 * never pile up on one invocation's limits. A node of an earlier meshgate
 * version has no session entry: the call fails before anything runs, and
 * that binding's calls go as direct RPCs from then on.
 */
import type { CallTarget } from '../protocol/frames.js';
import type { MeshResult } from '../nodes/envelope.js';
import { explainRpcError, lacksMethod, type NodeStub } from '../nodes/targets.js';
import { resultOfAnswer, type TextAnswer } from '../nodes/packed-envelope.js';
import { stubKey } from './calls.js';
import { Deadlines } from './deadlines.js';

/** How long a session with no call running stays open for the next one. */
export const SESSION_IDLE_MS = 100;
/** Calls one session carries before a new one replaces it. */
export const MAX_SESSION_CALLS = 500;
/** How long one session takes new calls before a new one replaces it. */
export const MAX_SESSION_AGE_MS = 5_000;

/** The node's side of a session, as its stub. */
export interface SessionStub extends Disposable {
  callText(text: string): Promise<TextAnswer>;
}

interface Session {
  /** the session as the first call pipelined into it; `stub` once it resolved */
  readonly opening: Promise<SessionStub> & SessionStub;
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

  constructor(maxOpen: () => number) {
    this.#maxOpen = maxOpen;
  }

  get size(): number {
    return this.#open.size;
  }

  /** True if calls to `to` may go through a session: a Durable Object whose node has the entry. */
  takes(to: CallTarget): boolean {
    return to.instance !== undefined && !this.#unsupported.has(to.binding);
  }

  /**
   * Sends one call text to `to` through its session, opened at need from
   * `stub`. Undefined: the node has no session entry and ran nothing.
   */
  async callText(stub: NodeStub, to: CallTarget, text: string): Promise<MeshResult | undefined> {
    const key = stubKey(to);
    const session = this.#session(key, stub);
    session.running++;
    session.calls++;
    this.#idle.delete(key);
    let answer: TextAnswer;
    try {
      answer = await (session.stub ?? session.opening).callText(text);
    } catch (error) {
      this.#retire(key, session);
      if (lacksMethod(error, '__meshgateSession')) {
        this.#unsupported.add(to.binding);
        return undefined;
      }
      throw explainRpcError(error, to.binding);
    } finally {
      session.running--;
      this.#settled(key, session);
    }
    return resultOfAnswer(answer);
  }

  #session(key: string, stub: NodeStub): Session {
    const now = Date.now();
    const current = this.#open.get(key);
    if (current && current.calls < MAX_SESSION_CALLS && now - current.openedAt < MAX_SESSION_AGE_MS) return current;
    if (current) this.#retire(key, current);
    if (this.#open.size >= this.#maxOpen()) {
      const [oldestKey, oldest] = this.#open.entries().next().value!;
      this.#retire(oldestKey, oldest);
    }
    const opening = stub.__meshgateSession();
    const session: Session = { opening, stub: undefined, running: 0, calls: 0, openedAt: now, retired: false };
    // Rejection reaches the calls pipelined into it; a session that never opens has nothing to close.
    opening.then((resolved) => {
      if (session.retired) dispose(resolved);
      else session.stub = resolved;
    }, () => {});
    this.#open.set(key, session);
    return session;
  }

  /** A call through `session` settled: a session left idle waits SESSION_IDLE_MS for the next, a retired one closes once idle. */
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
