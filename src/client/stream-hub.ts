/**
 * Both directions of streaming for one MeshClient: the streams it reads
 * (streams.ts) and the ones its handlers produce (producers.ts), and what a
 * reconnect or a stop does to each.
 */
import { StreamInterruptedError } from '../protocol/errors.js';
import type { StreamFrame } from '../protocol/stream-frames.js';
import { ClientProducers } from './producers.js';
import { ClientStreams } from './streams.js';

export class StreamHub {
  /** streams of results this client reads */
  readonly reading: ClientStreams;
  /** streams this client's handlers answer with */
  readonly producing: ClientProducers;

  constructor(send: (text: string) => boolean) {
    this.reading = new ClientStreams(send);
    this.producing = new ClientProducers(send);
  }

  /** Data for a stream this client reads; credit or cancel for one it produces. */
  take(frame: StreamFrame): void {
    if (frame.type === 'stream_credit' || frame.type === 'cancel') this.producing.take(frame);
    else this.reading.take(frame);
  }

  /**
   * After a connection_status: a gateway that forgot this client forgot its
   * streams too; one that did not sends each again from what it holds. A
   * handler's stream never follows to a new socket (its node was told).
   */
  connected(subscriptionRequired: boolean): void {
    if (subscriptionRequired) this.reading.interruptAll((method) => new StreamInterruptedError(method));
    else this.reading.resumeAll();
    this.producing.stopAll();
  }

  /** The client stopped (closed, superseded, login or update required): every stream ends with `error`. */
  stopped(error: () => Error): void {
    this.reading.interruptAll(error);
    this.producing.stopAll();
  }
}
