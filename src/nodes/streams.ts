/**
 * Results that arrive in pieces, on the node's side. A `@mesh` method that
 * returns an async iterable (an `async function*`) or a ReadableStream is
 * answered with a NodeStream, an RpcTarget the gateway pulls from. The node
 * produces only up to the chunk number the gateway allows (the client's
 * credit), so a slow reader pauses the producer; cancelling stops it (its
 * `finally` runs) and aborts the call's `this.mesh.signal`.
 */
import { RpcTarget } from 'cloudflare:workers';
import { decodeValue, encodeError, encodeValue } from '../protocol/codec.js';
import { CancelledError, LimitExceededError } from '../protocol/errors.js';
import { DEFAULTS } from '../protocol/limits.js';
import { iteratorOf } from '../protocol/streamable.js';
import type { ValueBounds } from '../protocol/value-bounds.js';

export { isStreamable } from '../protocol/streamable.js';
import { runWithContext } from './context.js';
import type { CallContext, StreamBatch, StreamPull, StreamSource } from './envelope.js';
import { signalOf } from './signals.js';

export class NodeStream extends RpcTarget {
  readonly #iterator: AsyncIterator<unknown>;
  readonly #context: CallContext;
  readonly #method: string;
  /** chunks produced so far, and how many the gateway allows in all */
  #produced = 0;
  #pull: StreamPull = { limit: 0, maxChars: 0, maxChunkChars: 0 };
  #queue: string[] = [];
  #queuedChars = 0;
  /** how the stream ended, once it has; stays until the queue before it is taken */
  #final: { end: true } | { error: string } | undefined;
  #pumping = false;
  #stopped = false;
  #wake: (() => void) | undefined;

  constructor(source: AsyncIterable<unknown> | ReadableStream<unknown>, context: CallContext, method: string) {
    super();
    this.#iterator = iteratorOf(source);
    this.#context = context;
    this.#method = method;
  }

  async next(pull: StreamPull): Promise<StreamBatch> {
    this.#pull = { ...pull, limit: Math.max(this.#pull.limit, pull.limit) };
    this.#pump();
    if (this.#queue.length === 0 && !this.#final) await new Promise<void>((resolve) => (this.#wake = resolve));
    // What the gateway has room for (at least one chunk); the rest waits here, inside this stream's own bound.
    let count = 0;
    let chars = 0;
    while (count < this.#queue.length && (count === 0 || chars + this.#queue[count]!.length <= pull.maxChars)) chars += this.#queue[count++]!.length;
    const chunks = this.#queue.splice(0, count);
    this.#queuedChars -= chars;
    const final = this.#queue.length === 0 ? this.#final : undefined;
    if (!this.#final) this.#pump(); // produce the next ones while the gateway sends these
    return { chunks, ...final };
  }

  /** Stops the producer and aborts the call's signal. Does not wait for the producer's `finally`: one that ignores the signal must not hold the caller. */
  async cancel(): Promise<void> {
    this.#stop(new CancelledError(this.#method));
  }

  /** The gateway dropped its stub (the stream is over for it, or the gateway went away). */
  [Symbol.dispose](): void {
    this.#stop(new CancelledError(this.#method));
  }

  #stop(reason: unknown): void {
    if (this.#stopped) return;
    this.#stopped = true;
    const ended = this.#final !== undefined;
    this.#final ??= { end: true };
    this.#queue = [];
    this.#wakeUp();
    if (ended) return; // the producer finished by itself
    signalOf(this.#context).abort(reason);
    void Promise.resolve().then(() => this.#iterator.return?.()).catch(() => undefined);
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (!this.#stopped && !this.#final && this.#produced < this.#pull.limit && this.#queuedChars < this.#pull.maxChars) {
        // The producer runs in the call's context: this.mesh.context and this.mesh.signal work inside it.
        const step = await runWithContext(this.#context, () => this.#iterator.next());
        if (this.#stopped) return;
        if (step.done) {
          this.#final = { end: true };
          break;
        }
        const text = this.#encode(step.value);
        if (text === undefined) break;
        this.#produced++;
        this.#queue.push(text);
        this.#queuedChars += text.length;
        this.#wakeUp();
      }
    } catch (error) {
      if (!this.#stopped) this.#final = { error: encodeError(error) };
    } finally {
      this.#pumping = false;
      if (this.#final) this.#wakeUp();
    }
  }

  /** A chunk's codec string; undefined (the stream failed and the producer is stopped) if it cannot travel. */
  #encode(value: unknown): string | undefined {
    let failure: unknown;
    try {
      const text = encodeValue(value);
      if (text.length <= this.#pull.maxChunkChars) return text;
      failure = new LimitExceededError('maxStreamChunkBytes', this.#pull.maxChunkChars, `chunk ${this.#produced} of "${this.#method}" encodes to ${text.length} characters; yield smaller chunks.`);
    } catch (error) {
      failure = error;
    }
    this.#final = { error: encodeError(failure) };
    void Promise.resolve().then(() => this.#iterator.return?.()).catch(() => undefined);
    return undefined;
  }
}

/**
 * A stream another node returned, read from this node: pulled a window at a
 * time, each chunk decoded within `bounds`; leaving the loop early cancels it,
 * and so does `return()` before the first `next()` (a generator that never
 * started would skip its `finally`).
 */
export function readStream(source: StreamSource, bounds: ValueBounds | undefined, what: string): AsyncGenerator<unknown, void, undefined> {
  const reader = pullStream(source, bounds, what);
  let started = false;
  const next = reader.next.bind(reader);
  const finish = reader.return.bind(reader);
  reader.next = (...args) => ((started = true), next(...args));
  reader.return = async (value) => {
    if (!started) {
      started = true;
      await Promise.resolve(source.cancel()).catch(() => undefined);
      (source as Partial<Disposable>)[Symbol.dispose]?.();
    }
    return finish(value);
  };
  return reader;
}

async function* pullStream(source: StreamSource, bounds: ValueBounds | undefined, what: string): AsyncGenerator<unknown, void, undefined> {
  let taken = 0;
  let over = false;
  try {
    for (;;) {
      const batch = await source.next({ limit: taken + DEFAULTS.streamWindow, maxChars: DEFAULTS.maxStreamBufferBytes, maxChunkChars: DEFAULTS.maxStreamChunkBytes });
      // An RPC result is held until disposed (or its request ends, which a long stream may outlast): its data is copied, let it go.
      try {
        (batch as Partial<Disposable>)[Symbol.dispose]?.();
      } catch {
        // not disposable
      }
      for (const chunk of batch.chunks) {
        taken++;
        yield decodeValue(chunk, bounds, `chunk ${taken - 1} of ${what}`);
      }
      if (batch.error !== undefined) {
        over = true;
        throw decodeValue(batch.error, bounds, `the error of ${what}`);
      }
      if (batch.end) {
        over = true;
        return;
      }
    }
  } finally {
    if (!over) await Promise.resolve(source.cancel()).catch(() => undefined);
    (source as Partial<Disposable>)[Symbol.dispose]?.();
  }
}
