/**
 * Streams a client's handler answers with, read by the node that called it.
 * The node holds a ClientStreamSource (an RpcTarget here, in the gateway)
 * and pulls from it as from a NodeStream; each pull becomes a `stream_credit`
 * to the client, so the client's producer runs only as far as the node
 * reads. Every chunk from the client is checked (its number, the credit, its
 * size) before it is kept. These streams do not survive the client's socket:
 * a drop ends them with StreamInterruptedError. One with no progress (no
 * pull from the node, no chunk from the client) for `streamIdleMs` ends with
 * LimitExceededError, so a silent client cannot hold a node's loop forever.
 */
import { RpcTarget } from 'cloudflare:workers';
import { encodeError } from '../protocol/codec.js';
import { LimitExceededError, ProtocolError, StreamInterruptedError } from '../protocol/errors.js';
import { encodeFrame } from '../protocol/frames.js';
import type { StreamDataFrame } from '../protocol/stream-frames.js';
import type { StreamBatch, StreamPull, StreamSource } from '../nodes/envelope.js';
import { configuredMs, type GatewayConfig } from './config.js';
import { Deadlines } from './deadlines.js';
import { safeSend } from './sockets.js';

type Config = Pick<GatewayConfig, 'maxStreamWindow' | 'maxStreamChunkBytes' | 'streamIdleMs'>;

interface FromClient {
  readonly id: string;
  readonly method: string;
  readonly ws: WebSocket;
  /** chunks handed to the node, received from the client, and allowed to it */
  taken: number;
  received: number;
  limit: number;
  queue: string[];
  final: { end: true } | { error: string } | undefined;
  wake: (() => void) | undefined;
}

/** What the node's stub calls; it lives in the gateway. */
class ClientStreamSource extends RpcTarget implements StreamSource {
  readonly #streams: ClientStreams;
  readonly #id: string;

  constructor(streams: ClientStreams, id: string) {
    super();
    this.#streams = streams;
    this.#id = id;
  }

  next(pull: StreamPull): Promise<StreamBatch> {
    return this.#streams.next(this.#id, pull);
  }

  async cancel(): Promise<void> {
    this.#streams.cancel(this.#id);
  }

  [Symbol.dispose](): void {
    this.#streams.cancel(this.#id);
  }
}

export class ClientStreams {
  readonly #config: () => Config;
  readonly #streams = new Map<string, FromClient>();
  /** when each open stream last made progress; one timer for all, none once every stream has ended */
  readonly #idle = new Deadlines<string>();

  constructor(config: () => Config) {
    this.#config = config;
  }

  get size(): number {
    return this.#streams.size;
  }

  /** Timers this keeps set (0 or 1; 0 once no stream is open). */
  get timers(): number {
    return Number(this.#idle.armed);
  }

  /** The client answered incoming call `id` on `ws` with a stream: the node gets a source to pull from. */
  open(ws: WebSocket, id: string, method: string): StreamSource {
    const stream: FromClient = { id, method, ws, taken: 0, received: 0, limit: 0, queue: [], final: undefined, wake: undefined };
    this.#streams.set(id, stream);
    this.#progressed(stream);
    return new ClientStreamSource(this, id);
  }

  /** A chunk, end or error from the client. False: no such stream (the caller tells the client to stop). */
  take(ws: WebSocket, frame: StreamDataFrame): boolean {
    const stream = this.#streams.get(frame.id);
    if (!stream || stream.ws !== ws) return false;
    if (stream.final) return true; // failed already: what the client sent before our cancel reached it
    const taken = this.#take(stream, frame);
    this.#progressed(stream);
    return taken;
  }

  #take(stream: FromClient, frame: StreamDataFrame): true {
    if (frame.type !== 'stream_chunk') {
      if (frame.count !== stream.received) return this.#fail(stream, new ProtocolError(`The stream answering "${stream.method}" ended after ${frame.count} chunks, but ${stream.received} arrived.`, 'bad_frame'));
      stream.final = frame.type === 'stream_end' ? { end: true } : { error: frame.error };
      stream.wake?.();
      return true;
    }
    if (frame.seq < stream.received) return true; // a repeat
    if (frame.seq > stream.received) return this.#fail(stream, new ProtocolError(`The stream answering "${stream.method}" skipped from chunk ${stream.received} to ${frame.seq}.`, 'bad_frame'));
    if (frame.seq >= stream.limit) return this.#fail(stream, new ProtocolError(`The stream answering "${stream.method}" sent chunk ${frame.seq} past its credit (${stream.limit}).`, 'bad_frame'));
    const { maxStreamChunkBytes } = this.#config();
    if (frame.value.length > maxStreamChunkBytes) {
      return this.#fail(stream, new LimitExceededError('maxStreamChunkBytes', maxStreamChunkBytes, `chunk ${frame.seq} answering "${stream.method}" is ${frame.value.length} characters; yield smaller chunks.`));
    }
    stream.received++;
    stream.queue.push(frame.value);
    stream.wake?.();
    return true;
  }

