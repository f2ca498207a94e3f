/**
 * Streams the mesh sends this client: a call answered with `stream: true`
 * becomes a ClientStream, an async iterator over its chunks. The client holds
 * at most its window of chunks it has not read, and grants more credit as the
 * app reads (half a window at a time). It also acknowledges what arrived once
 * that reaches half the gateway's byte bound, so the gateway never waits on
 * bytes. Chunks are numbered, so one sent again after a reconnect is dropped,
 * and the resume says what it holds. Leaving a `for await` early, or the
 * call's AbortSignal, cancels the stream.
 */
import { decodeValue } from '../protocol/codec.js';
import { CancelledError, ProtocolError } from '../protocol/errors.js';
import { encodeFrame } from '../protocol/frames.js';
import type { StreamDataFrame } from '../protocol/stream-frames.js';

type Send = (text: string) => boolean;

/** The gateway's `maxStreamBufferBytes` from connection_status; undefined from a gateway that does not say. */
type BufferChars = () => number | undefined;

export class ClientStream<T = unknown> implements AsyncIterableIterator<T> {
  readonly id: string;
  readonly method: string;
  readonly #window: number;
  readonly #send: Send;
  readonly #forget: (stream: ClientStream<T>) => void;
  readonly #bufferChars: BufferChars;
  /** chunks received (the next one expected is numbered this), read by the app, and allowed (credit sent) */
  #received = 0;
  #consumed = 0;
  #granted: number;
  /** `received` in the last credit sent, and the characters of the chunks received since */
  #acked = 0;
  /** the tag of the last chunk received, echoed in credits as proof of holding it */
  #lastTag: string | undefined;
  #unackedChars = 0;
  readonly #queue: T[] = [];
  #failure: { error: unknown } | undefined;
  #ended = false;
  /** the iterator finished: returned, thrown, or read to the end */
  #finished = false;
  /** no longer listening to the signal, nor listed with the client */
  #detached = false;
  #waiter: { resolve: (result: IteratorResult<T>) => void; reject: (error: unknown) => void } | undefined;
  readonly #signal: AbortSignal | undefined;
  readonly #onAbort = (): void => this.#fail(new CancelledError(this.method, this.#signal?.reason), true);

