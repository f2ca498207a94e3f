/**
 * Frames that are ready in the same turn go out as one message: a JSON
 * array of them (docs/protocol.md §2, batches), to a gateway that says it
 * takes batches. A client with many calls in flight makes its next calls as
 * the answers arrive, together; one message for all of them spares each
 * side a socket read or write per frame.
 */
export class OutgoingBatches {
  readonly #send: (text: string) => boolean;
  #maxFrames = 1;
  #maxChars = Infinity;
  #texts: string[] = [];
  #chars = 0;
  #scheduled = false;

  /** `send` writes one message to the open socket. */
  constructor(send: (text: string) => boolean) {
    this.#send = send;
  }

  /** What the gateway takes (connection_status `maxBatchFrames`; below 2 or unknown: no batches) and the longest message it reads. */
  limits(maxFrames: unknown, maxChars: number): void {
    this.#maxFrames = typeof maxFrames === 'number' && Number.isInteger(maxFrames) && maxFrames >= 2 ? maxFrames : 1;
    this.#maxChars = maxChars;
  }

  /** Sends `text` at the end of this turn, with whatever else is sent in it; at once if the gateway takes no batches. */
  send(text: string): boolean {
    if (this.#maxFrames < 2) return this.#send(text);
    if (this.#texts.length > 0 && (this.#texts.length >= this.#maxFrames || this.#chars + text.length + 2 > this.#maxChars)) this.#flush();
    this.#texts.push(text);
    this.#chars += text.length + 1;
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(() => {
        this.#scheduled = false;
        this.#flush();
      });
    }
    return true;
  }

  /** The socket went: what was gathered is dropped, like frames lost in flight. */
  drop(): void {
    this.#texts = [];
    this.#chars = 0;
  }

  #flush(): void {
    const texts = this.#texts;
    if (texts.length === 0) return;
    this.#texts = [];
    this.#chars = 0;
    this.#send(texts.length === 1 ? texts[0]! : `[${texts.join(',')}]`);
  }
}
