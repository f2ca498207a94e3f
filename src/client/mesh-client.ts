/**
 * MeshClient: one WebSocket to this client's gateway, kept correct under
 * reconnects, duplicate tabs, flaky networks and supersession.
 *
 * Every socket's handlers check that the socket is still the current one
 * before touching state (the stale-event guard from the seed), so a replaced
 * socket's late close, message or error never clobbers the new connection.
 */
import {
  WS_CLOSE_NORMAL, WS_CLOSE_SUPERSEDED, WS_CLOSE_TOKEN_EXPIRED, WS_CLOSE_TOO_MANY_CONNECTIONS, LOGIN_REQUIRED_CODES,
} from '../protocol/close-codes.js';
import { ClientClosedError, LoginRequiredError, OutcomeUnknownError, ProtocolError, SupersededError, TooManyConnectionsError } from '../protocol/errors.js';
import { decodeServerFrame, type CallTarget, type ConnectionStatusFrame, type ServerFrame } from '../protocol/frames.js';
import { DEFAULTS, DEFAULT_GATEWAY_BINDING, HEARTBEAT_PONG, SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from '../protocol/limits.js';
import { createStub, type Stub } from '../protocol/stub.js';
import { Backoff } from './backoff.js';
import { Liveness } from './liveness.js';
import { onNetworkReturn } from './network-return.js';
import { IncomingCalls, type IncomingContext } from './incoming.js';
import { OutgoingCalls } from './outgoing.js';
import { resolveSocketClass, SOCKET_OPEN, type SocketClass, type SocketLike } from './socket.js';
import { TabIdentity } from './tab-id.js';
import { readTokenPayload, TokenSource, TransientRefreshError, type RefreshSource } from './token.js';

/** Failed attempts in a row before the client reports them through onError (it keeps retrying). */
const FAILURES_BEFORE_REPORT = 3;

/** What a socket's error event says, where the runtime says anything (browsers do not; Node's ws gives the HTTP status of a refused upgrade). */
function describeSocketError(event: unknown): string | undefined {
  const { message, error } = (event ?? {}) as { message?: unknown; error?: { message?: unknown } };
  const text = typeof message === 'string' && message ? message : typeof error?.message === 'string' ? error.message : undefined;
  return text?.slice(0, 200);
}

function closeQuietly(ws: SocketLike, code: number, reason: string): void {
  try {
    ws.close(code, reason);
  } catch {
    // already closed
  }
}

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'superseded' | 'disconnected';

export interface MeshClientOptions<Handlers extends object = object> {
  /** Base URL of the mesh's edge Worker, e.g. `https://app.example.com` or `ws://127.0.0.1:8787`. */
  url: string;
  /** The gateway binding to connect through (default 'GATEWAY'). */
  gateway?: string;
  /** `{sub}.{tabId}`; by default the token's sub and a tab id (per tab in browsers, random in Node). */
  instanceName?: string;
  accessToken?: string;
  /** An async function or an endpoint URL (POSTed to) returning `{ access_token }`. */
  refresh?: RefreshSource;
  /** The WebSocket class; required in Node.js 20 (`ws`). Default: the global WebSocket. */
  WebSocket?: SocketClass;
  /** Methods the mesh may call on this client. Only these are callable. */
  handlers?: Handlers;
  /** Accept incoming calls whose origin is another client (default false). */
  allowClientOrigins?: boolean;
  /** Connect on construction (default true). */
  autoConnect?: boolean;
  callTimeoutMs?: number;
  maxQueuedCalls?: number;
  reconnectMinDelayMs?: number;
  reconnectMaxDelayMs?: number;
  heartbeatIntervalMs?: number;
  heartbeatTimeoutMs?: number;
  /** A socket that has not received the gateway's status this long after it was created is dropped and retried (default 10 s). */
  connectTimeoutMs?: number;
  /** Calls that encode to more characters than this reject at once (default 1 MiB, the gateway's default limit). */
  maxFrameBytes?: number;
  /** Remembered incoming call ids, so a redelivered call is answered from memory. */
  rememberedCallIds?: number;
  /** Incoming calls whose handlers run at once (default 256); more are answered with LimitExceededError. */
  maxConcurrentIncomingCalls?: number;
  /** Listen to `online`, `focus` and `visibilitychange` to reconnect at once (default: true where `window` exists). */
  browserEvents?: boolean;
  fetch?: typeof fetch;
  onStateChange?: (state: ConnectionState, previous: ConnectionState) => void;
  /** The gateway has no memory of this client (first connect, or the grace period ran out): (re)subscribe here. */
  onSubscriptionRequired?: () => void | Promise<void>;
  /** The token was refused for good (4400/4403, or the refresh answered 401/403). */
  onLoginRequired?: (reason: string) => void;
  /** Another process took over this identity; this client stopped and will not reconnect by itself. */
  onSuperseded?: () => void;
  /**
   * Every time the gateway accepted a socket (before onSubscriptionRequired).
   * `firstConnection` is true for this client object's first connection: with
   * `subscriptionRequired: false` there, a new page reused an identity the
   * gateway still remembers (a reload) — the app's own state is fresh, the
   * server's subscriptions are not.
   */
  onConnected?: (info: { subscriptionRequired: boolean; firstConnection: boolean }) => void;
  /** Errors with nowhere else to go (a throwing callback or handler). */
  onError?: (error: unknown) => void;
}

export class MeshClient<Handlers extends object = object> {
  readonly #options: MeshClientOptions<Handlers>;
  readonly #Socket: SocketClass;
  readonly #tokens: TokenSource;
  readonly #tab = new TabIdentity();
  readonly #backoff: Backoff;
  readonly #outgoing: OutgoingCalls;
  readonly #incoming: IncomingCalls;

  #state: ConnectionState = 'disconnected';
  #ws: SocketLike | undefined;
  /** true once the current socket got connection_status */
  #ready = false;
  #everConnected = false;
  #closed = false;
  #instanceName: string | undefined;
  #attempt: Promise<void> | undefined;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #liveness: Liveness;
  /** set while the server refused the token: calls fail at once until connect() is called again */
  #loginRequiredReason: string | undefined;
  /** connection attempts in a row that ended before the gateway's status */
  #failedAttempts = 0;
  #failedRefreshes = 0;
  /** a 4429 refusal was reported since the last connection */
  #tooManyReported = false;
  #removeBrowserListeners: (() => void) | undefined;
  /** sockets replaced by reconnect(), closed once the new one is connected */
  #retired: SocketLike[] = [];

  constructor(options: MeshClientOptions<Handlers>) {
    this.#options = options;
    this.#Socket = resolveSocketClass(options.WebSocket);
    this.#tokens = new TokenSource(options.accessToken, options.refresh, options.fetch);
    this.#backoff = new Backoff(options.reconnectMinDelayMs ?? DEFAULTS.reconnectMinDelayMs, options.reconnectMaxDelayMs ?? DEFAULTS.reconnectMaxDelayMs);
    this.#outgoing = new OutgoingCalls(options.maxQueuedCalls ?? DEFAULTS.maxQueuedCalls, options.callTimeoutMs ?? DEFAULTS.callTimeoutMs,
      options.maxFrameBytes ?? DEFAULTS.maxFrameBytes);
    this.#incoming = new IncomingCalls(options.handlers, options.allowClientOrigins ?? false, options.rememberedCallIds ?? DEFAULTS.rememberedCallIds,
      (error) => this.#report(error), options.maxConcurrentIncomingCalls ?? DEFAULTS.maxConcurrentIncomingCalls,
      () => this.#outgoing.maxFrameChars);
    this.#instanceName = options.instanceName;
    this.#liveness = new Liveness({
      intervalMs: options.heartbeatIntervalMs ?? DEFAULTS.heartbeatIntervalMs,
      timeoutMs: options.heartbeatTimeoutMs ?? DEFAULTS.heartbeatTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    }, (ws, reason) => this.#onDeadSocket(ws, reason));
    if (options.browserEvents !== false) this.#removeBrowserListeners = onNetworkReturn(this.#reconnectNow);
    if (options.autoConnect !== false) void this.connect().catch((error) => this.#report(error));
  }

  // ── public API ───────────────────────────────────────────────────────────

  get state(): ConnectionState {
    return this.#state;
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
    if (this.#closed) return Promise.reject(new ClientClosedError('This client was disconnected or disposed; create a new MeshClient.'));
    if (this.#ws || this.#attempt) return this.#attempt ?? Promise.resolve();
    this.#loginRequiredReason = undefined;
    this.#clearReconnectTimer();
    this.#setState(this.#everConnected ? 'reconnecting' : 'connecting');
    const attempt = this.#open().finally(() => {
      if (this.#attempt === attempt) this.#attempt = undefined;
    });
    this.#attempt = attempt;
    return attempt;
  }

  /**
   * Replaces the current socket with a new one now (e.g. after a network
   * change). The old socket stays open until the new one is connected, so the
   * gateway sees a supersession and moves calls in flight to the new socket.
   */
  reconnect(): Promise<void> {
    if (this.#closed) return Promise.reject(new ClientClosedError());
    const wasReady = this.#ready;
    const old = this.#detach();
    if (old) {
      // A connected socket stays open until the new one is connected; one still
      // connecting has nothing to hand over, so it closes now (this keeps #retired
      // at one socket however often reconnect() is called).
      if (wasReady) this.#retired.push(old);
      else closeQuietly(old, WS_CLOSE_NORMAL, 'Replaced');
      // That socket's attempt is over for us: without this, connect() would return it and open nothing.
      this.#attempt = undefined;
    }
    this.#clearReconnectTimer();
    return this.connect();
  }

  /** Closes for good: no later event, timer or listener brings the client back; unsettled calls reject. */
  disconnect(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearReconnectTimer();
    this.#removeBrowserListeners?.();
    this.#removeBrowserListeners = undefined;
    this.#tab.close();
    const ws = this.#detach();
    for (const socket of [ws, ...this.#retired.splice(0)]) if (socket) closeQuietly(socket, WS_CLOSE_NORMAL, 'Client disconnected');
    this.#outgoing.failAll(() => new ClientClosedError());
    this.#setState('disconnected');
  }

  [Symbol.dispose](): void {
    this.disconnect();
  }

  /** A typed stub for a Durable Object (binding + instance) or a Worker (binding only). */
  node<T>(binding: string, instance?: string, options: { timeoutMs?: number } = {}): Stub<T> {
    const to: CallTarget = instance === undefined ? { binding } : { binding, instance };
    return createStub<T>((method, args) => this.call(to, method, args, options.timeoutMs));
  }

  /** Calls a method on a mesh node. Queues while disconnected; always settles by the deadline. */
  call(to: CallTarget, method: string, args: unknown[], timeoutMs?: number): Promise<unknown> {
    if (this.#closed) return Promise.reject(new ClientClosedError());
    if (this.#state === 'superseded') return Promise.reject(new SupersededError());
    if (this.#loginRequiredReason !== undefined) return Promise.reject(new LoginRequiredError(this.#loginRequiredReason));
    // An argument the codec cannot carry rejects the returned promise (it is thrown inside its executor).
    return this.#outgoing.start(to, method, args, timeoutMs, (frame) => this.#send(frame));
  }

  // ── connection ───────────────────────────────────────────────────────────

  async #open(): Promise<void> {
    let token: string;
    try {
      token = await this.#tokens.get();
      this.#failedRefreshes = 0;
      if (!this.#instanceName) {
        const payload = readTokenPayload(token);
        if (!payload) throw new LoginRequiredError('the access token is not a JWT (three base64url parts: header.payload.signature)');
        const sub = payload.sub;
        if (typeof sub !== 'string' || sub === '') throw new LoginRequiredError('the access token has no "sub" claim; pass instanceName, or issue tokens with a sub');
        this.#instanceName = `${sub}.${await this.#tab.resolve()}`;
      }
    } catch (error) {
      this.#attempt = undefined;
      if (this.#closed) return;
      if (error instanceof TransientRefreshError) {
        if (++this.#failedRefreshes === FAILURES_BEFORE_REPORT) {
          this.#report(new Error(`meshgate: ${FAILURES_BEFORE_REPORT} token refreshes in a row failed (last: ${error.message}); still retrying. `
            + 'If this persists, check the refresh option: a URL must answer a POST with JSON { "access_token": "..." } (401/403 means "log in again"); '
            + 'a function must resolve to the token or { access_token } (throw LoginRequiredError for "log in again").', { cause: error }));
        }
        return this.#scheduleReconnect();
      }
      if (error instanceof LoginRequiredError) return this.#loginRequired(error.reason);
      this.#report(error);
      return this.#scheduleReconnect();
    }
    if (this.#closed || this.#ws) return;

    const url = this.#gatewayUrl();
    let ws: SocketLike;
    try {
      ws = new this.#Socket(url, [SUBPROTOCOL, `${TOKEN_SUBPROTOCOL_PREFIX}${token}`]);
    } catch (error) {
      this.#attempt = undefined;
      this.#report(error);
      return this.#scheduleReconnect();
    }
    this.#ws = ws;
    this.#ready = false;
    // A connect that hangs (a blackholed network, a handshake that never completes) counts as a dead socket.
    this.#liveness.created(ws);

    await new Promise<void>((resolve) => {
      ws.onopen = () => {
        if (this.#ws === ws) this.#liveness.opened(ws);
      };
      ws.onmessage = (event) => {
        if (this.#ws !== ws) return;
        this.#onMessage(ws, event.data, resolve);
      };
      let failure: string | undefined;
      ws.onerror = (event) => {
        // A close event follows and decides; keep what the error says for the report (ws: the HTTP status).
        failure = describeSocketError(event);
      };
      ws.onclose = (event) => {
        resolve();
        if (this.#ws !== ws) return; // stale close from a socket already replaced
        this.#attempt = undefined; // cleared now, so a reconnect can start in this same tick
        this.#onClose(event.code, event.reason, failure);
      };
    });
  }

  #onMessage(ws: SocketLike, data: unknown, opened: () => void): void {
    this.#liveness.signOfLife();
    if (data === HEARTBEAT_PONG) return;
    let frame: ServerFrame;
    try {
      frame = decodeServerFrame(String(data));
    } catch (error) {
      this.#report(error);
      return;
    }
    switch (frame.type) {
      case 'connection_status':
        // Only the first frame of a socket: a repeat would resend calls already sent on it.
        if (this.#ready) return this.#report(new ProtocolError('connection_status repeated on the same socket; ignored.', 'bad_frame'));
        this.#attempt = undefined;
        this.#liveness.connected();
        this.#onConnected(frame);
        opened();
        return;
      case 'call_response':
        if (!frame.ok && frame.retryAfterReconnect === true && this.#outgoing.requeue(frame.id)) return;
        this.#outgoing.answer(frame);
        return;
      case 'incoming_call':
        void this.#incoming.serve(frame, (text) => this.#send(text));
        return;
      case 'superseded':
        this.#onSuperseded(ws);
        return;
      case 'error':
        this.#report(new Error(`Gateway reported ${frame.code}: ${frame.message}`));
        return;
    }
  }

  #onConnected(status: ConnectionStatusFrame): void {
    for (const old of this.#retired.splice(0)) closeQuietly(old, WS_CLOSE_NORMAL, 'Replaced');
    const wasConnected = this.#everConnected;
    this.#ready = true;
    this.#everConnected = true;
    this.#failedAttempts = 0;
    this.#tooManyReported = false;
    this.#backoff.reset();
    this.#instanceName = status.instanceName;
    this.#setState('connected');
    // The gateway's memory is gone: calls it may have run cannot be resent safely.
    this.#outgoing.epoch = status.epoch;
    this.#outgoing.maxFrameChars = Math.min(this.#options.maxFrameBytes ?? DEFAULTS.maxFrameBytes, status.maxFrameBytes ?? Number.POSITIVE_INFINITY);
    this.#outgoing.flush((frame) => this.#send(frame), status.subscriptionRequired, (method) => new OutcomeUnknownError(method));
    this.#callback(() => this.#options.onConnected?.({ subscriptionRequired: status.subscriptionRequired, firstConnection: !wasConnected }));
    if (status.subscriptionRequired) this.#callback(() => this.#options.onSubscriptionRequired?.());
  }

  #onSuperseded(ws: SocketLike): void {
    // Ignore this socket from now on; its 4409 close may arrive much later.
    this.#detach();
    closeQuietly(ws, WS_CLOSE_NORMAL, 'Superseded');
    this.#closeRetired('Superseded');
    this.#setState('superseded');
    this.#outgoing.failAll(() => new SupersededError());
    this.#callback(() => this.#options.onSuperseded?.());
  }

  #onClose(code: number, reason: string, failure?: string): void {
    const wasReady = this.#ready;
    const ws = this.#detach();
    // Too many identities: another tab or device must go first, so keep retrying with backoff; say why once per run of refusals.
    const tooMany = code === WS_CLOSE_TOO_MANY_CONNECTIONS;
    if (tooMany && !this.#tooManyReported) this.#report(new TooManyConnectionsError(reason || `closed with ${code}`));
    this.#tooManyReported ||= tooMany;
    if (!wasReady && !tooMany) this.#attemptFailed(`closed with ${code}${reason ? ` "${reason}"` : ''}${failure ? `: ${failure}` : ''}`);
    if (code === WS_CLOSE_SUPERSEDED && ws) return this.#onSuperseded(ws);
    if (LOGIN_REQUIRED_CODES.includes(code)) return this.#loginRequired(reason || `closed with ${code}`);
    if (code === WS_CLOSE_TOKEN_EXPIRED) {
      this.#tokens.invalidate();
      if (!this.#tokens.canRefresh) return this.#loginRequired('token expired and no refresh is configured');
    }
    this.#closeRetired('Replacement failed');
    this.#scheduleReconnect();
  }

  #loginRequired(reason: string): void {
    this.#clearReconnectTimer();
    this.#loginRequiredReason = reason;
    // A socket kept open by reconnect() must not outlive the stop: the gateway would keep calling it.
    this.#closeRetired('Login required');
    this.#outgoing.failAll(() => new LoginRequiredError(reason));
    this.#setState('disconnected');
    this.#callback(() => this.#options.onLoginRequired?.(reason));
  }

  #scheduleReconnect(): void {
    if (this.#closed || this.#reconnectTimer) return;
    this.#setState('reconnecting');
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.connect().catch((error) => this.#report(error));
    }, this.#backoff.next());
  }

  /** The network came back or the tab became visible: skip the rest of the backoff wait. */
  #reconnectNow = (): void => {
    if (this.#closed || !this.#reconnectTimer) return;
    if (typeof document !== 'undefined' && document.visibilityState === 'hidden') return;
    this.#clearReconnectTimer();
    void this.connect().catch((error) => this.#report(error));
  };

  #clearReconnectTimer(): void {
    if (this.#reconnectTimer) clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
  }

  /** No pong in time: the socket is dead even if no close event came. Drop it and reconnect. */
  #onDeadSocket(ws: SocketLike, reason: string): void {
    if (this.#ws !== ws) return;
    if (!this.#ready) this.#attemptFailed(reason.toLowerCase());
    this.#detach();
    this.#attempt = undefined; // that attempt is over: the reconnect must open a new socket
    closeQuietly(ws, 4000, reason);
    this.#closeRetired('Replacement failed');
    this.#scheduleReconnect();
  }

  /**
   * Browsers hide why an upgrade failed (a wrong URL, an unknown gateway
   * binding, a server down all look alike), so after a few failures in a row
   * say so once, with what to check; the client keeps retrying.
   */
  #attemptFailed(how: string): void {
    if (++this.#failedAttempts !== FAILURES_BEFORE_REPORT) return;
    this.#report(new Error(`meshgate: ${FAILURES_BEFORE_REPORT} connection attempts to ${this.#gatewayUrl()} failed before the gateway answered (last one ${how}); still retrying. `
      + 'If this persists, check the url and gateway options: the edge answers 404 for an unknown gateway binding, and a token it cannot verify closes with 4403.'));
  }

  /** Sockets kept open by reconnect() go once their replacement failed: the gateway must see the client gone. */
  #closeRetired(reason: string): void {
    for (const old of this.#retired.splice(0)) closeQuietly(old, WS_CLOSE_NORMAL, reason);
  }

  // ── helpers ──────────────────────────────────────────────────────────────

  /** Lets go of the current socket: from here on its events are stale and its timers are off. */
  #detach(): SocketLike | undefined {
    const ws = this.#ws;
    this.#ws = undefined;
    this.#ready = false;
    this.#liveness.stop();
    return ws;
  }

  #gatewayUrl(): string {
    const gateway = this.#options.gateway ?? DEFAULT_GATEWAY_BINDING;
    const base = this.#options.url.replace(/^http/, 'ws').replace(/\/+$/, '');
    return `${base}/gateway/${encodeURIComponent(gateway)}/${encodeURIComponent(this.#instanceName ?? '')}`;
  }

  /** Sends on the current socket if it is ready; false means "queue it". */
  #send(text: string): boolean {
    const ws = this.#ws;
    if (!ws || !this.#ready || ws.readyState !== SOCKET_OPEN) return false;
    try {
      ws.send(text);
      return true;
    } catch {
      return false;
    }
  }

  #setState(next: ConnectionState): void {
    const previous = this.#state;
    if (previous === next) return;
    this.#state = next;
    this.#callback(() => this.#options.onStateChange?.(next, previous));
  }

  #callback(fn: () => unknown): void {
    try {
      const result = fn();
      if (result instanceof Promise) result.catch((error) => this.#report(error));
    } catch (error) {
      this.#report(error);
    }
  }

  #report(error: unknown): void {
    if (this.#options.onError) this.#options.onError(error);
  }
}