  constructor(id: string, method: string, window: number, send: Send, forget: (stream: ClientStream<T>) => void, signal?: AbortSignal, bufferChars: BufferChars = () => undefined) {
    this.id = id;
    this.#bufferChars = bufferChars;
    this.method = method;
    this.#window = window;
    this.#granted = window; // the call frame's streamWindow
    this.#send = send;
    this.#forget = forget;
    this.#signal = signal;
    signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Chunks received and not read yet (at most the window). */
  get buffered(): number {
    return this.#queue.length;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    if (this.#queue.length > 0) {
      const value = this.#queue.shift()!;
      this.#consumed++;
      this.#grant(false);
      return Promise.resolve({ value, done: false });
    }
    if (this.#failure) {
      this.#finish(false);
      return Promise.reject(this.#failure.error);
    }
    if (this.#ended || this.#finished) {
      this.#finish(false);
      return Promise.resolve({ value: undefined, done: true });
    }
    if (this.#waiter) return Promise.reject(new TypeError('meshgate: one next() at a time on a stream; await the previous one first.'));
    // A gateway that does not say its byte bound may be holding it for the chunks not acknowledged: say they arrived.
    // (With the bound known, take() acknowledges in time; a credit per chunk here would flood a fast stream's socket.)
    if (this.#bufferChars() === undefined && this.#received > this.#acked) this.#grant(true);
    return new Promise((resolve, reject) => (this.#waiter = { resolve, reject }));
  }

  /** Leaving a `for await` early: the stream is cancelled (its producer stops). */
  return(): Promise<IteratorResult<T>> {
    const open = !this.#ended && !this.#failure;
    this.#queue.length = 0;
    this.#finish(open);
    return Promise.resolve({ value: undefined, done: true });
  }

  /** A frame of this stream from the gateway. */
  take(frame: StreamDataFrame): void {
    if (this.#ended || this.#failure || this.#finished) return;
    if (frame.type === 'stream_chunk') {
      if (frame.seq < this.#received) return; // sent again after a reconnect: already here
      if (frame.seq > this.#received) return this.#fail(new ProtocolError(`Stream "${this.method}" skipped from chunk ${this.#received} to ${frame.seq}.`, 'bad_frame'), true);
      if (this.#queue.length >= this.#window) return this.#fail(new ProtocolError(`Stream "${this.method}" sent past its window of ${this.#window} chunks.`, 'bad_frame'), true);
      let value: T;
      try {
        value = decodeValue(frame.value, undefined, `chunk ${frame.seq} of "${this.method}"`) as T;
      } catch (error) {
        return this.#fail(error, true);
      }
      this.#received++;
      this.#lastTag = frame.tag;
      this.#unackedChars += frame.value.length;
      this.#queue.push(value);
      // Half the gateway's byte bound arrived unacknowledged: acknowledge before it stops sending.
      const bufferChars = this.#bufferChars();
      if (bufferChars !== undefined && this.#unackedChars >= bufferChars / 2) this.#credit(Math.max(this.#granted, this.#received));
    } else if (frame.count !== this.#received) {
      return; // its chunks before it were lost with a socket: the resume brings them, then this again
    } else if (frame.type === 'stream_end') {
      this.#ended = true;
      this.#send(encodeFrame({ type: 'cancel', id: this.id })); // releases the gateway's copy
    } else {
      let error: unknown;
      try {
        error = decodeValue(frame.error, undefined, `the error of "${this.method}"`);
      } catch (decodeError) {
        error = decodeError;
      }
      this.#fail(error, true);
      return;
    }
    this.#deliver();
  }

  /** After a reconnect that kept the gateway's memory: tell it what this stream holds, so it sends again from there. */
  resume(): void {
    if (this.#ended || this.#failure || this.#finished) return;
    this.#grant(true);
  }

  /** The stream cannot go on (gateway forgot it, client stopped): the reader gets `error` once it has read what arrived. */
  interrupt(error: unknown): void {
    this.#fail(error, false);
  }

  /** Credit for another half window once the app has read that much (or at once, `force`). */
  #grant(force: boolean): void {
    const limit = this.#consumed + this.#window;
    if (!force && limit - this.#granted < Math.max(1, this.#window >> 1)) return;
    this.#credit(limit);
  }

  #credit(limit: number): void {
    this.#granted = limit;
    this.#acked = this.#received;
    this.#unackedChars = 0;
    // Not sent (disconnected)? The resume after the reconnect carries the same numbers.
    this.#send(encodeFrame({ type: 'stream_credit', id: this.id, received: this.#received, limit, ...(this.#lastTag === undefined ? {} : { tag: this.#lastTag }) }));
  }

  #fail(error: unknown, release: boolean): void {
    if (this.#failure || this.#finished) return;
    this.#failure = { error };
    if (release) this.#send(encodeFrame({ type: 'cancel', id: this.id }));
    this.#detach();
    // A cancel by signal is at once: what arrived but was not read is dropped.
    if (error instanceof CancelledError) this.#queue.length = 0;
    this.#deliver();
  }

  #deliver(): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    this.#waiter = undefined;
    this.next().then(waiter.resolve, waiter.reject);
  }

  #finish(cancel: boolean): void {
    if (this.#finished) return;
    this.#finished = true;
    if (cancel) this.#send(encodeFrame({ type: 'cancel', id: this.id }));
    this.#detach();
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.resolve({ value: undefined, done: true });
  }

  #detach(): void {
    if (this.#detached) return;
    this.#detached = true;
    this.#signal?.removeEventListener('abort', this.#onAbort);
    this.#forget(this);
  }
}

/** The streams of one client, by id (the id of the call that opened each). */
export class ClientStreams {
  readonly #streams = new Map<string, ClientStream>();
  readonly #send: Send;
  /** the gateway's `maxStreamBufferBytes` (connection_status), when it says and the value is usable */
  #bufferChars: number | undefined;

  constructor(send: Send) {
    this.#send = send;
  }

  get size(): number {
    return this.#streams.size;
  }

  set bufferChars(value: unknown) {
    this.#bufferChars = Number.isSafeInteger(value) && (value as number) >= 1 ? (value as number) : undefined;
  }

  open(id: string, method: string, window: number, signal: AbortSignal | undefined): ClientStream {
    const stream = new ClientStream(id, method, window, this.#send, (s) => {
      if (this.#streams.get(s.id) === s) this.#streams.delete(s.id);
    }, signal, () => this.#bufferChars);
    this.#streams.set(id, stream);
    return stream;
  }

  /** A frame for a stream this client no longer reads (cancelled, finished) is dropped. */
  take(frame: StreamDataFrame): void {
    this.#streams.get(frame.id)?.take(frame);
  }

  resumeAll(): void {
    for (const stream of [...this.#streams.values()]) stream.resume();
  }

  interruptAll(error: (method: string) => Error): void {
    for (const stream of [...this.#streams.values()]) stream.interrupt(error(stream.method));
  }
}

/** A ReadableStream over an async iterable (a stream result), for APIs that want one; cancelling it cancels the stream. */
export function toReadableStream<T>(iterable: AsyncIterable<T>): ReadableStream<T> {
  const iterator = iterable[Symbol.asyncIterator]();
  return new ReadableStream<T>({
    async pull(controller) {
      const { value, done } = await iterator.next();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    async cancel() {
      await iterator.return?.();
    },
  }, { highWaterMark: 0 });
}
