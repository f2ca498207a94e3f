/**
 * Where every frame the client sends goes out: paced under the gateway's
 * frame rate (frame-pacer.ts), then gathered with the others of its turn
 * into a batch (batches.ts), onto the connected socket.
 */
import type { ConnectionStatusFrame } from '../protocol/frames.js';
import { OutgoingBatches } from './batches.js';
import { FramePacer, type HeldFrameHooks } from './frame-pacer.js';
import { sendIfOpen, SOCKET_OPEN, type SocketLike } from './socket.js';

export class FrameOutlet {
  readonly #batches: OutgoingBatches;
  readonly #pacer: FramePacer;

  /** `socket`: the connected socket, if any. */
  constructor(socket: () => SocketLike | undefined) {
    this.#batches = new OutgoingBatches((text) => sendIfOpen(socket(), text));
    this.#pacer = new FramePacer((text) => this.#batches.send(text), () => socket()?.readyState === SOCKET_OPEN);
  }

  /** Sends on the connected socket; false means "queue it". `hooks`: see FramePacer.send. */
  send(text: string, hooks?: HeldFrameHooks): boolean {
    return this.#pacer.send(text, hooks);
  }

  /** What the gateway says in connection_status: its frame rate and whether it takes batches (of messages up to `maxFrameChars`). */
  adopt(status: ConnectionStatusFrame, maxFrameChars: number): void {
    this.#pacer.limits = status;
    this.#batches.limits(status.maxBatchFrames, maxFrameChars);
  }

  /** The socket went: frames held back or gathered are dropped (held calls are queued again, see FramePacer.dropHeld). */
  socketGone(): void {
    this.#pacer.dropHeld();
    this.#batches.drop();
  }
}
