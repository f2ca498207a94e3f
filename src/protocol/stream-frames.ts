/**
 * Stream and cancel frames (docs/protocol.md §2.1). A call whose result is a
 * stream is answered with `call_response` `stream: true`; its chunks follow as
 * `stream_chunk` frames numbered from 0, each stream ending with one
 * `stream_end` or `stream_error`. The client grants credit with
 * `stream_credit` and says it is done with a call or stream with `cancel`.
 * The stream's id is the id of the call that opened it.
 */
import { ProtocolError } from './errors.js';

// ── client → gateway ──────────────────────────────────────────────────────────

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
}

/** Stop call or stream `id` if it still runs (its node sees its signal abort), and forget it. Idempotent; never answered. */
export interface CancelFrame {
  type: 'cancel';
  id: string;
}

export type StreamClientFrame = StreamCreditFrame | CancelFrame;

// ── gateway → client ──────────────────────────────────────────────────────────

export interface StreamChunkFrame {
  type: 'stream_chunk';
  id: string;
  /** 0, 1, 2, … per stream; a chunk sent again after a reconnect keeps its number */
  seq: number;
  /** codec string of the chunk */
  value: string;
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

export type StreamServerFrame = StreamChunkFrame | StreamEndFrame | StreamErrorFrame;

export const STREAM_CLIENT_TYPES: ReadonlySet<string> = new Set(['stream_credit', 'cancel']);
export const STREAM_SERVER_TYPES: ReadonlySet<string> = new Set(['stream_chunk', 'stream_end', 'stream_error']);

/** Chunk counts and credit limits: whole numbers a double holds exactly. */
function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function fieldError(type: string, field: string, expected: string): ProtocolError {
  return new ProtocolError(`"${type}" frame field "${field}" must be ${expected}.`, 'bad_field');
}

/** Checks a client's stream or cancel frame whose `id` the caller has read already; throws ProtocolError `bad_field`. */
export function decodeStreamClientFrame(frame: Record<string, unknown>, id: string | undefined): StreamClientFrame {
  const type = frame.type as 'stream_credit' | 'cancel';
  if (id === undefined) throw fieldError(type, 'id', 'the id of the call or stream');
  if (type === 'cancel') return { type, id };
  if (!isCount(frame.received)) throw fieldError(type, 'received', 'a whole number ≥ 0 (chunks held)');
  if (!isCount(frame.limit) || frame.limit < frame.received) throw fieldError(type, 'limit', 'a whole number ≥ received (chunks that may be sent)');
  return { type, id, received: frame.received, limit: frame.limit };
}

/** Checks the shape of a gateway's stream frame (the client trusts the gateway, but a malformed frame must be a ProtocolError). */
export function checkStreamServerFrame(frame: Record<string, unknown>): void {
  const ok = typeof frame.id === 'string'
    && (frame.type === 'stream_chunk' ? isCount(frame.seq) && typeof frame.value === 'string'
      : isCount(frame.count) && (frame.type === 'stream_end' || typeof frame.error === 'string'));
  if (!ok) throw fieldError(String(frame.type), 'id/seq/count/value/error', 'as docs/protocol.md §2.1 says');
}
