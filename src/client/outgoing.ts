/**
 * Calls from this client into the mesh, from creation until they settle.
 * A call is queued until it can be sent, sent (and resent after a reconnect
 * that kept the gateway's memory, with the same id), and always settles: with
 * the answer, or with a typed error at its deadline. Nothing stays behind.
 */
import { encodeValue, decodeValue } from '../protocol/codec.js';
import type { HeldFrameHooks } from './frame-pacer.js';
import { CallTimeoutError, CancelledError, LimitExceededError, ProtocolError } from '../protocol/errors.js';
import { encodeFrame, type CallFrame, type CallResponseFrame, type CallTarget } from '../protocol/frames.js';
import { DEFAULTS } from '../protocol/limits.js';
import type { ClientStreams } from './streams.js';

/** Sends a call's frame (false: queue it); `hooks` for while it is held back (frame-pacer.ts). */
type SendFrame = (frame: string, hooks?: HeldFrameHooks) => boolean;

/** Per-call options: `client.call(to, method, args, options)`, or for every call of a stub, `client.node(binding, instance, options)`. */
export interface CallOptions {
  /** this call's deadline (default: the client's callTimeoutMs) */
  timeoutMs?: number;
  /**
   * Cancels the call: it rejects at once with CancelledError, the node sees
   * `this.mesh.signal` abort, and a stream result stops its producer.
   */
  signal?: AbortSignal;
  /** If the result is a stream: chunks it may send ahead of what you have read (default 32, the gateway caps it at its maxStreamWindow). */
  streamWindow?: number;
}

interface OutgoingCall {
  method: string;
  body: CallFrame;
  /** the encoded body, for the first send */
  frame: string;
  /** sent on some socket and not answered yet */
  sent: boolean;
  /** sent again on a later socket: its answer may be the gateway's remembered one */
  resent?: true;
  /** a gateway answered it "retry after reconnect" (it ran nothing then): it left the client, so a timeout must not say it never did */
  refused?: true;
  /** the gateway incarnation it was sent to (see ConnectionStatusFrame.epoch) */
  sentEpoch?: string | undefined;
  resolve(value: unknown): void;
  reject(error: unknown): void;
  timer: ReturnType<typeof setTimeout>;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  window: number;
  /** the hooks of the call's first send: while the pacer holds it, the gateway has not heard of the call */
  firstSend?: HeldFrameHooks;
}

export class OutgoingCalls {
  /** every unsettled call, in the order it was made */
  readonly #calls = new Map<string, OutgoingCall>();
  readonly #idPrefix = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}-`;
  #nextId = 0;
  #queued = 0;
  /** ids of cancelled calls whose `cancel` did not reach the socket (it was down, or the frame was held when it went): sent after the reconnect */
  readonly #cancelsToSend = new Set<string>();
  /** the incarnation of the gateway the current socket talks to */
  epoch: string | undefined;
  /** the smaller of this client's frame limit and the gateway's (from connection_status) */
  maxFrameChars: number;

  constructor(
    private readonly maxQueued: number,
    private readonly defaultTimeoutMs: number,
    maxFrameChars: number,
    private readonly streams?: ClientStreams,
    /** what the app's onError was last told about the connection (cleared once connected), for a call that times out unsent */
    private readonly lastProblem: () => string | undefined = () => undefined,
  ) {
    this.maxFrameChars = maxFrameChars;
  }

  get size(): number {
    return this.#calls.size;
  }

