/**
 * Mesh → client calls: a node's call (awaited, with a deadline) or
 * notification (not awaited, see notifications.ts) goes to the open socket,
 * or waits for the client's reconnect in its grace period, and follows the
 * client to every new socket until it is answered.
 */
import { ClientDisconnectedError, ClientTimeoutError, LimitExceededError, MeshError } from '../protocol/errors.js';
import { encodeFrame, type IncomingCallResponseFrame } from '../protocol/frames.js';
import type { StreamDataFrame } from '../protocol/stream-frames.js';
import { ClientStreams } from './client-streams.js';
import { isDurationMs } from '../protocol/limits.js';
import { failure } from '../protocol/failure.js';
import type { CallContext, ClientCallEnvelope, MeshResult, NotifyResult } from '../nodes/envelope.js';
import { configuredMs, type GatewayConfig } from './config.js';
import { Deadlines } from './deadlines.js';
import { isNotificationId, notificationId, PendingNotifications } from './notifications.js';
import { safeSend, sendError } from './sockets.js';

export interface CallToClient {
  instanceName: string;
  method: string;
  context: CallContext;
}

/** What the calls need from their gateway. */
export interface CallsToClientHost {
  config(): GatewayConfig;
  onBeforeCallToClient(call: CallToClient): void | Promise<void>;
  /**
   * Whether the client is connected or in its grace period, after closing a
   * socket whose token expired (a call then waits for the refreshed reconnect).
   */
  reachable(): Promise<boolean>;
  /** the open socket now, if any */
  active(): WebSocket | undefined;
}

interface WaitingCall {
  /** the encoded `incoming_call` frame, resent as is on a new socket */
  frame: string;
  instanceName: string;
  method: string;
  resolve(result: MeshResult): void;
}

/** A refusal from any step, as the node receives it. */
function refusal(error: unknown): { ok: false; error: string } {
  return failure(error instanceof Error ? error : new MeshError(String(error)));
}

export class CallsToClient {
  readonly #host: CallsToClientHost;
  /** calls waiting for the client's answer, by incoming call id, each timed out at its deadline */
  readonly #waiting = new Deadlines<string, WaitingCall>();
  /** notifications not answered yet (no deadline: see notifications.ts) */
  readonly notifications = new PendingNotifications();
  /** streams the client's handlers answer with, read by the calling nodes (client-streams.ts) */
  readonly streams: ClientStreams;
  readonly #idPrefix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}-`;
  #nextId = 0;

  constructor(host: CallsToClientHost) {
    this.#host = host;
    this.streams = new ClientStreams(() => host.config());
  }

  get waiting(): number {
    return this.#waiting.size;
  }

