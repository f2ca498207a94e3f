/**
 * Client → mesh calls: from a `call` frame to its `call_response`. Each call
 * runs at most once per call id (a resend is answered from memory, or from
 * the run still going), is given up at its deadline so a silent node cannot
 * hold its slot, and goes into the mesh alone or in a burst with the calls
 * that arrived with it.
 */
import { CancelledError, LimitExceededError, OutcomeUnknownError } from '../protocol/errors.js';
import { DEFAULTS } from '../protocol/limits.js';
import { encodeCallResponse, encodeFrame, type CallFrame, type CallTarget, type Origin } from '../protocol/frames.js';
import { AnswerMemory } from '../protocol/answer-memory.js';
import { failure } from '../protocol/failure.js';
import type { CallContext, MeshResult, StreamSource } from '../nodes/envelope.js';
import { configuredMs, type GatewayConfig } from './config.js';
import { chunksBySize, clientState, nodeDeadlineMs, stubKey } from './calls.js';
import { Deadlines } from './deadlines.js';
import type { GraceMemory } from './grace-memory.js';
import { safeSend, sendError, type GatewaySockets, type SocketInfo } from './sockets.js';
import { GatewayStreams, release } from './streams.js';
import { CallCancels } from './cancels.js';
import { NodeRpc, type PendingCall } from './node-rpc.js';
import { Pipelining } from './pipelining.js';

export interface CallToMesh {
  to: CallTarget;
  method: string;
  context: CallContext;
}

/** What the calls need from their gateway. */
export interface CallsToMeshHost {
  readonly env: unknown;
  readonly sockets: GatewaySockets;
  readonly graceMemory: GraceMemory;
  config(): GatewayConfig;
  /** the gateway's current epoch: a resend from another one may have run */
  epoch(): string;
  onBeforeCallToMesh(call: CallToMesh): void | Promise<void>;
  /** true if the application overrides onBeforeCallToMesh: it may put any value in a context, so contexts travel as objects, not packed */
  callHookSet(): boolean;
}

/** How late a deadline may be given up, and how long its timer may outlive the last call: sequential calls share one timer (one each cost 21 µs of 170). */
export const RUNNING_SLACK_MS = 100;

export class CallsToMesh {
  readonly #host: CallsToMeshHost;
  /** calls now running, by call id, each given up at its deadline (up to RUNNING_SLACK_MS late) */
  readonly #running = new Deadlines<string>({ slackMs: RUNNING_SLACK_MS });
  /** encoded answers to recent calls, by call id, bounded by count and bytes */
  readonly answers: AnswerMemory;
  /** calls taken from the frames of this burst, sent together once the burst is read (see #dispatchSoon) */
  #burst: PendingCall[] = [];
  /** how calls travel to their nodes (node-rpc.ts) */
  readonly #rpc: NodeRpc;
  /** whether the client has calls in flight behind the one at hand (pipelining.ts) */
  readonly #pipelining = new Pipelining();
  /** calls an earlier incarnation was running when it died in a grace period: a resend of one may have run */
  readonly #diedRunning = new Set<string>();
  /** results that arrive in chunks (streams.ts) */
  readonly streams: GatewayStreams;
  /** running calls the client may cancel (cancels.ts) */
  readonly cancels = new CallCancels();

