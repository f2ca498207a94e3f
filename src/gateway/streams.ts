/**
 * Streams from nodes to the client, in the gateway. The gateway pulls chunks
 * from the node's NodeStream over Workers RPC only up to the chunk number the
 * client allows (its credit), and holds only the chunks the client has not
 * acknowledged, so a slow reader pauses the producer and nothing grows
 * without bound. Chunks keep their numbers: after a reconnect the client says
 * what it holds and the gateway sends again from there, so none is lost or
 * repeated. A stream no socket claims within the grace period is cancelled,
 * and one that makes no progress for `streamIdleMs` ends with
 * LimitExceededError: an open stream keeps the gateway and node in memory.
 */
import { encodeError } from '../protocol/codec.js';
import { LimitExceededError, StreamInterruptedError } from '../protocol/errors.js';
import { encodeFrame } from '../protocol/frames.js';
import type { StreamCreditFrame } from '../protocol/stream-frames.js';
import type { StreamSource } from '../nodes/envelope.js';
import { configuredMs, type GatewayConfig } from './config.js';
import { Deadlines } from './deadlines.js';
import { safeSend, sendError } from './sockets.js';

type StreamConfig = Pick<GatewayConfig, 'maxStreams' | 'maxStreamWindow' | 'maxStreamChunkBytes' | 'maxStreamBufferBytes' | 'gracePeriodMs' | 'streamIdleMs'>;

export interface StreamsHost {
  config(): StreamConfig;
  isOpen(ws: WebSocket): boolean;
}

interface OpenStream {
  readonly id: string;
  readonly method: string;
  /** the node's stream; undefined once it ended (released at once, the node need not stay in memory) */
  source: StreamSource | undefined;
  /** the socket chunks go to; undefined until a socket claims the stream after a reconnect */
  ws: WebSocket | undefined;
  /** chunks taken from the node */
  pulled: number;
  /** the next chunk number to send on `ws` */
  sent: number;
  /** the client holds every chunk numbered below this */
  acked: number;
  /** the client allows chunks numbered below this */
  limit: number;
  /** chunks acked … pulled − 1 */
  buffer: string[];
  /** each buffered chunk's tag: a credit acknowledging chunk n must echo tag n, so only a reader that got it can */
  tags: string[];
  bufferedChars: number;
  /** the frame that ends the stream, once the node has ended it (after `pulled` chunks) */
  final: string | undefined;
  finalSent: boolean;
  pulling: boolean;
}

export class GatewayStreams {
  readonly #host: StreamsHost;
  readonly #streams = new Map<string, OpenStream>();
  /** streams waiting for a socket to claim them after a reconnect; cancelled if none does in the grace period */
  readonly #unclaimed = new Deadlines<string>();
  /** when each stream last made progress; one timer for all, none once no stream is open */
  readonly #idle = new Deadlines<string>();

  constructor(host: StreamsHost) {
    this.#host = host;
  }

  get size(): number {
    return this.#streams.size;
  }

  has(id: string): boolean {
    return this.#streams.has(id);
  }

