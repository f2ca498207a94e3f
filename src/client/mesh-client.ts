/**
 * MeshClient: one WebSocket to this client's gateway, kept correct under
 * reconnects, duplicate tabs, flaky networks and supersession.
 *
 * What to do when is decided by the pure state machine in `connection.ts`;
 * this class feeds it events (app calls, socket events, timers, token results)
 * and carries out the effects it returns: sockets, timers, calls, callbacks.
 */
import { ClientClosedError, OutcomeUnknownError } from '../protocol/errors.js';
import { decodeServerMessage, type CallTarget, type ServerFrame } from '../protocol/frames.js';
import { DEFAULTS, DEFAULT_GATEWAY_BINDING } from '../protocol/limits.js';
import { HEARTBEAT_PONG } from '../protocol/wire.js';
import { WS_CLOSE_UNSUPPORTED_PROTOCOL } from '../protocol/close-codes.js';
import { OfferedVersions } from './versions.js';
import { createStub, type Stub } from '../protocol/stub.js';
import { RetryTimer } from './backoff.js';
import {
  attempting, currentSocket, initialConnection, publicState, refusal, step,
  type Connection, type ConnectionEvent, type ConnectionState, type Effect, type SocketId,
} from './connection.js';
import { credentialsFailure, describeProblem, stoppedError } from './connection-errors.js';
import { IncomingCalls, type IncomingContext } from './incoming.js';
import { ClientSockets } from './client-sockets.js';
import { onNetworkReturn } from './network-return.js';
import { Callbacks } from './callbacks.js';
import type { MeshClientOptions } from './options.js';
import { OutgoingCalls, type CallOptions } from './outgoing.js';
import { StreamHub } from './stream-hub.js';
import { FrameOutlet } from './frame-outlet.js';
import { gatewayUrl, resolveSocketClass, type SocketLike } from './socket.js';
import { TabIdentity } from './tab-id.js';
import { readTokenSubject, TokenSource } from './token.js';

export type { ConnectionState } from './connection.js';
export type { MeshClientOptions } from './options.js';

export class MeshClient<Handlers extends object = object> {
  readonly #options: MeshClientOptions<Handlers>;
  readonly #callbacks: Callbacks;
  readonly #tokens: TokenSource;
  readonly #tab = new TabIdentity();
  readonly #outgoing: OutgoingCalls;
  /** every frame goes out through it (frame-outlet.ts) */
  readonly #frames = new FrameOutlet(() => this.#connected());
  readonly #streams = new StreamHub((text) => this.#frames.send(text));
  readonly #incoming: IncomingCalls;
  readonly #versions: OfferedVersions;

  #connection: Connection;
  readonly #sockets: ClientSockets;
  /** what connect() returns while an attempt is under way */
  #attempt: { promise: Promise<void>; resolve: () => void } | undefined;
  readonly #retry: RetryTimer;
  #instanceName: string | undefined;
  #removeBrowserListeners: (() => void) | undefined;

