/**
 * What a relay carries back for each subscriber, kept within a budget: a
 * relay's answer is one RPC message, and the answers of a whole tree meet in
 * the topic object.
 */
import { decodeValue, encodeError } from '../protocol/codec.js';
import { LimitExceededError, MeshError, registerErrorClass } from '../protocol/errors.js';
import { failure } from '../protocol/failure.js';
import { DEFAULT_VALUE_BOUNDS } from '../protocol/value-bounds.js';

/**
 * A fan-out relay could not carry the call to a subscriber: not called before
 * the relay's deadline (`relay_not_reached`), called but unanswered by it
 * (`relay_unanswered`), or a relay was too slow or failed as a whole
 * (`relay_late`, `relay_failed`). The relays' doing, not the client's: the
 * subscriber stays subscribed and no timeout is counted against it.
 */
export class FanOutRelayError extends MeshError {
  clientInstanceName?: string;
  constructor(message: string, code: 'relay_not_reached' | 'relay_unanswered' | 'relay_late' | 'relay_failed', clientInstanceName?: string) {
    super(message, code);
    if (clientInstanceName !== undefined) this.clientInstanceName = clientInstanceName;
  }
}
// Relays and topic objects pass it between them encoded: it revives as itself.
registerErrorClass(FanOutRelayError);

/** A gateway's answer for one subscriber, as it came back (a call's result, a notification's receipt) or why not. */
export type RelayedAnswer = { ok: true; result?: string; queued?: boolean } | { ok: false; error: string };

/** A longer error than this is shortened by the relay (its name, class fields and the start of its message kept). */
export const RELAYED_ERROR_CHARS = 1_024;

/**
 * Keeps what a relay carries back within `answerChars`, each answer fitted as
 * it arrives (the raw answer is then let go). Every subscriber has its own
 * share (answerChars / subscribers); what one leaves unused carries forward
 * to later answers, so no answer can take a slice-mate's share. A result past
 * its share and what is spare becomes a LimitExceededError (the client did
 * run the method); an error is shortened to RELAYED_ERROR_CHARS; receipts
 * carry nothing.
 */
export class AnswerShares {
  readonly #answerChars: number;
  readonly #share: number;
  #spare = 0;

  constructor(answerChars: number, subscribers: number) {
    this.#answerChars = answerChars;
    this.#share = Math.floor(answerChars / Math.max(subscribers, 1));
  }

  /** Call once per subscriber. */
  fit(answer: RelayedAnswer): RelayedAnswer {
    if (!answer.ok) return fitError(answer);
    const over = (answer.result?.length ?? 0) - this.#share;
    if (over <= this.#spare) {
      this.#spare -= over;
      return answer;
    }
    this.#spare += this.#share;
    return failure(new LimitExceededError('relayAnswerChars', this.#answerChars,
      'this subscriber\'s answer is larger than its share of what the fan-out carries back through its relays; the client ran the method. Answer a fan-out with less, or use notify.'));
  }
}

/**
 * Whether `value` is what a relay owes for `count` subscribers: a dense list
 * of exactly one well-formed answer per subscriber, within `answerChars` of
 * results and RELAYED_ERROR_CHARS per error. Anything else is refused whole,
 * never read by position (a hole would shift every later outcome).
 */
export function isAnswerList(value: unknown, count: number, answerChars: number): value is RelayedAnswer[] {
  if (!Array.isArray(value) || value.length !== count) return false;
  let chars = 0;
  for (let i = 0; i < count; i++) {
    if (!Object.hasOwn(value, i)) return false;
    const answer = value[i] as Record<string, unknown> | null;
    if (typeof answer !== 'object' || answer === null) return false;
    if (answer.ok === true) {
      if ((answer.result !== undefined && typeof answer.result !== 'string') || (answer.queued !== undefined && typeof answer.queued !== 'boolean')) return false;
      chars += (answer.result as string | undefined)?.length ?? 0;
    } else if (answer.ok !== false || typeof answer.error !== 'string' || answer.error.length > RELAYED_ERROR_CHARS) {
      return false;
    }
  }
  return chars <= answerChars;
}

/** An error answer within RELAYED_ERROR_CHARS (shortened, its name kept, so it is classified the same); any other answer as it is. */
export function fitError(answer: RelayedAnswer): RelayedAnswer {
  return answer.ok || answer.error.length <= RELAYED_ERROR_CHARS ? answer : { ok: false, error: shortened(answer.error) };
}

/** The error with its name, class fields and the start of its message, small enough to carry. */
function shortened(encoded: string): string {
  let original: Record<string, unknown> = {};
  try {
    const decoded = decodeValue(encoded, DEFAULT_VALUE_BOUNDS);
    if (decoded instanceof Error) original = decoded as unknown as Record<string, unknown>;
  } catch {
    // unreadable: a plain MeshError says so below
  }
  const short = new MeshError(String(original.message ?? 'An error too large to carry back through a fan-out relay.').slice(0, 500));
  short.name = String(original.name ?? 'MeshError').slice(0, 100);
  for (const key of ['code', 'clientInstanceName', 'timeoutMs', 'limit', 'max']) {
    const value = original[key];
    if (typeof value === 'number' || (typeof value === 'string' && value.length <= 300)) (short as unknown as Record<string, unknown>)[key] = value;
  }
  const carried = encodeError(short);
  if (carried.length <= RELAYED_ERROR_CHARS) return carried;
  // Characters that encode long (escapes): keep only the name, cut short.
  const bare = new MeshError('An error too large to carry back through a fan-out relay.');
  bare.name = short.name.slice(0, 40);
  return encodeError(bare);
}