  constructor(host: CallsToMeshHost) {
    this.#host = host;
    this.#rpc = new NodeRpc({
      env: host.env, sockets: host.sockets, config: () => host.config(), callHookSet: () => host.callHookSet(),
      deadlineMs: (frame) => this.#deadlineFor(frame),
      cancelOf: (frame) => (frame.cancellable ? this.cancels.get(frame.id) : undefined),
      finish: (ws, frame, result) => this.#finish(ws, frame, result),
    });
    this.streams = new GatewayStreams({ config: () => host.config(), isOpen: (ws) => host.sockets.isOpen(ws) });
    this.answers = new AnswerMemory(() => ({ count: host.config().rememberedCallIds, bytes: host.config().rememberedAnswerBytes }));
  }

  get running(): number {
    return this.#running.size;
  }

  /** The ids of the calls now running (saved with the grace memory). */
  runningIds(): string[] {
    return [...this.#running.keys()];
  }

  /** Restored from the grace memory: these calls were running when an earlier incarnation died, so their outcome is unknown. */
  diedRunning(ids: readonly string[]): void {
    for (const id of ids) this.#diedRunning.add(id);
  }

  get stubs(): number {
    return this.#rpc.stubs;
  }

  get sessions(): number {
    return this.#rpc.sessions;
  }

  take(ws: WebSocket, info: SocketInfo, frame: CallFrame): void {
    if (this.answerResend(ws, frame.id)) return;
    const config = this.#host.config();
    if (frame.resentFrom !== undefined && (frame.resentFrom !== this.#host.epoch() || this.#diedRunning.has(frame.id))) {
      // Sent to an earlier incarnation of this gateway, whose memory died with it: it may have run.
      this.answer(ws, frame.id, failure(new OutcomeUnknownError(frame.method)), true);
      return;
    }
    if (this.#running.size >= config.maxInFlightCalls) {
      const error = new LimitExceededError('maxInFlightCalls', config.maxInFlightCalls, 'wait for earlier calls to settle before sending more.');
      this.answer(ws, frame.id, failure(error), false);
      return;
    }
    const origin: Origin = { kind: 'client', gateway: info.gateway, instance: info.instanceName, sub: info.sub };
    const context: CallContext = {
      origin, caller: origin, chain: [origin], originAuth: { sub: info.sub, claims: info.claims }, state: clientState(frame.state, config.reservedStateKeys),
    };
    let deadline: number;
    try {
      deadline = this.#deadlineFor(frame);
    } catch (error) {
      this.answer(ws, frame.id, failure(error), false);
      return;
    }
    // A node that never answers must not hold this slot forever: past the deadline the call is given up.
    this.#running.add(frame.id, deadline, () => this.#giveUp(ws, frame));
    const pipelined = this.#pipelining.started(frame.id);
    if (frame.cancellable) this.cancels.add(frame.id);
    // The client gives up after its timeoutMs (counted from before it sent): no resend to answer after that.
    this.#host.graceMemory.noteCall(frame.id, Date.now() + Math.min(frame.timeoutMs ?? deadline, deadline), config.rememberedCallIds);
    this.#dispatchSoon(ws, frame, context, pipelined);
  }

  /**
   * A resend of a call this gateway knows: answered from memory if finished
   * (true), left to its run if still running (true, the answer goes to the
   * open socket when done). False: a call never seen.
   */
  answerResend(ws: WebSocket, id: string): boolean {
    const replay = this.answers.replay(id, ws);
    if (replay === null) {
      // Each answer goes out at most once per socket: a repeat on the same one gets a short error instead.
      sendError(ws, 'duplicate_call_id', 'This call was already answered on this connection; use a new id for a new call.', id);
    } else if (replay !== undefined) {
      safeSend(ws, replay);
    }
    return replay !== undefined || this.#running.has(id);
  }

  /** The client cancelled call or stream `id` (a `cancel` frame; also how it releases a stream it has read to the end). */
  cancel(id: string): void {
    if (!this.streams.cancel(id)) this.cancels.cancel(id);
  }

  /** The client is gone for good: what it started is stopped (running cancellable calls, streams). */
  clientGone(): void {
    this.streams.cancelAll();
    this.cancels.cancelAll();
  }

  /** Sends the answer to call `id`; `remember`: keep it for a resend (false for refusals that ran nothing). */
  answer(ws: WebSocket | undefined, id: string, result: MeshResult & { window?: number }, remember: boolean, retryAfterReconnect = false): void {
    const moreBehind = this.#pipelining.settled(id);
    const text = !result.ok ? encodeCallResponse(id, false, result.error, retryAfterReconnect)
      : result.stream ? encodeFrame({ type: 'call_response', id, ok: true, stream: true, window: result.window ?? DEFAULTS.streamWindow })
        : encodeCallResponse(id, true, result.result);
    if (remember) {
      this.answers.remember(id, text, ws);
      if (!ws) this.#host.graceMemory.append([[id, text]]); // in a grace period: kept in storage too, in case the gateway is evicted
    }
    if (!ws) return; // no socket: the client resends on reconnect and gets the remembered answer
    // A stream's answer goes at once, before its chunks; any other may go with the answers ready with it (sockets.ts, together).
    if (result.ok && result.stream) safeSend(ws, text);
    // While calls sent after it run, their answers come in turns of their own: they go to the client together.
    else if (moreBehind) this.#host.sockets.sendSoon(ws, text, this.#host.config().maxFrameBytes);
    else this.#host.sockets.send(ws, text);
  }

  /**
   * A call goes into the mesh at once unless the client is pipelining. Calls
   * that arrive while the one before still runs (a client with many in
   * flight) are all read first and go out together on the next timer turn,
   * in arrival order: issuing RPCs in one turn costs the runtime about a
   * quarter less per call than one turn each (bench: throughput), and a
   * sequential call waits for no timer, even beside a long-running one.
   */
  #dispatchSoon(ws: WebSocket, frame: CallFrame, context: CallContext, pipelined: boolean): void {
    if (!pipelined && this.#burst.length === 0) {
      if (this.#passedHook(ws, frame, context)) void this.#rpc.send(ws, frame, context);
      return;
    }
    this.#burst.push([ws, frame, context]);
    if (this.#burst.length === 1) setTimeout(() => this.#dispatchBurst(), this.#host.config().burstWindowMs);
  }

  /**
   * Sends a burst in arrival order, all RPCs issued in one turn. Calls to the
   * same Worker, or to a Durable Object that accepts bursts, share one RPC
   * (results come back as they complete, see dispatchBurst in node/dispatch.ts);
   * any other Durable Object gets one RPC per call, so its input gate keeps
   * one call's storage reads and writes from interleaving with another's. A
   * call whose hook is async goes on its own once the hook is done.
   */
  #dispatchBurst(): void {
    const burst = this.#burst;
    this.#burst = [];
    const byTarget = new Map<string, PendingCall[]>();
    for (const call of burst) {
      const [ws, frame, context] = call;
      if (!this.#passedHook(ws, frame, context)) continue;
      const key = stubKey(frame.to);
      const group = byTarget.get(key);
      if (group) group.push(call);
      else byTarget.set(key, [call]);
    }
    for (const group of byTarget.values()) {
      const to = group[0]![1].to;
      if (group.length > 1 && this.#rpc.takesBursts(to.binding, to.instance)) {
        for (const chunk of chunksBySize(group)) {
          if (chunk.length > 1) void this.#rpc.sendBurst(chunk);
          else void this.#rpc.send(...chunk[0]!);
        }
      } else {
        for (const call of group) void this.#rpc.send(...call);
      }
    }
  }

  /**
   * Runs the application's onBeforeCallToMesh. True: the call may go now. False: it is taken care
   * of — answered with the hook's error, or sent on its own once an async hook is done (the default
   * no-op hook costs no extra turn).
   */
  #passedHook(ws: WebSocket, frame: CallFrame, context: CallContext): boolean {
    if (!this.#host.callHookSet()) return true;
    let hook: void | Promise<void>;
    try {
      hook = this.#host.onBeforeCallToMesh({ to: frame.to, method: frame.method, context });
    } catch (error) {
      this.#finish(ws, frame, failure(error));
      return false;
    }
    if (hook === undefined) return true;
    Promise.resolve(hook).then(() => this.#rpc.send(ws, frame, context), (error: unknown) => this.#finish(ws, frame, failure(error)));
    return false;
  }

  #deadlineFor(frame: CallFrame): number {
    return nodeDeadlineMs(configuredMs('callDeadlineMs', this.#host.config().callDeadlineMs), frame.timeoutMs);
  }

  /** The node did not answer within callDeadlineMs: free the slot; the call may still run, so the answer is "unknown". */
  #giveUp(ws: WebSocket, frame: CallFrame): void {
    // Nobody waits for it any more: a cancellable call's node hears so, and its entry goes.
    this.cancels.cancel(frame.id);
    this.cancels.end(frame.id);
    const cause = new Error(`the node did not answer within ${this.#deadlineFor(frame)} ms`);
    this.answer(this.#host.sockets.replyTo(ws), frame.id, failure(new OutcomeUnknownError(frame.method, cause)), true);
  }

  #finish(ws: WebSocket, frame: CallFrame, result: MeshResult): void {
    const cancelled = this.cancels.end(frame.id);
    const stream = result.ok ? result.stream : undefined;
    if (!this.#running.delete(frame.id)) {
      if (stream) release(stream, true); // given up already: the client has its answer
      return;
    }
    const reply = this.#host.sockets.replyTo(ws);
    this.answer(reply, frame.id, stream ? this.#openStream(reply, frame, stream, cancelled) : result, true);
  }

  /** A call answered with a stream: it starts sending (streams.ts), unless the client cancelled it meanwhile or has too many open. */
  #openStream(ws: WebSocket | undefined, frame: CallFrame, stream: StreamSource, cancelled: boolean): MeshResult & { window?: number } {
    if (cancelled) {
      release(stream, true);
      return failure(new CancelledError(frame.method));
    }
    const { maxStreams } = this.#host.config();
    const window = this.streams.open(ws, frame.id, frame.method, stream, frame.streamWindow ?? DEFAULTS.streamWindow);
    if (window === undefined) {
      return failure(new LimitExceededError('maxStreams', maxStreams, 'this client has that many streams open; read them to the end or cancel some (break out of their for await) first.'));
    }
    return { ok: true, result: '', stream, window };
  }
}