  /** Answered as soon as the frame is on the socket (or queued for a client in its grace period), so the node holds no pending RPC while the client runs its handler. */
  async notify(envelope: ClientCallEnvelope): Promise<NotifyResult> {
    try {
      const timeoutMs = await this.#admit(envelope);
      const now = Date.now();
      // A client still sitting on an earlier notification past the timeout is silent: it gets no more until it answers.
      if (this.notifications.oldestWaitMs(now) > timeoutMs) throw new ClientTimeoutError(envelope.instanceName, timeoutMs);
      const id = notificationId(this.#idPrefix, ++this.#nextId);
      const frame = incomingCallFrame(id, envelope);
      const { maxPendingNotifications, maxPendingNotificationBytes } = this.#host.config();
      if (!this.notifications.add(id, frame, now, maxPendingNotifications, maxPendingNotificationBytes)) {
        throw new LimitExceededError('maxPendingNotifications', maxPendingNotifications,
          `the client has ${this.notifications.size} unanswered notifications (${this.notifications.bytes} bytes, at most ${maxPendingNotificationBytes}); this one was not sent. Notify less often or with less data.`);
      }
      const active = this.#host.active();
      if (active) safeSend(active, frame); // otherwise it goes out when the client reconnects
      return { ok: true, queued: !active };
    } catch (error) {
      return refusal(error);
    }
  }

  async call(envelope: ClientCallEnvelope): Promise<MeshResult> {
    let timeoutMs: number;
    try {
      timeoutMs = await this.#admit(envelope);
      const { maxPendingClientCalls } = this.#host.config();
      if (this.#waiting.size >= maxPendingClientCalls) {
        throw new LimitExceededError('maxPendingClientCalls', maxPendingClientCalls, 'the client has too many unanswered calls; retry later.');
      }
    } catch (error) {
      return refusal(error);
    }
    const id = `${this.#idPrefix}${++this.#nextId}`;
    const frame = incomingCallFrame(id, envelope);
    return new Promise<MeshResult>((resolve) => {
      this.#waiting.add(id, timeoutMs, () => resolve(failure(new ClientTimeoutError(envelope.instanceName, timeoutMs))), {
        frame, instanceName: envelope.instanceName, method: envelope.method, resolve,
      });
      const active = this.#host.active();
      if (active) safeSend(active, frame); // otherwise it goes out when the client reconnects
    });
  }

  /** The client's `incoming_call_response`. */
  takeAnswer(ws: WebSocket, frame: IncomingCallResponseFrame): void {
    const stream = frame.ok && 'stream' in frame;
    // Nobody waits for a notification's answer: it only frees its place (and nobody would read a stream).
    if (this.notifications.answer(frame.id) || isNotificationId(frame.id)) {
      if (stream) safeSend(ws, encodeFrame({ type: 'cancel', id: frame.id }));
      return;
    }
    const waiting = this.#waiting.get(frame.id);
    if (!waiting) {
      sendError(ws, 'unknown_call_id', 'No incoming call with this id is waiting: it was never sent, was already answered, or timed out.', frame.id);
      return;
    }
    this.#waiting.delete(frame.id);
    if (!frame.ok) waiting.resolve({ ok: false, error: frame.error });
    else if ('stream' in frame) waiting.resolve({ ok: true, result: '', stream: this.streams.open(ws, frame.id, waiting.method) });
    else waiting.resolve({ ok: true, result: frame.result });
  }

  /** A chunk, end or error of a stream a handler answers with; one nobody reads is told to stop. */
  takeStreamData(ws: WebSocket, frame: StreamDataFrame): void {
    if (!this.streams.take(ws, frame) && frame.type === 'stream_chunk') safeSend(ws, encodeFrame({ type: 'cancel', id: frame.id }));
  }

  /** Calls sent on a socket now gone follow the client to `ws`. */
  resendTo(ws: WebSocket): void {
    this.streams.socketLost(); // a handler's stream does not follow the client to a new socket
    for (const waiting of this.#waiting.values()) safeSend(ws, waiting.frame);
    for (const frame of this.notifications.frames()) safeSend(ws, frame);
  }

  /** The grace period ended without a reconnect: every call fails for good, every notification is dropped. */
  failAll(): void {
    for (const waiting of this.#waiting.values()) waiting.resolve(failure(new ClientDisconnectedError(waiting.instanceName)));
    this.#waiting.clear();
    this.notifications.clear();
    this.streams.socketLost();
  }

  /**
   * What every call checks first: its timeout, the hook, an expired token,
   * and whether the client is there at all. Returns the timeout; throws the refusal.
   */
  async #admit(envelope: ClientCallEnvelope): Promise<number> {
    const timeoutMs = envelope.timeoutMs === undefined ? configuredMs('clientResponseTimeoutMs', this.#host.config().clientResponseTimeoutMs) : envelope.timeoutMs;
    if (!isDurationMs(timeoutMs)) throw new RangeError(`A call to a client needs a positive timeoutMs, got ${String(timeoutMs)}.`);
    const hook = this.#host.onBeforeCallToClient({ instanceName: envelope.instanceName, method: envelope.method, context: envelope.context });
    if (hook !== undefined) await hook;
    if (!(await this.#host.reachable())) throw new ClientDisconnectedError(envelope.instanceName);
    return timeoutMs;
  }
}

function incomingCallFrame(id: string, envelope: ClientCallEnvelope): string {
  return encodeFrame({
    type: 'incoming_call', id, method: envelope.method, args: envelope.args, origin: envelope.context.origin, chain: envelope.context.chain,
  });
}
