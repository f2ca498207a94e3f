/**
 * ClientGateway: one Durable Object per client identity (`{sub}.{tabId}`).
 *
 * It stores nothing but the grace alarm: whether the client is connected, in
 * its grace period or gone is derived from `ctx.getWebSockets()`, the alarm
 * and socket attachments. During a grace period it also stores its epoch and
 * remembered answers, so a resend after an eviction gets the real answer
 * (see grace-memory.ts). In memory it keeps only what makes calls settle
 * exactly once — calls running, answers recently sent, calls to the client
 * waiting for an answer — and every one of those maps is bounded.
 */
import { DurableObject } from 'cloudflare:workers';
import {
  OutcomeUnknownError, ClientDisconnectedError, ClientTimeoutError, LimitExceededError, MeshError, TokenExpiredError, UnknownBindingError,
} from '../protocol/errors.js';
import {
  SUPERSEDED_REASON, WS_CLOSE_INTERNAL, WS_CLOSE_SUPERSEDED, WS_CLOSE_TOKEN_EXPIRED, WS_CLOSE_TOO_LARGE, WS_CLOSE_FORBIDDEN, WS_CLOSE_RATE_LIMITED,
  WS_CLOSE_TOO_MANY_CONNECTIONS,
} from '../protocol/close-codes.js';
import { decodeClientFrame, encodeFrame, type FrameError, type CallFrame, type CallTarget, type IncomingCallResponseFrame, type Origin } from '../protocol/frames.js';
import { isDurationMs } from '../protocol/limits.js';
import { HEARTBEAT_PING, HEARTBEAT_PONG, PROTOCOL_VERSION } from '../protocol/wire.js';
import { encodeError } from '../protocol/codec.js';
import { AnswerMemory } from '../protocol/answer-memory.js';
import type { CallContext, ClientCallEnvelope, MeshResult, NotifyResult } from '../node/envelope.js';
import { callNode, callNodeBurst, resolveTarget, type NodeStub } from '../node/targets.js';
import { configuredMs, defaultGatewayConfig, type GatewayConfig } from './config.js';
import { readIdentity, type VerifiedIdentity } from './identity.js';
import { isUpgrade, refuseUpgrade, upgradeResponse } from './upgrade.js';
import { chunksBySize, MAX_CALL_DEADLINE_MS, rpcFailure, stubKey, withoutProtoKeys } from './calls.js';
import { echoableCode, OPEN, safeClose, safeSend } from './sockets.js';
import { Deadlines } from './deadlines.js';
import { FrameBuckets } from './frame-rate.js';
import { isNotificationId, notificationId, PendingNotifications } from './notifications.js';
import { GraceMemory } from './grace-memory.js';
import { releaseIdentity } from '../identities/admission.js';

interface SocketInfo extends VerifiedIdentity {
  /** the gateway closed this socket itself (superseded, too large, token expired) */
  closedByGateway?: true;
}

/** A client → mesh call read from a socket and not yet sent. */
type PendingCall = [ws: WebSocket, frame: CallFrame, context: CallContext];

interface WaitingClientCall {
  /** the encoded `incoming_call` frame, resent as is on a new socket */
  frame: string;
  instanceName: string;
  resolve(result: MeshResult): void;
}

export interface CallToMesh {
  to: CallTarget;
  method: string;
  context: CallContext;
}

export interface CallToClient {
  instanceName: string;
  method: string;
  context: CallContext;
}

function tokenExpired(info: SocketInfo): boolean {
  return info.exp !== undefined && Date.now() >= info.exp * 1000;
}

export class ClientGateway<Env = unknown> extends DurableObject<Env> {
  /** Override in a subclass (or assign in its constructor) to change limits and timings. */
  protected config: GatewayConfig = defaultGatewayConfig();

