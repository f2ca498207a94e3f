/**
 * Stream and cancel frames (docs/protocol.md §2.1). A call whose result is a
 * stream is answered with `stream: true`; its chunks follow as `stream_chunk`
 * frames numbered from 0, each stream ending with one `stream_end` or
 * `stream_error`. The reader grants credit with `stream_credit` and says it
 * is done with a call or stream with `cancel`. The stream's id is the id of
 * the call that opened it. Both directions use them: a node's stream to the
 * client (data from the gateway), a client handler's stream to a node (data
 * from the client).
 */
import { ProtocolError } from './errors.js';

// ── from the reader ───────────────────────────────────────────────────────────

/**
 * "I hold every chunk numbered below `received`; send chunks numbered below
 * `limit`." Both are absolute, so a repeat changes nothing. The first credit
 * for a stream on a socket other than the one it was being sent on is a
 * resume: the gateway sends again from `received`.
 */
export interface StreamCreditFrame {
  type: 'stream_credit';
  id: string;
  received: number;
  limit: number;
  /** the `tag` of chunk `received − 1` as it arrived: proof that the reader holds it (a gateway's chunks carry one) */
  tag?: string;
}

/** Stop call or stream `id` if it still runs (its node sees its signal abort), and forget it. Idempotent; never answered. */
export interface CancelFrame {
  type: 'cancel';
  id: string;
}

/** What the side reading a stream sends. */
export type StreamControlFrame = StreamCreditFrame | CancelFrame;

// ── from the producer ─────────────────────────────────────────────────────────

export interface StreamChunkFrame {
  type: 'stream_chunk';
  id: string;
  /** 0, 1, 2, … per stream; a chunk sent again after a reconnect keeps its number */
  seq: number;
  /** codec string of the chunk */
  value: string;
  /** from a gateway: a random token the reader echoes in the credit that acknowledges this chunk */
  tag?: string;
}

/** The stream ended after `count` chunks (numbered 0 … count − 1). */
export interface StreamEndFrame {
  type: 'stream_end';
  id: string;
  count: number;
}

/** The stream failed after `count` chunks; `error` is a codec string. */
export interface StreamErrorFrame {
  type: 'stream_error';
  id: string;
  count: number;
  error: string;
}

/** What the side producing a stream sends. */
export type StreamDataFrame = StreamChunkFrame | StreamEndFrame | StreamErrorFrame;

export type StreamFrame = StreamControlFrame | StreamDataFrame;

export const STREAM_TYPES: ReadonlySet<string> = new Set(['stream_credit', 'cancel', 'stream_chunk', 'stream_end', 'stream_error']);

export const MAX_TAG_LENGTH = 16;

function isTag(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0 && value.length <= MAX_TAG_LENGTH;
}

/** Chunk counts and credit limits: whole numbers a double holds exactly. */
function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function fieldError(type: string, field: string, expected: string): ProtocolError {
  return new ProtocolError(`"${type}" frame field "${field}" must be ${expected}.`, 'bad_field');
}

/** Checks a stream or cancel frame whose `id` the caller has read already; throws ProtocolError `bad_field`. */
export function decodeStreamFrame(frame: Record<string, unknown>, id: string | undefined): StreamFrame {
  const type = frame.type as StreamFrame['type'];
  if (id === undefined) throw fieldError(type, 'id', 'the id of the call or stream');
  switch (type) {
    case 'cancel':
      return { type, id };
    case 'stream_credit':
      if (!isCount(frame.received)) throw fieldError(type, 'received', 'a whole number ≥ 0 (chunks held)');
      if (!isCount(frame.limit) || frame.limit < frame.received) throw fieldError(type, 'limit', 'a whole number ≥ received (chunks that may be sent)');
      if (frame.tag !== undefined && !isTag(frame.tag)) throw fieldError(type, 'tag', `the tag of chunk received − 1, a string of 1 to ${MAX_TAG_LENGTH} characters`);
      return { type, id, received: frame.received, limit: frame.limit, ...(frame.tag === undefined ? {} : { tag: frame.tag }) };
    case 'stream_chunk':
      if (!isCount(frame.seq)) throw fieldError(type, 'seq', 'a whole number ≥ 0 (the chunk\'s number)');
      if (typeof frame.value !== 'string') throw fieldError(type, 'value', 'a codec string of the chunk');
      if (frame.tag !== undefined && !isTag(frame.tag)) throw fieldError(type, 'tag', `a string of 1 to ${MAX_TAG_LENGTH} characters`);
      return { type, id, seq: frame.seq, value: frame.value, ...(frame.tag === undefined ? {} : { tag: frame.tag }) };
    case 'stream_end':
    case 'stream_error':
      if (!isCount(frame.count)) throw fieldError(type, 'count', 'a whole number ≥ 0 (chunks before it)');
      if (type === 'stream_end') return { type, id, count: frame.count };
      if (typeof frame.error !== 'string') throw fieldError(type, 'error', 'a codec string of the error');
      return { type, id, count: frame.count, error: frame.error };
  }
}