  constructor(options: MeshClientOptions<Handlers>) {
    this.#options = options;
    this.#callbacks = new Callbacks(options as MeshClientOptions<object>);
    this.#versions = new OfferedVersions(options.protocolVersions);
    this.#tokens = new TokenSource(options.accessToken, options.refresh, options.fetch, options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs);
    this.#connection = initialConnection({ canRefresh: this.#tokens.canRefresh });
    this.#outgoing = new OutgoingCalls(options.maxQueuedCalls ?? DEFAULTS.maxQueuedCalls, options.callTimeoutMs ?? DEFAULTS.callTimeoutMs,
      options.maxFrameBytes ?? DEFAULTS.maxFrameBytes, this.#streams.reading, () => this.#callbacks.connectionProblem);
    this.#incoming = new IncomingCalls(options.handlers, options.allowClientOrigins ?? false, options.rememberedCallIds ?? DEFAULTS.rememberedCallIds,
      (error) => this.#callbacks.report(error), options.maxConcurrentIncomingCalls ?? DEFAULTS.maxConcurrentIncomingCalls,
      () => this.#outgoing.maxFrameChars, (id, source) => this.#streams.producing.start(id, source),
      (origin) => origin.instance === this.#instanceName && origin.gateway === (options.gateway ?? DEFAULT_GATEWAY_BINDING));
    this.#instanceName = options.instanceName;
    this.#retry = new RetryTimer(options.reconnectMinDelayMs ?? DEFAULTS.reconnectMinDelayMs, options.reconnectMaxDelayMs ?? DEFAULTS.reconnectMaxDelayMs,
      () => void this.#dispatch({ type: 'retryDue' }));
    this.#sockets = new ClientSockets(resolveSocketClass(options.WebSocket), {
      intervalMs: options.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs,
      timeoutMs: options.heartbeatTimeoutMs ?? DEFAULTS.heartbeatTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    }, (event) => void this.#dispatch(event), (socket, data) => this.#onMessage(socket, data));
    if (options.browserEvents !== false) {
      this.#removeBrowserListeners = onNetworkReturn(() => this.#dispatch({
        type: 'networkReturned', hidden: typeof document !== 'undefined' && document.visibilityState === 'hidden',
      }));
    }
    if (options.autoConnect !== false) void this.connect().catch((error) => this.#callbacks.report(error));
  }

  // ── public API ───────────────────────────────────────────────────────────

  get state(): ConnectionState {
    return publicState(this.#connection);
  }

  /** `{sub}.{tabId}`, known once the first connect resolved it. */
  get instanceName(): string | undefined {
    return this.#instanceName;
  }

  /** The incoming call whose handler is starting right now (read it synchronously at the top of a handler). */
  get incomingContext(): IncomingContext | undefined {
    return this.#incoming.current;
  }

  /** Unsettled outgoing calls (queued or in flight). */
  get pendingCalls(): number {
    return this.#outgoing.size;
  }

  /**
   * Opens the connection. Resolves once a socket is open and the gateway sent
   * its status, or when the attempt failed (the client then keeps retrying by
   * itself). Overlapping calls share one attempt; never two sockets.
   */
  connect(): Promise<void> {
    if (this.#connection.phase.name === 'closed') return Promise.reject(new ClientClosedError('This client was disconnected or disposed; create a new MeshClient.'));
    return this.#dispatch({ type: 'connect' });
  }

  /**
   * Replaces the current socket with a new one now (e.g. after a network
   * change). The old socket stays open until the new one is connected, so the
   * gateway sees a supersession and moves calls in flight to the new socket.
   */
  reconnect(): Promise<void> {
    if (this.#connection.phase.name === 'closed') return Promise.reject(new ClientClosedError());
    return this.#dispatch({ type: 'reconnect' });
  }

  /** Closes for good: no later event, timer or listener brings the client back; unsettled calls reject. */
  disconnect(): void {
    void this.#dispatch({ type: 'disconnect' });
  }

  [Symbol.dispose](): void {
    this.disconnect();
  }

  /**
   * A typed stub for a Durable Object (binding + instance) or a Worker
   * (binding only). `options` apply to every call made through it: a stub is
   * cheap, so make one per call to give that call its own `signal`.
   */
  node<T>(binding: string, instance?: string, options: CallOptions = {}): Stub<T> {
    const to: CallTarget = instance === undefined ? { binding } : { binding, instance };
    return createStub<T>((method, args) => this.call(to, method, args, options));
  }

  /**
   * Calls a method on a mesh node. Queues while disconnected; always settles
   * by the deadline. A method that returns a stream resolves to an async
   * iterable of its chunks. `options` may be just the deadline in ms.
   */
  call(to: CallTarget, method: string, args: unknown[], options: number | CallOptions = {}): Promise<unknown> {
    const stopped = refusal(this.#connection);
    if (stopped) return Promise.reject(stoppedError(stopped));
    // An argument the codec cannot carry rejects the returned promise (it is thrown inside its executor).
    return this.#outgoing.start(to, method, args, typeof options === 'number' ? { timeoutMs: options } : options, (frame, hooks) => this.#frames.send(frame, hooks));
  }

  /** Streams being read (results of calls that arrived as streams, not yet ended or cancelled). */
  get openStreams(): number {
    return this.#streams.reading.size;
  }

  // ── the interpreter ──────────────────────────────────────────────────────

  /**
   * Steps the state machine and carries out its effects. A callback may call
   * back into the client: that nested step sees the new state, and the core
   * ignores events about whatever the nested step left.
   */
  #dispatch(event: ConnectionEvent): Promise<void> {
    const before = this.#connection;
    const { state, effects } = step(before, event);
    this.#connection = state;
    const previous = publicState(before);
    const next = publicState(state);
    if (previous !== next) this.#callbacks.run(() => this.#options.onStateChange?.(next, previous));
    for (const effect of effects) this.#apply(effect);
    if (!attempting(this.#connection)) {
      this.#attempt?.resolve();
      this.#attempt = undefined;
    }
    return this.#attempt?.promise ?? Promise.resolve();
  }

  #apply(effect: Effect): void {
    // An effect that starts something is dropped if a callback has already moved the client on.
    const { phase } = this.#connection;
    switch (effect.type) {
      case 'fetchCredentials':
        if (phase.name !== 'authorizing' || phase.attempt !== effect.attempt) return;
        if (!this.#attempt) {
          let resolve!: () => void;
          this.#attempt = { promise: new Promise<void>((r) => (resolve = r)), resolve };
        }
        void this.#fetchCredentials(effect.attempt);
        return;
      case 'openSocket':
        if (currentSocket(this.#connection) === effect.socket) this.#sockets.open(effect.socket, this.#gatewayUrl(), this.#versions.subprotocols(effect.token));
        return;
      case 'startHeartbeat':
        return this.#sockets.opened(effect.socket);
      case 'closeSocket':
        this.#frames.socketGone();
        return this.#sockets.close(effect.socket, effect.code, effect.reason);
      case 'forgetSocket':
        this.#frames.socketGone();
        return this.#sockets.forget(effect.socket);
      case 'retireSocket':
        return this.#sockets.retire(effect.socket);
      case 'adoptStatus': {
        const { status } = effect;
        this.#sockets.connected();
        this.#instanceName = status.instanceName;
        // A new epoch means the gateway's memory is gone: calls it may have run cannot be resent safely.
        this.#outgoing.epoch = status.epoch;
        this.#outgoing.maxFrameChars = Math.min(this.#options.maxFrameBytes ?? DEFAULTS.maxFrameBytes, status.maxFrameBytes ?? Number.POSITIVE_INFINITY);
        this.#streams.reading.bufferChars = status.maxStreamBufferBytes;
        this.#frames.adopt(status, this.#outgoing.maxFrameChars);
        return;
      }
      case 'flushCalls':
        this.#outgoing.flush((frame, hooks) => this.#frames.send(frame, hooks), effect.subscriptionRequired, (method) => new OutcomeUnknownError(method));
        return this.#streams.connected(effect.subscriptionRequired);
      case 'failCalls':
        this.#outgoing.failAll(() => stoppedError(effect.because));
        return this.#streams.stopped(() => stoppedError(effect.because));
      case 'scheduleRetry':
        if (phase.name === 'backingOff') this.#retry.schedule(effect.retry);
        return;
      case 'cancelRetry':
        return this.#retry.cancel();
      case 'dropToken':
        return this.#tokens.invalidate();
      case 'notify':
        return this.#callbacks.notify(effect.notice);
      case 'report':
        return this.#callbacks.reportConnectionProblem(describeProblem(effect.problem, this.#gatewayUrl()), phase.name !== 'connected');
      case 'dispose':
        this.#tokens.abandon();
        this.#removeBrowserListeners?.();
        this.#removeBrowserListeners = undefined;
        this.#tab.close();
        return;
    }
  }

  // ── I/O ──────────────────────────────────────────────────────────────────

  async #fetchCredentials(attempt: SocketId): Promise<void> {
    let token: string;
    try {
      token = await this.#tokens.get();
      if (!this.#instanceName) this.#instanceName = `${readTokenSubject(token, this.#options.identity)}.${await this.#tab.resolve()}`;
    } catch (error) {
      void this.#dispatch({ type: 'credentialsFailed', attempt, failure: credentialsFailure(error) });
      return;
    }
    void this.#dispatch({ type: 'credentialsReady', attempt, token });
  }

  #onMessage(socket: SocketId, data: unknown): void {
    if (currentSocket(this.#connection) !== socket) return;
    this.#sockets.signOfLife();
    if (data === HEARTBEAT_PONG) return;
    let frames: ServerFrame[];
    try {
      frames = decodeServerMessage(String(data), (error) => this.#callbacks.report(error));
    } catch (error) {
      this.#callbacks.report(error);
      return;
    }
    for (const frame of frames) {
      if (currentSocket(this.#connection) !== socket) return; // superseded, or closed for a version, by an earlier frame of the batch
      this.#onFrame(socket, frame);
    }
  }

  #onFrame(socket: SocketId, frame: ServerFrame): void {
    switch (frame.type) {
      case 'connection_status': {
        // A server speaking a version this client does not is handled as its 4426: stop, say reload.
        // Only a socket's first status says that; a repeat is reported and ignored (connection.ts).
        const { phase } = this.#connection;
        const repeated = phase.name === 'connected' && phase.socket === socket;
        const problem = repeated ? undefined : this.#versions.problem(frame, this.#sockets.get(socket)?.protocol);
        if (problem) this.#sockets.get(socket)?.close(WS_CLOSE_UNSUPPORTED_PROTOCOL, 'Unsupported protocol');
        return void this.#dispatch(problem ? { type: 'closed', socket, code: WS_CLOSE_UNSUPPORTED_PROTOCOL, reason: problem } : { type: 'status', socket, status: frame });
      }
      case 'superseded':
        return void this.#dispatch({ type: 'superseded', socket });
      case 'call_response':
        if (!frame.ok && frame.retryAfterReconnect === true && this.#outgoing.requeue(frame.id)) return;
        this.#outgoing.answer(frame);
        return;
      case 'incoming_call':
        void this.#incoming.serve(frame, (text) => this.#frames.send(text));
        return;
      case 'error':
        this.#callbacks.report(new Error(`Gateway reported ${frame.code}: ${frame.message}`));
        return;
      default:
        this.#streams.take(frame);
    }
  }

  /** The connected socket, if any. */
  #connected(): SocketLike | undefined {
    const { phase } = this.#connection;
    return phase.name === 'connected' ? this.#sockets.get(phase.socket) : undefined;
  }

  #gatewayUrl(): string {
    return gatewayUrl(this.#options.url, this.#options.gateway ?? DEFAULT_GATEWAY_BINDING, this.#instanceName ?? '');
  }
}