  /** client → mesh calls now running, by call id, each given up at its deadline */
  readonly #running = new Deadlines<string>();
  /** encoded answers to recent client → mesh calls, by call id, bounded by count and bytes */
  readonly #answered = new AnswerMemory(() => ({ count: this.config.rememberedCallIds, bytes: this.config.rememberedAnswerBytes }));
  /** frames each socket may still send (config.framesPerSecond, config.frameBurst) */
  readonly #frameBuckets = new FrameBuckets();
  /** mesh → client calls waiting for the client's answer, by incoming call id, each timed out at its deadline */
  readonly #waiting = new Deadlines<string, WaitingClientCall>();
  /** mesh → client notifications not answered yet (no deadline: see notifications.ts) */
  readonly #notifications = new PendingNotifications();
  readonly #socketInfo = new WeakMap<WebSocket, SocketInfo>();
  /** The socket last seen open: saves a getWebSockets() scan per frame; re-checked on every use, rebuilt after hibernation. */
  #current: WebSocket | undefined;
  /** Calls taken from the frames of this burst, sent into the mesh together once the burst is read (see #dispatchSoon). */
  #toDispatch: PendingCall[] = [];
  readonly #stubs = new Map<string, NodeStub>();
  /** Durable Object bindings whose class said it accepts bursts (MeshDurableObject.acceptsCallBursts) */
  readonly #burstBindings = new Set<string>();
  readonly #idPrefix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}-`;
  #nextIncomingId = 0;
  /** This incarnation of the gateway's memory: a client that sees another epoch knows it was lost (restored from storage after an eviction in a grace period). */
  #epoch = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;