  /** Timers this keeps set (0 or 1 each for idle and unclaimed streams; 0 with no stream open). */
  get timers(): number {
    return Number(this.#idle.armed) + Number(this.#unclaimed.armed);
  }

  /** A call answered with a stream: starts sending up to `window` chunks on `ws`; returns the window granted. Undefined: over maxStreams (the stream is cancelled). */
  open(ws: WebSocket | undefined, id: string, method: string, source: StreamSource, window: number): number | undefined {
    const { maxStreams, maxStreamWindow } = this.#host.config();
    if (this.#streams.size >= maxStreams || this.#streams.has(id)) {
      release(source, true);
      return undefined;
    }
    const stream: OpenStream = {
      id, method, source, ws, pulled: 0, sent: 0, acked: 0, limit: Math.min(window, maxStreamWindow),
      buffer: [], tags: [], bufferedChars: 0, final: undefined, finalSent: false, pulling: false,
    };
    this.#streams.set(id, stream);
    this.#progressed(stream);
    this.#pull(stream);
    return stream.limit;
  }

  /** The client's credit (or, from a socket the stream was not being sent on, its resume). */
  credit(ws: WebSocket, frame: StreamCreditFrame): void {
    const stream = this.#streams.get(frame.id);
    if (!stream) {
      // Its memory is gone (the gateway restarted, or the stream was cancelled as unclaimed): the client must call again.
      safeSend(ws, encodeFrame({ type: 'stream_error', id: frame.id, count: frame.received, error: encodeError(new StreamInterruptedError('the stream')) }));
      return;
    }
    this.#progressed(stream);
    const received = Math.min(frame.received, stream.pulled);
    if (received > stream.acked) {
      // Without proof a reader that stopped reading its socket could ack what sits unread in the runtime's buffers, and be sent more.
      if (frame.tag === undefined || frame.tag !== stream.tags[received - 1 - stream.acked]) {
        sendError(ws, 'bad_field', `"stream_credit" for "${stream.id}" acknowledges chunk ${received - 1} without its tag: echo the tag of the last chunk you received.`, stream.id);
        return;
      }
      const done = received - stream.acked;
      for (const chunk of stream.buffer.splice(0, done)) stream.bufferedChars -= chunk.length;
      stream.tags.splice(0, done);
      stream.acked = received;
    }
    stream.limit = Math.max(stream.limit, Math.min(frame.limit, stream.acked + this.#host.config().maxStreamWindow));
    if (ws !== stream.ws) {
      // A resume: what was sent on the old socket may be lost; send again from what the client holds.
      this.#unclaimed.delete(stream.id);
      stream.ws = ws;
      stream.sent = stream.acked;
      stream.finalSent = false;
    }
    this.#send(stream);
    this.#pull(stream);
  }

  /** The client is done with stream `id` (cancelled, or it read the end): stop the producer, forget it. False: no such stream. */
  cancel(id: string): boolean {
    const stream = this.#streams.get(id);
    if (!stream) return false;
    this.#streams.delete(id);
    this.#unclaimed.delete(id);
    this.#idle.delete(id);
    if (stream.source) release(stream.source, true);
    stream.source = undefined;
    return true;
  }

  /** A new socket was accepted: each stream waits for the client to claim it (its resume), at most a grace period. */
  newSocket(): void {
    const { gracePeriodMs } = this.#host.config();
    for (const stream of this.#streams.values()) {
      stream.ws = undefined;
      if (!this.#unclaimed.has(stream.id)) this.#unclaimed.add(stream.id, gracePeriodMs, () => this.cancel(stream.id));
    }
  }

  /** The client is gone for good (grace period over) or forgotten: every producer is stopped. */
  cancelAll(): void {
    for (const id of [...this.#streams.keys()]) this.cancel(id);
    this.#unclaimed.clear();
    this.#idle.clear();
  }

  #send(stream: OpenStream): void {
    const ws = stream.ws;
    if (!ws || !this.#host.isOpen(ws)) return; // kept for the resume
    while (stream.sent < stream.pulled && stream.sent < stream.limit) {
      const value = stream.buffer[stream.sent - stream.acked]!;
      const tag = stream.tags[stream.sent - stream.acked]!;
      if (!safeSend(ws, encodeFrame({ type: 'stream_chunk', id: stream.id, seq: stream.sent, value, tag }))) return;
      stream.sent++;
    }
    if (stream.final !== undefined && stream.sent === stream.pulled && !stream.finalSent) stream.finalSent = safeSend(ws, stream.final);
  }

  /** Asks the node for more, if the client's credit and this gateway's buffer allow. One request at a time. */
  #pull(stream: OpenStream): void {
    const { maxStreamBufferBytes, maxStreamChunkBytes } = this.#host.config();
    const source = stream.source;
    if (!source || stream.pulling || stream.final !== undefined || stream.pulled >= stream.limit || stream.bufferedChars >= maxStreamBufferBytes) return;
    stream.pulling = true;
    const pull = { limit: stream.limit, maxChars: maxStreamBufferBytes - stream.bufferedChars, maxChunkChars: maxStreamChunkBytes };
    Promise.resolve(source.next(pull)).then((batch) => {
      // An RPC result is held until disposed (or its request ends, which for a stream may be never): let it go now.
      disposeResult(batch);
      stream.pulling = false;
      if (this.#streams.get(stream.id) !== stream) return; // cancelled meanwhile
      this.#progressed(stream);
      const tags = newTags(batch.chunks.length);
      for (const [i, chunk] of batch.chunks.entries()) {
        stream.buffer.push(chunk);
        stream.tags.push(tags[i]!);
        stream.bufferedChars += chunk.length;
        stream.pulled++;
      }
      if (batch.error !== undefined) this.#end(stream, { type: 'stream_error', id: stream.id, count: stream.pulled, error: batch.error });
      else if (batch.end) this.#end(stream, { type: 'stream_end', id: stream.id, count: stream.pulled });
      this.#send(stream);
      this.#pull(stream);
    }, (error: unknown) => {
      stream.pulling = false;
      if (this.#streams.get(stream.id) !== stream) return;
      // The node reset or the link to it broke: what was produced so far still goes out, then the error.
      this.#end(stream, { type: 'stream_error', id: stream.id, count: stream.pulled, error: encodeError(new StreamInterruptedError(stream.method, error)) });
      this.#send(stream);
    });
  }

  /** The stream moved (credit, chunks or its end): its idle deadline starts again. */
  #progressed(stream: OpenStream): void {
    this.#idle.add(stream.id, configuredMs('streamIdleMs', this.#host.config().streamIdleMs), () => this.#idled(stream.id));
  }

  /** Nothing moved for streamIdleMs: the reader gets what was sent, then the error; the producer stops; the gateway forgets the stream. */
  #idled(id: string): void {
    const stream = this.#streams.get(id);
    if (!stream) return;
    const { streamIdleMs } = this.#host.config();
    const ended = stream.final !== undefined; // ended, but the client never said it read the end
    if (!ended) {
      const error = new LimitExceededError('streamIdleMs', streamIdleMs, `stream "${stream.method}" made no progress for ${streamIdleMs} ms (nothing read, nothing produced), so it was ended and its producer stopped; read the streams you open or cancel them (break out of the for await), and call again for more. A producer that pauses longer needs a larger streamIdleMs on the gateway.`);
      this.#send(stream);
      const ws = stream.ws;
      if (ws && this.#host.isOpen(ws)) safeSend(ws, encodeFrame({ type: 'stream_error', id, count: stream.sent, error: encodeError(error) }));
    }
    this.cancel(id);
  }

  #end(stream: OpenStream, frame: Parameters<typeof encodeFrame>[0]): void {
    stream.final = encodeFrame(frame);
    if (stream.source) release(stream.source, false);
    stream.source = undefined;
  }
}

/** `count` random 48-bit tags (8 base64url characters), from one call to the random source. */
function newTags(count: number): string[] {
  if (count === 0) return [];
  const bytes = crypto.getRandomValues(new Uint8Array(count * 6));
  const tags = new Array<string>(count);
  for (let i = 0; i < count; i++) tags[i] = btoa(String.fromCharCode(...bytes.subarray(i * 6, i * 6 + 6))).replace(/\+/g, '-').replace(/\//g, '_');
  return tags;
}

/** Releases what workerd holds for one RPC result. */
export function disposeResult(result: unknown): void {
  try {
    (result as Partial<Disposable> | null)?.[Symbol.dispose]?.();
  } catch {
    // not disposable, or already disposed
  }
}

/** Lets the node forget its stream (and stops the producer first if `cancel`). Never awaited: a node that does not answer must not hold the gateway. */
export function release(source: StreamSource, cancel: boolean): void {
  const dispose = (): void => {
    try {
      (source as Partial<Disposable>)[Symbol.dispose]?.();
    } catch {
      // already disposed
    }
  };
  if (!cancel) return dispose();
  Promise.resolve().then(() => source.cancel()).catch(() => undefined).finally(dispose);
}