  /** The node pulls: more credit goes to the client, and what arrived comes back. */
  async next(id: string, pull: StreamPull): Promise<StreamBatch> {
    const stream = this.#streams.get(id);
    if (!stream) return { chunks: [], error: encodeError(new StreamInterruptedError('a client handler')) };
    this.#progressed(stream);
    const { maxStreamWindow } = this.#config();
    const window = Math.min(pull.limit - stream.taken, maxStreamWindow);
    const limit = stream.taken + window;
    // Credit in steps of half a window (one frame per chunk would double the traffic), or at once when the client has used all it had.
    if (!stream.final && limit > stream.limit && (limit - stream.limit >= Math.max(1, window >> 1) || stream.received >= stream.limit)) {
      stream.limit = limit;
      safeSend(stream.ws, encodeFrame({ type: 'stream_credit', id, received: stream.received, limit }));
    }
    if (stream.queue.length === 0 && !stream.final) await new Promise<void>((resolve) => (stream.wake = resolve));
    stream.wake = undefined;
    const chunks = stream.queue.splice(0);
    stream.taken += chunks.length;
    const final = stream.final;
    if (final) this.#streams.delete(id);
    else this.#progressed(stream);
    return { chunks, ...final };
  }

  /** The node stopped reading: the client's producer is told to stop. */
  cancel(id: string): void {
    const stream = this.#streams.get(id);
    if (!stream) return;
    this.#streams.delete(id);
    this.#idle.delete(id);
    if (!stream.final) safeSend(stream.ws, encodeFrame({ type: 'cancel', id }));
    stream.final ??= { end: true };
    stream.wake?.();
  }

  /** The socket `ws` is gone (or every socket, without it): the streams that came on it cannot go on. */
  socketLost(ws?: WebSocket): void {
    for (const stream of this.#streams.values()) {
      if (stream.final || (ws !== undefined && stream.ws !== ws)) continue;
      stream.final = { error: encodeError(new StreamInterruptedError(stream.method)) };
      this.#idle.delete(stream.id);
      stream.wake?.();
    }
  }

  /** The node pulled or the client sent: the stream's idle deadline starts again (and goes once it has ended). */
  #progressed(stream: FromClient): void {
    if (stream.final) this.#idle.delete(stream.id);
    else this.#idle.add(stream.id, configuredMs('streamIdleMs', this.#config().streamIdleMs), () => this.#idled(stream));
  }

  /** Nothing moved for streamIdleMs: the client's producer is told to stop, the node's loop ends with the error. */
  #idled(stream: FromClient): void {
    if (stream.final || this.#streams.get(stream.id) !== stream) return;
    const { streamIdleMs } = this.#config();
    this.#fail(stream, new LimitExceededError('streamIdleMs', streamIdleMs, `the stream answering "${stream.method}" made no progress for ${streamIdleMs} ms (the node read nothing, the client sent nothing), so it was ended and the client's producer stopped; read the streams you are answered with, and call again for more.`));
  }

  #fail(stream: FromClient, error: Error): true {
    stream.final = { error: encodeError(error) };
    stream.queue = [];
    safeSend(stream.ws, encodeFrame({ type: 'cancel', id: stream.id }));
    stream.wake?.();
    return true;
  }
}
