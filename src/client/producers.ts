/**
 * Streams this client's handlers answer with: a handler that returns an
 * async iterable (or a ReadableStream) is answered with `stream: true`, and
 * its chunks go out only within the credit the gateway grants as the calling
 * node reads. A `cancel` from the gateway, or a lost socket (these streams do
 * not resume), stops the producer: its `finally` runs.
 */
import { encodeError, encodeValue } from '../protocol/codec.js';
import { encodeFrame } from '../protocol/frames.js';
import type { StreamControlFrame } from '../protocol/stream-frames.js';
import { iteratorOf } from '../protocol/streamable.js';
import { DEFAULTS } from '../protocol/limits.js';

/** Chunks sent between two turns of the event loop: a producer that never waits cannot starve the page. */
const CHUNKS_PER_TURN = 32;

type Send = (text: string) => boolean;

interface Producer {
  iterator: AsyncIterator<unknown>;
  sent: number;
  limit: number;
  pumping: boolean;
}

export class ClientProducers {
  readonly #producers = new Map<string, Producer>();
  readonly #send: Send;

  constructor(send: Send) {
    this.#send = send;
  }

  get size(): number {
    return this.#producers.size;
  }

  /** Incoming call `id` was answered with `stream: true`: its chunks wait for the gateway's credit. */
  start(id: string, source: AsyncIterable<unknown> | ReadableStream<unknown>): void {
    this.#producers.set(id, { iterator: iteratorOf(source), sent: 0, limit: 0, pumping: false });
  }

  /** Credit or cancel from the gateway; one for a stream this client does not have is ignored. */
  take(frame: StreamControlFrame): void {
    const producer = this.#producers.get(frame.id);
    if (!producer) return;
    if (frame.type === 'cancel') return this.#stop(frame.id);
    // A credit runs at most a window past what was sent: a gateway cannot ask for millions of chunks at once.
    producer.limit = Math.max(producer.limit, Math.min(frame.limit, producer.sent + DEFAULTS.maxStreamWindow));
    void this.#pump(frame.id, producer);
  }

  /** The socket is gone (or the client stopped): nobody can read these any more. */
  stopAll(): void {
    for (const id of [...this.#producers.keys()]) this.#stop(id);
  }

  async #pump(id: string, producer: Producer): Promise<void> {
    if (producer.pumping) return;
    producer.pumping = true;
    try {
      while (this.#producers.get(id) === producer && producer.sent < producer.limit) {
        const step = await producer.iterator.next();
        if (this.#producers.get(id) !== producer) return;
        if (step.done) {
          this.#producers.delete(id);
          this.#send(encodeFrame({ type: 'stream_end', id, count: producer.sent }));
          return;
        }
        if (!this.#send(encodeFrame({ type: 'stream_chunk', id, seq: producer.sent, value: encodeValue(step.value) }))) return this.#stop(id);
        producer.sent++;
        if (producer.sent % CHUNKS_PER_TURN === 0) await new Promise<void>((resolve) => setTimeout(resolve, 0));
      }
    } catch (error) {
      if (this.#producers.get(id) !== producer) return;
      this.#producers.delete(id);
      this.#send(encodeFrame({ type: 'stream_error', id, count: producer.sent, error: encodeError(error) }));
      void Promise.resolve().then(() => producer.iterator.return?.()).catch(() => undefined);
    } finally {
      producer.pumping = false;
    }
  }

  #stop(id: string): void {
    const producer = this.#producers.get(id);
    if (!producer) return;
    this.#producers.delete(id);
    void Promise.resolve().then(() => producer.iterator.return?.()).catch(() => undefined);
  }
}
