/**
 * Answers already sent, kept so that a call delivered again (after a
 * reconnect) is answered from memory instead of running twice. Bounded by
 * count and by UTF-8 bytes, oldest forgotten first; the newest answer is
 * always kept, however large. Both the gateway (client → mesh calls) and the
 * client (mesh → client calls) keep one.
 */

const NON_ASCII = /[^\x00-\x7f]/;

/** UTF-8 length of a string, without allocating its encoding. */
export function utf8Length(text: string): number {
  // Most answers are ASCII (the codec's JSON escapes nothing else, but strings in it may hold any character): a native scan says so.
  if (!NON_ASCII.test(text)) return text.length;
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) bytes += 1;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a surrogate pair: 4 bytes for 2 units
      i++;
    } else bytes += 2;
  }
  return bytes;
}

export interface AnswerLimits {
  /** answers kept at most */
  count: number;
  /** total UTF-8 bytes of the answers kept */
  bytes: number;
}

interface Remembered {
  text: string;
  bytes: number;
  /** the last channel (socket) this answer went out on */
  sentOn: object | undefined;
}

export class AnswerMemory {
  readonly #answers = new Map<string, Remembered>();
  readonly #limits: () => AnswerLimits;
  #bytes = 0;

  /** `limits` is read at each use, so a configuration changed after construction applies. */
  constructor(limits: () => AnswerLimits) {
    this.#limits = limits;
  }

  get size(): number {
    return this.#answers.size;
  }

  /** Total UTF-8 bytes of the answers kept. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Every answer kept, oldest first. */
  *entries(): IterableIterator<[id: string, text: string]> {
    for (const [id, { text }] of this.#answers) yield [id, text];
  }

  get(id: string): string | undefined {
    return this.#answers.get(id)?.text;
  }

  /** Keeps `text` as the answer to `id`, sent (or about to be sent) on `sentOn`. */
  remember(id: string, text: string, sentOn?: object): void {
    const previous = this.#answers.get(id);
    if (previous) {
      this.#answers.delete(id);
      this.#bytes -= previous.bytes;
    }
    const bytes = utf8Length(text);
    this.#answers.set(id, { text, bytes, sentOn });
    this.#bytes += bytes;
    const { count, bytes: maxBytes } = this.#limits();
    while (this.#answers.size > count || (this.#answers.size > 1 && this.#bytes > maxBytes)) {
      const [oldestId, oldest] = this.#answers.entries().next().value!;
      this.#answers.delete(oldestId);
      this.#bytes -= oldest.bytes;
    }
  }

  /**
   * The remembered answer to send again on `channel`: each answer goes out at
   * most once per channel, so a peer that repeats a call id on one socket
   * cannot make us send (and the runtime buffer) the same answer over and
   * over. `undefined`: nothing remembered; `null`: already sent on `channel`.
   */
  replay(id: string, channel: object): string | null | undefined {
    const remembered = this.#answers.get(id);
    if (!remembered) return undefined;
    if (remembered.sentOn === channel) return null;
    remembered.sentOn = channel;
    return remembered.text;
  }

  clear(): void {
    this.#answers.clear();
    this.#bytes = 0;
  }
}