  /**
   * Starts a call. `send` is tried at once; if it returns false the call waits
   * in the queue for `flush`.
   */
  start(to: CallTarget, method: string, args: unknown[], options: CallOptions, send: SendFrame): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const { signal } = options;
      if (signal?.aborted) {
        reject(new CancelledError(method, signal.reason));
        return;
      }
      const id = `${this.#idPrefix}${++this.#nextId}`;
      const ms = options.timeoutMs ?? this.defaultTimeoutMs;
      const window = options.streamWindow ?? DEFAULTS.streamWindow;
      if (!(Number.isInteger(window) && window >= 1)) throw new RangeError(`streamWindow must be a whole number of chunks ≥ 1, got ${String(window)}.`);
      // The deadline travels along, so the gateway never gives up on the node before the caller does.
      const body: CallFrame = { type: 'call', id, to, method, args: encodeValue(args, 'the arguments of', method), timeoutMs: ms };
      if (signal) body.cancellable = true;
      if (window !== DEFAULTS.streamWindow) body.streamWindow = window;
      const frame = encodeFrame(body);
      if (frame.length > this.maxFrameChars) {
        // The gateway would close the socket (1009) for it, on every resend: refuse it here instead.
        reject(new LimitExceededError('maxFrameBytes', this.maxFrameChars, `this call encodes to ${frame.length} characters; send less per call, or raise maxFrameBytes on both the client and the gateway.`));
        return;
      }
      // A frame the pacer holds back goes only if the call is still waiting by then (not timed out or cancelled).
      const firstSend = this.#heldHooks(id, true);
      const sent = send(frame, firstSend);
      if (!sent && this.#queued >= this.maxQueued) {
        reject(new LimitExceededError('maxQueuedCalls', this.maxQueued, 'the client is not connected and its queue is full; wait for the connection or raise maxQueuedCalls.'));
        return;
      }
      const timer = setTimeout(() => this.#settle(id, (call) => call.reject(this.#timedOut(call, ms))), ms);
      // Rejects at once; a call already sent is cancelled at the gateway too (a queued or still held one is simply never sent).
      const onAbort = signal && ((): void => this.#settle(id, (call) => {
        if (call.sent && call.firstSend?.held !== true) this.#sendCancel(id, send);
        call.reject(new CancelledError(method, signal.reason));
      }));
      const call: OutgoingCall = { method, body, frame, sent, sentEpoch: this.epoch, resolve, reject, timer, signal, onAbort, window };
      if (sent) call.firstSend = firstSend;
      this.#calls.set(id, call);
      signal?.addEventListener('abort', onAbort!, { once: true });
      if (!sent) this.#queued++;
    });
  }

  /** Handles an answer from the gateway; an answer to an unknown id (already settled) is ignored. */
  answer(frame: CallResponseFrame): void {
    this.#settle(frame.id, (call) => {
      try {
        if (frame.ok && 'stream' in frame) call.resolve(this.#openStream(frame.id, call, frame.window));
        else if (frame.ok) call.resolve(decodeValue(frame.result));
        else call.reject(decodeValue(frame.error));
      } catch (error) {
        call.reject(error);
      }
    });
  }

  /** A `cancel` that cannot leave now (no socket, or held back when the socket went) goes after the reconnect; at most maxQueuedCalls wait. */
  #sendCancel(id: string, send: SendFrame): void {
    const later = (): void => {
      if (this.#cancelsToSend.size >= this.maxQueued) this.#cancelsToSend.delete(this.#cancelsToSend.values().next().value!);
      this.#cancelsToSend.add(id);
    };
    if (!send(encodeFrame({ type: 'cancel', id }), { dropped: later })) later();
  }

  /** A call past its deadline; one still queued says why it never left, since raising its timeout would not help. */
  #timedOut(call: OutgoingCall, ms: number): CallTimeoutError {
    if (call.sent || call.resent || call.refused) return new CallTimeoutError(call.method, ms);
    const problem = this.lastProblem();
    return new CallTimeoutError(call.method, ms, problem === undefined
      ? 'the client was not connected in that time; check the url and the server, and pass onError to see why it cannot connect.'
      : `the client was not connected in that time. Last connection problem: ${problem.slice(0, 400)}`);
  }

  /** A held frame of call `id` goes only while the call waits; if it was the call's first send and is dropped unsent, the call is queued again. */
  #heldHooks(id: string, first: boolean): HeldFrameHooks {
    return { wanted: () => this.#calls.has(id), ...(first ? { dropped: () => void this.requeue(id, false) } : {}) };
  }

  /**
   * Queues a call again: the gateway refused to run it for now (token
   * expired; `answered`), or its frame never left (the pacer dropped it). A
   * resend keeps the epoch it was first sent under, since it may have run
   * there: it goes again marked `resentFrom` that epoch, never as new.
   */
  requeue(id: string, answered = true): boolean {
    const call = this.#calls.get(id);
    if (!call || !call.sent) return false;
    call.sent = false;
    if (!call.resent) call.sentEpoch = undefined;
    if (answered) call.refused = true;
    this.#queued++;
    return true;
  }

  /**
   * After a (re)connect: sends every unsettled call in the order made. Calls
   * already sent go again marked `resentFrom` (the epoch they were sent under),
   * so a gateway that restarted since answers OutcomeUnknownError instead of
   * running them twice. If the gateway has no memory of this client
   * (`subscriptionRequired`), calls already sent fail with `lostError` here.
   */
  flush(send: SendFrame, subscriptionRequired: boolean, lostError: (method: string) => Error): void {
    // A gateway without memory of this client knows none of the calls these would cancel.
    const cancels = subscriptionRequired ? [] : [...this.#cancelsToSend];
    this.#cancelsToSend.clear();
    for (const id of cancels) this.#sendCancel(id, send);
    for (const [id, call] of this.#calls) {
      // sent once and maybe run under sentEpoch: in flight now, or a resend the gateway refused and this queued again
      const mayHaveRun = call.sent || call.resent === true;
      if (mayHaveRun && subscriptionRequired) {
        this.#settle(id, (c) => c.reject(lostError(c.method)));
        continue;
      }
      const text = mayHaveRun && call.sentEpoch !== undefined ? encodeFrame({ ...call.body, resentFrom: call.sentEpoch }) : call.frame;
      const hooks = this.#heldHooks(id, !call.sent);
      if (!send(text, hooks)) return;
      if (mayHaveRun) call.resent = true;
      if (!call.sent) {
        call.firstSend = hooks;
        call.sent = true;
        if (!call.resent) call.sentEpoch = this.epoch;
        this.#queued--;
      }
    }
  }

  /** Settles every call with an error (client closed, superseded, login required). */
  failAll(error: () => Error): void {
    for (const id of [...this.#calls.keys()]) this.#settle(id, (call) => call.reject(error()));
  }

  /** `window`: the one the gateway granted, which may be less than asked for. */
  #openStream(id: string, call: OutgoingCall, window: number): unknown {
    if (!this.streams) throw new ProtocolError(`"${call.method}" answered with a stream, which this caller cannot read.`, 'bad_frame');
    const stream = this.streams.open(id, call.method, Math.min(call.window, window), call.signal);
    // A remembered answer to a resent call: the stream waits for a socket to claim it, and this first credit does.
    if (call.resent) stream.resume();
    return stream;
  }

  #settle(id: string, how: (call: OutgoingCall) => void): void {
    const call = this.#calls.get(id);
    if (!call) return;
    this.#calls.delete(id);
    clearTimeout(call.timer);
    if (call.onAbort) call.signal?.removeEventListener('abort', call.onAbort);
    if (!call.sent) this.#queued--;
    how(call);
  }
}