  readonly #graceMemory: GraceMemory;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.#graceMemory = new GraceMemory(ctx.storage);
    // Heartbeats are answered by the runtime without waking the gateway.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_PING, HEARTBEAT_PONG));
  }

  // ── hooks for applications ────────────────────────────────────────────────

  /** Before a socket is accepted. Throw to refuse it (closed with 4403 and your message); return claims to add them. */
  protected onBeforeAccept(_identity: VerifiedIdentity, _request: Request): void | Record<string, unknown> | Promise<void | Record<string, unknown>> {}

  /** Before a client's call goes into the mesh. Throw to reject it; mutate `call.context.state` to enrich it. */
  protected onBeforeCallToMesh(_call: CallToMesh): void | Promise<void> {}

  /** Before a mesh call goes to the client. Throw to reject it. */
  protected onBeforeCallToClient(_call: CallToClient): void | Promise<void> {}

  // ── connection lifecycle ──────────────────────────────────────────────────

  override async fetch(request: Request): Promise<Response> {
    if (!isUpgrade(request)) return new Response('The gateway only accepts WebSocket upgrades.', { status: 426 });
    const identity = readIdentity(request);
    if (!identity) return new Response('Missing verified identity: reach the gateway through createMeshWorker.', { status: 400 });

    let extraClaims: void | Record<string, unknown>;
    try {
      extraClaims = await this.onBeforeAccept(identity, request);
    } catch (error) {
      return refuseUpgrade(request, WS_CLOSE_FORBIDDEN, String((error as Error)?.message ?? error));
    }
    const info: SocketInfo = { ...identity, claims: { ...identity.claims, ...(extraClaims ?? {}) } };
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    // Tried before anything changes: an identity workerd cannot keep (over 16 KiB serialized)
    // must not cost the live socket its place.
    try {
      server.serializeAttachment(info);
    } catch {
      return refuseUpgrade(request, WS_CLOSE_FORBIDDEN, 'Token claims too large');
    }

    const graceAlarm = await this.ctx.storage.getAlarm();
    if (graceAlarm !== null) await this.#restoreGraceMemory();
    // No await from here to the accept: concurrent upgrades cannot interleave.
    const previous = this.ctx.getWebSockets();
    // Closed sockets whose client never answers stay until their TCP connection ends: workerd cannot drop them.
    const closing = previous.filter((ws) => !this.#isOpen(ws)).length;
    if (closing >= this.config.maxClosingSockets) {
      return refuseUpgrade(request, WS_CLOSE_TOO_MANY_CONNECTIONS, `Too many connections of this tab still closing (limit ${this.config.maxClosingSockets}); retry later`);
    }
    // The gateway still remembers this client if a socket is open or the grace period runs; a
    // socket still closing does not count (it may linger long after the gateway let it go).
    const remembered = previous.some((ws) => this.#isOpen(ws)) || graceAlarm !== null;
    for (const old of previous) this.#closeByGateway(old, WS_CLOSE_SUPERSEDED, SUPERSEDED_REASON, true);

    this.ctx.acceptWebSocket(server);
    this.#current = server;
    server.serializeAttachment(info);
    this.#socketInfo.set(server, info);
    if (graceAlarm !== null) {
      void this.ctx.storage.deleteAlarm();
      void this.#graceMemory.clear();
    }
    if (!remembered) {
      this.#forgetAnswers();
      this.#notifications.clear();
    }

    safeSend(server, encodeFrame({
      type: 'connection_status', subscriptionRequired: !remembered, instanceName: identity.instanceName, sub: identity.sub,
      protocol: PROTOCOL_VERSION, epoch: this.#epoch, maxFrameBytes: this.config.maxFrameBytes,
    }));
    // Calls to the client that were sent on a socket now gone follow it here.
    for (const waiting of this.#waiting.values()) safeSend(server, waiting.frame);
    for (const frame of this.#notifications.frames()) safeSend(server, frame);
    return upgradeResponse(request, client);
  }

  /**
   * Closes a socket from the gateway's side and marks it, so its close event —
   * which can come tens of seconds later — never starts a grace period again.
   * A superseded socket is told in band first: its close event can lag.
   */
  #closeByGateway(ws: WebSocket, code: number, reason: string, superseded = false): void {
    if (superseded && this.#isOpen(ws)) safeSend(ws, encodeFrame({ type: 'superseded', reason }));
    const info = this.#info(ws);
    if (info && !info.closedByGateway) {
      const closed: SocketInfo = { ...info, closedByGateway: true };
      try {
        ws.serializeAttachment(closed);
      } catch {
        // a socket already closed takes no attachment; the in-memory mark still holds
      }
      this.#socketInfo.set(ws, closed);
    }
    safeClose(ws, code, reason);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    // Complete the close handshake: workerd does not echo a client's close on a hibernatable socket here.
    safeClose(ws, echoableCode(code), reason);
    if (this.#info(ws)?.closedByGateway) return; // its grace period, if any, was decided when the gateway closed it
    await this.#afterSocketGone(ws);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    safeClose(ws, WS_CLOSE_INTERNAL, 'WebSocket error');
    if (this.#info(ws)?.closedByGateway) return;
    await this.#afterSocketGone(ws);
  }

  /** Starts the grace period unless another socket is open — the gateway's own state decides, never the client's close code. */
  async #afterSocketGone(gone: WebSocket): Promise<void> {
    if (this.#activeSocket(gone)) return;
    this.#graceMemory.save(this.#epoch, this.#answered.entries());
    await this.ctx.storage.setAlarm(Date.now() + this.config.gracePeriodMs);
  }

  /** The grace period ended without a reconnect: calls to the client fail for good. */
  override async alarm(): Promise<void> {
    if (this.#activeSocket()) return;
    for (const waiting of this.#waiting.values()) {
      waiting.resolve({ ok: false, error: encodeError(new ClientDisconnectedError(waiting.instanceName)) });
    }
    this.#waiting.clear();
    this.#notifications.clear();
    this.#forgetAnswers();
    await this.#graceMemory.clear();
    await releaseIdentity(this.env, this.config.identityLimiterBinding, this.ctx.id.name);
  }

  /** Internal RPC entry for the IdentityLimiter: is this identity live (a socket open, or in its grace period)? */
  async __meshgateIsLive(): Promise<boolean> {
    return this.#activeSocket() !== undefined || (await this.ctx.storage.getAlarm()) !== null;
  }

  /** After an eviction in the grace period: the memory saved when the socket dropped, epoch included, so resends get their real answers. */
  async #restoreGraceMemory(): Promise<void> {
    const saved = await this.#graceMemory.restore();
    if (!saved) return;
    this.#epoch = saved.epoch;
    for (const [id, answer] of saved.answers) if (this.#answered.get(id) === undefined) this.#answered.remember(id, answer);
  }

  /** The open socket, if any; a closing one never counts (it may linger in getWebSockets()). */
  #activeSocket(except?: WebSocket): WebSocket | undefined {
    const current = this.#current;
    if (current !== undefined && current !== except && this.#isOpen(current)) return current;
    return (this.#current = this.ctx.getWebSockets().find((ws) => ws !== except && this.#isOpen(ws)));
  }

  /** Open and not closed by the gateway: after hibernation workerd reports a socket it closed, still unanswered, as OPEN again. */
  #isOpen(ws: WebSocket): boolean {
    return ws.readyState === OPEN && !this.#info(ws)?.closedByGateway;
  }

  #info(ws: WebSocket): SocketInfo | undefined {
    let info = this.#socketInfo.get(ws);
    if (!info) {
      info = (ws.deserializeAttachment() ?? undefined) as SocketInfo | undefined;
      if (info) this.#socketInfo.set(ws, info);
    }
    return info;
  }

  // ── frames from the client ───────────────────────────────────────────────

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (!this.#isOpen(ws)) return; // a superseded socket still talking
    if (!this.#frameBuckets.take(ws, this.config)) {
      // Past its burst: acting on more (or answering each with an error) would let one socket
      // take the gateway's time and make the runtime buffer output for a client that may not read.
      this.#closeByGateway(ws, WS_CLOSE_RATE_LIMITED, `Rate limit exceeded (${this.config.framesPerSecond} frames/s, bursts of ${this.config.frameBurst}): send fewer frames`);
      await this.#afterSocketGone(ws);
      return;
    }
    if (typeof message !== 'string') {
      this.#sendError(ws, 'binary_not_supported', 'Binary frames are not part of protocol v1; send JSON text frames.');
      return;
    }
    if (message.length > this.config.maxFrameBytes) {
      this.#closeByGateway(ws, WS_CLOSE_TOO_LARGE, `Frame too large (limit ${this.config.maxFrameBytes})`);
      await this.#afterSocketGone(ws);
      return;
    }
    let frame;
    try {
      frame = decodeClientFrame(message, this.config.maxCallIdLength);
    } catch (error) {
      const protocolError = error as FrameError;
      if (protocolError.callId !== undefined && protocolError.frameType === 'call') {
        this.#answerCall(ws, protocolError.callId, { ok: false, error: encodeError(protocolError) }, false);
      } else {
        this.#sendError(ws, protocolError.code, protocolError.message, protocolError.callId);
      }
      return;
    }

    const info = this.#info(ws)!;
    if (tokenExpired(info)) {
      if (frame.type === 'call') {
        // A resend of a call this gateway knows is answered as usual; a new one did not run:
        // the client keeps it and sends it again after refreshing its token.
        if (!this.#replayAnswer(ws, frame.id) && !this.#running.has(frame.id)) this.#answerCall(ws, frame.id, { ok: false, error: encodeError(new TokenExpiredError()) }, false, true);
      } else {
        this.#takeClientAnswer(ws, frame);
      }
      await this.#expire(ws);
      return;
    }
    if (frame.type === 'call') this.#takeCall(ws, info, frame);
    else this.#takeClientAnswer(ws, frame);
  }

  /** Closes a socket whose token expired (4401: the client refreshes and reconnects) and starts the grace period. */
  async #expire(ws: WebSocket): Promise<void> {
    this.#closeByGateway(ws, WS_CLOSE_TOKEN_EXPIRED, 'Token expired');
    await this.#afterSocketGone(ws);
  }

  #sendError(ws: WebSocket, code: string, message: string, id?: string): void {
    safeSend(ws, encodeFrame({ type: 'error', code, message, ...(id === undefined ? {} : { id }) }));
  }

  // ── client → mesh ──────────────────────────────────────────────────────────

  #takeCall(ws: WebSocket, info: SocketInfo, frame: CallFrame): void {
    if (this.#replayAnswer(ws, frame.id)) return; // a resend of a finished call: answered from memory
    if (this.#running.has(frame.id)) return; // a resend of a running call: its answer goes to the open socket when done
    if (frame.resentFrom !== undefined && frame.resentFrom !== this.#epoch) {
      // Sent to an earlier incarnation of this gateway, whose memory died with it: it may have run.
      this.#answerCall(ws, frame.id, { ok: false, error: encodeError(new OutcomeUnknownError(frame.method)) }, true);
      return;
    }
    if (this.#running.size >= this.config.maxInFlightCalls) {
      this.#answerCall(ws, frame.id, {
        ok: false,
        error: encodeError(new LimitExceededError('maxInFlightCalls', this.config.maxInFlightCalls, 'wait for earlier calls to settle before sending more.')),
      }, false);
      return;
    }
    const origin: Origin = { kind: 'client', gateway: info.gateway, instance: info.instanceName, sub: info.sub };
    const context: CallContext = {
      origin, caller: origin, chain: [origin],
      originAuth: { sub: info.sub, claims: info.claims },
      state: this.#clientState(frame.state),
    };
    let deadline: number;
    try {
      deadline = this.#deadlineFor(frame);
    } catch (error) {
      this.#answerCall(ws, frame.id, { ok: false, error: encodeError(error) }, false);
      return;
    }
    // A node that never answers must not hold this slot forever: past the deadline the call is given up.
    this.#running.add(frame.id, deadline, () => this.#giveUp(ws, frame));
    // The client gives up after its timeoutMs (counted from before it sent): no resend to answer after that.
    this.#graceMemory.noteCall(frame.id, Date.now() + Math.min(frame.timeoutMs ?? deadline, deadline), this.config.rememberedCallIds);
    this.#dispatchSoon(ws, frame, context);
  }

  /** The client's state, without the keys the application reserves for the server. */
  #clientState(state: Record<string, unknown> | undefined): Record<string, unknown> {
    const clean: Record<string, unknown> = {};
    if (!state) return clean;
    for (const [key, value] of Object.entries(state)) {
      if (key === '__proto__' || this.config.reservedStateKeys.includes(key)) continue;
      clean[key] = withoutProtoKeys(value);
    }
    return clean;
  }

  /**
   * A call with no other running goes into the mesh at once. Calls that
   * arrive while others run (a client with many in flight) are all read
   * first and go out together on the next timer turn, in arrival order:
   * issuing RPCs in one turn costs the runtime about a quarter less per call
   * than one turn each (bench: throughput), and a lone call waits for no timer.
   */
  #dispatchSoon(ws: WebSocket, frame: CallFrame, context: CallContext): void {
    if (this.#running.size === 1 && this.#toDispatch.length === 0) {
      if (this.#passedHook(ws, frame, context)) void this.#sendCall(ws, frame, context);
      return;
    }
    this.#toDispatch.push([ws, frame, context]);
    if (this.#toDispatch.length === 1) setTimeout(() => this.#dispatchBurst(), this.config.burstWindowMs);
  }

  /**
   * Sends a burst in arrival order, all RPCs issued in one turn. Calls to the
   * same Worker, or to a Durable Object that accepts bursts, share one RPC
   * (results come back as they complete, see dispatchBurst); any other
   * Durable Object gets one RPC per call, so its input gate keeps one call's
   * storage reads and writes from interleaving with another's. A call whose
   * hook is async goes on its own once the hook is done.
   */
  #dispatchBurst(): void {
    const burst = this.#toDispatch;
    this.#toDispatch = [];
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
      if (group.length > 1 && (to.instance === undefined || this.#burstBindings.has(to.binding))) {
        for (const chunk of chunksBySize(group)) {
          if (chunk.length > 1) void this.#sendBatch(chunk);
          else void this.#sendCall(...chunk[0]!);
        }
      } else {
        for (const call of group) void this.#sendCall(...call);
      }
    }
  }

  /**
   * Runs the application's onBeforeCallToMesh. True: the call may go now. False: it is taken care
   * of — answered with the hook's error, or sent on its own once an async hook is done (the default
   * no-op hook costs no extra turn).
   */
  #passedHook(ws: WebSocket, frame: CallFrame, context: CallContext): boolean {
    const fail = (error: unknown): void => this.#finishCall(ws, frame, { ok: false, error: encodeError(error) });
    let hook: void | Promise<void>;
    try {
      hook = this.onBeforeCallToMesh({ to: frame.to, method: frame.method, context });
    } catch (error) {
      fail(error);
      return false;
    }
    if (hook === undefined) return true;
    Promise.resolve(hook).then(() => this.#sendCall(ws, frame, context), fail);
    return false;
  }

  async #sendCall(ws: WebSocket, frame: CallFrame, context: CallContext): Promise<void> {
    let result: MeshResult;
    try {
      result = await callNode(this.#stub(frame.to), { target: frame.to, method: frame.method, args: frame.args, context, deadlineMs: this.#deadlineFor(frame) });
      if (result.acceptsBursts) this.#burstBindings.add(frame.to.binding);
    } catch (error) {
      // An RPC that threw may have broken its stub (e.g. the target was reset): build a fresh one next time.
      this.#stubs.delete(stubKey(frame.to));
      result = { ok: false, error: encodeError(rpcFailure(error, frame.method)) };
    }
    this.#finishCall(ws, frame, result);
  }

  /** Many calls to one target in one RPC; each is answered as its result arrives. */
  async #sendBatch(group: PendingCall[]): Promise<void> {
    const open = new Set(group.keys());
    const finish = (index: number, result: MeshResult): void => {
      const call = group[index];
      if (!call || !open.delete(index)) return;
      this.#finishCall(call[0], call[1], result);
    };
    const to = group[0]![1].to;
    try {
      const envelopes = group.map(([, frame, context]) => ({ target: frame.to, method: frame.method, args: frame.args, context, deadlineMs: this.#deadlineFor(frame) }));
      const accepted = await callNodeBurst(this.#stub(to), envelopes, (results) => {
        for (const [index, result] of results) finish(index, result);
      });
      // Only an explicit false is a refusal: a node of an earlier meshgate version answers undefined after running the burst.
      if (accepted === false) {
        // The class does not accept bursts (a new version of it, or another instance mid-deployment):
        // it ran nothing, so each call goes on its own.
        this.#burstBindings.delete(to.binding);
        for (const call of group) void this.#sendCall(...call);
        return;
      }
      if (open.size > 0) throw new MeshError('The node finished a batch without answering every call.');
    } catch (error) {
      this.#stubs.delete(stubKey(to));
      for (const index of [...open]) finish(index, { ok: false, error: encodeError(rpcFailure(error, group[index]![1].method)) });
    }
  }

  /** At least callDeadlineMs, and never before the caller's own deadline (plus a margin), capped at 15 minutes. */
  #deadlineFor(frame: CallFrame): number {
    const callDeadlineMs = configuredMs('callDeadlineMs', this.config.callDeadlineMs);
    if (frame.timeoutMs === undefined) return callDeadlineMs;
    return Math.min(Math.max(callDeadlineMs, frame.timeoutMs + 5_000), MAX_CALL_DEADLINE_MS);
  }

  /** The node did not answer within callDeadlineMs: free the slot; the call may still run, so the answer is "unknown". */
  #giveUp(ws: WebSocket, frame: CallFrame): void {
    const cause = new Error(`the node did not answer within ${this.#deadlineFor(frame)} ms`);
    this.#answerCall(this.#replySocket(ws), frame.id, { ok: false, error: encodeError(new OutcomeUnknownError(frame.method, cause)) }, true);
  }

  #finishCall(ws: WebSocket, frame: CallFrame, result: MeshResult): void {
    if (!this.#running.delete(frame.id)) return; // given up already: the client has its answer
    this.#answerCall(this.#replySocket(ws), frame.id, result, true);
  }

  /** The socket a call came on, if still open (it is then the only open one); else whichever is open now. */
  #replySocket(ws: WebSocket): WebSocket | undefined {
    return this.#isOpen(ws) ? ws : this.#activeSocket();
  }

  #stub(to: CallTarget): NodeStub {
    const { nodeBindings, gatewayBindings } = this.config;
    if (nodeBindings && !nodeBindings.includes(to.binding)) throw new UnknownBindingError(to.binding, 'it is not in this gateway\'s nodeBindings');
    const key = stubKey(to);
    let stub = this.#stubs.get(key);
    if (!stub) {
      stub = resolveTarget(this.env, to, gatewayBindings);
      if (this.#stubs.size >= this.config.maxCachedStubs) this.#stubs.delete(this.#stubs.keys().next().value!);
      this.#stubs.set(key, stub);
    }
    return stub;
  }

  #answerCall(ws: WebSocket | undefined, id: string, result: MeshResult, remember: boolean, retryAfterReconnect = false): void {
    const answer = result.ok ? { ok: true as const, result: result.result } : { ok: false as const, error: result.error };
    const text = encodeFrame({ type: 'call_response', id, ...answer, ...(retryAfterReconnect ? { retryAfterReconnect: true } : {}) });
    if (remember) {
      this.#answered.remember(id, text, ws);
      if (!ws) this.#graceMemory.append([[id, text]]); // in a grace period: kept in storage too, in case the gateway is evicted
    }
    if (ws) safeSend(ws, text); // no socket: the client resends on reconnect and gets the remembered answer
  }

  /**
   * Answers a resent call id from memory; true if it was remembered. Each answer goes out at most
   * once per socket: a repeat on the same socket gets a short error frame instead of the answer again.
   */
  #replayAnswer(ws: WebSocket, id: string): boolean {
    const replay = this.#answered.replay(id, ws);
    if (replay === undefined) return false;
    if (replay === null) this.#sendError(ws, 'duplicate_call_id', 'This call was already answered on this connection; use a new id for a new call.', id);
    else safeSend(ws, replay);
    return true;
  }

  #forgetAnswers(): void {
    this.#answered.clear();
  }

  /** Sizes of the in-memory maps, each bounded by `config` (for monitoring and tests). */
  protected memoryStats(): { running: number; answered: number; answeredSize: number; waiting: number; notifications: number; stubs: number } {
    return {
      running: this.#running.size, answered: this.#answered.size, answeredSize: this.#answered.bytes, waiting: this.#waiting.size,
      notifications: this.#notifications.size, stubs: this.#stubs.size,
    };
  }

  // ── mesh → client ──────────────────────────────────────────────────────────

  #takeClientAnswer(ws: WebSocket, frame: IncomingCallResponseFrame): void {
    // Nobody waits for a notification's answer: it only frees its place.
    if (this.#notifications.answer(frame.id) || isNotificationId(frame.id)) return;
    const waiting = this.#waiting.get(frame.id);
    if (!waiting) {
      this.#sendError(ws, 'unknown_call_id', 'No incoming call with this id is waiting: it was never sent, was already answered, or timed out.', frame.id);
      return;
    }
    this.#waiting.delete(frame.id);
    waiting.resolve(frame.ok ? { ok: true, result: frame.result } : { ok: false, error: frame.error });
  }

  /**
   * What every mesh → client call checks first: its timeout, the hook, an
   * expired token, and whether the client is there at all (socket open or
   * grace period running). Returns the timeout; throws the refusal.
   */
  async #admitCallToClient(envelope: ClientCallEnvelope): Promise<number> {
    const timeoutMs = envelope.timeoutMs === undefined ? configuredMs('clientResponseTimeoutMs', this.config.clientResponseTimeoutMs) : envelope.timeoutMs;
    if (!isDurationMs(timeoutMs)) throw new RangeError(`A call to a client needs a positive timeoutMs, got ${String(timeoutMs)}.`);
    const hook = this.onBeforeCallToClient({ instanceName: envelope.instanceName, method: envelope.method, context: envelope.context });
    if (hook !== undefined) await hook;
    // A client whose token expired gets no more calls: it must refresh and reconnect (the call waits for that).
    const active = this.#activeSocket();
    const activeInfo = active && this.#info(active);
    if (active && activeInfo && tokenExpired(activeInfo)) await this.#expire(active);
    if (!this.#activeSocket() && (await this.ctx.storage.getAlarm()) === null) throw new ClientDisconnectedError(envelope.instanceName);
    return timeoutMs;
  }

  /**
   * Internal RPC entry: a node notifies this gateway's client and does not
   * wait for its answer. Answered as soon as the frame is on the socket (or
   * queued for a client in its grace period), so the node holds no pending
   * RPC while the client runs its handler. Not callable by clients.
   */
  async __meshgateNotifyClient(envelope: ClientCallEnvelope): Promise<NotifyResult> {
    try {
      const timeoutMs = await this.#admitCallToClient(envelope);
      const now = Date.now();
      // A client still sitting on an earlier notification past the timeout is silent: it gets no more until it answers.
      if (this.#notifications.oldestWaitMs(now) > timeoutMs) throw new ClientTimeoutError(envelope.instanceName, timeoutMs);
      const id = notificationId(this.#idPrefix, ++this.#nextIncomingId);
      const frame = encodeFrame({
        type: 'incoming_call', id, method: envelope.method, args: envelope.args, origin: envelope.context.origin, chain: envelope.context.chain,
      });
      const { maxPendingNotifications, maxPendingNotificationBytes } = this.config;
      if (!this.#notifications.add(id, frame, now, maxPendingNotifications, maxPendingNotificationBytes)) {
        throw new LimitExceededError('maxPendingNotifications', maxPendingNotifications,
          `the client has ${this.#notifications.size} unanswered notifications (${this.#notifications.bytes} bytes, at most ${maxPendingNotificationBytes}); this one was not sent. Notify less often or with less data.`);
      }
      const active = this.#activeSocket();
      if (active) safeSend(active, frame); // otherwise it goes out when the client reconnects
      return { ok: true, queued: !active };
    } catch (error) {
      return { ok: false, error: encodeError(error instanceof Error ? error : new MeshError(String(error))) };
    }
  }

  /** Internal RPC entry: a node calls this gateway's client. Not callable by clients. */
  async __meshgateCallClient(envelope: ClientCallEnvelope): Promise<MeshResult> {
    let timeoutMs: number;
    try {
      timeoutMs = await this.#admitCallToClient(envelope);
      if (this.#waiting.size >= this.config.maxPendingClientCalls) {
        throw new LimitExceededError('maxPendingClientCalls', this.config.maxPendingClientCalls, 'the client has too many unanswered calls; retry later.');
      }
    } catch (error) {
      return { ok: false, error: encodeError(error instanceof Error ? error : new MeshError(String(error))) };
    }
    const id = `${this.#idPrefix}${++this.#nextIncomingId}`;
    const frame = encodeFrame({
      type: 'incoming_call', id, method: envelope.method, args: envelope.args, origin: envelope.context.origin, chain: envelope.context.chain,
    });
    return new Promise<MeshResult>((resolve) => {
      this.#waiting.add(id, timeoutMs, () => {
        resolve({ ok: false, error: encodeError(new ClientTimeoutError(envelope.instanceName, timeoutMs)) });
      }, { frame, instanceName: envelope.instanceName, resolve });
      const active = this.#activeSocket();
      if (active) safeSend(active, frame); // otherwise it goes out when the client reconnects
    });
  }
}
