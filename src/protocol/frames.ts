/**
 * Wire frames of protocol v1. Every frame is a JSON text frame with a `type`.
 * Argument, result and error payloads are codec strings (see codec.ts), so the
 * gateway can pass them through without decoding them.
 * The full specification is docs/protocol.md.
 */
import { DEFAULTS } from './limits.js';
import { MAX_STATE_DEPTH } from './wire.js';
import { ProtocolError } from './errors.js';
import { decodeStreamFrame, STREAM_TYPES, type StreamFrame } from './stream-frames.js';

export type * from './stream-frames.js';

/** Who made a call: a client through its gateway, or a mesh node. */
export type Origin =
  | { kind: 'client'; gateway: string; instance: string; sub: string }
  | { kind: 'node'; binding: string; instance?: string };

/** Where a client sends a call: a Durable Object (binding + instance) or a Worker (binding only). */
export interface CallTarget {
  binding: string;
  instance?: string;
}

// ── client → gateway ──────────────────────────────────────────────────────────

export interface CallFrame {
  type: 'call';
  id: string;
  to: CallTarget;
  method: string;
  /** codec string of the argument array */
  args: string;
  /** Application state to carry along the call chain (JSON object). Reserved keys are stripped by the gateway. */
  state?: Record<string, unknown>;
  /** The caller's deadline in ms: the gateway waits at least this long for the node. */
  timeoutMs?: number;
  /** On a resend: the gateway epoch the call was first sent under. */
  resentFrom?: string;
  /** The caller may cancel this call (a `cancel` frame): the gateway gives the node a way to hear it. */
  cancellable?: true;
  /** If the result is a stream: chunks the gateway may send before the first `stream_credit` (default DEFAULTS.streamWindow). */
  streamWindow?: number;
}

export type IncomingCallResponseFrame =
  | { type: 'incoming_call_response'; id: string; ok: true; result: string }
  /** The handler's answer is a stream: its chunks follow as `stream_chunk` frames with this id, within the gateway's credit. */
  | { type: 'incoming_call_response'; id: string; ok: true; stream: true }
  | { type: 'incoming_call_response'; id: string; ok: false; error: string };

export type ClientFrame = CallFrame | IncomingCallResponseFrame | StreamFrame;

// ── gateway → client ──────────────────────────────────────────────────────────

export interface ConnectionStatusFrame {
  type: 'connection_status';
  /** true: the gateway has no memory of this client (fresh, or grace period over): re-subscribe. */
  subscriptionRequired: boolean;
  instanceName: string;
  sub: string;
  protocol: number;
  /**
   * This incarnation of the gateway. A client that sees a different epoch on a
   * reconnect knows the gateway restarted (e.g. it hibernated) and forgot the
   * calls it had answered: calls sent before must not be resent.
   */
  epoch?: string;
  /** The gateway's frame limit: a client sends no frame longer than this. */
  maxFrameBytes?: number;
  /** The gateway takes batches (a message that is a JSON array of frames, at most this many): a client may send them, and is then sent them. */
  maxBatchFrames?: number;
  /** The gateway's frame rate: past a burst of `frameBurst`, more than this many frames a second close the socket (1008); a client paces below it. */
  framesPerSecond?: number;
  frameBurst?: number;
  /** The gateway's rate in characters (UTF-16 code units) of frames: past a burst of `byteBurst`, more than this many a second close the socket (1008); a client paces below it. */
  bytesPerSecond?: number;
  byteBurst?: number;
  /** The characters of unacknowledged chunks the gateway holds per stream: a client acknowledges before that (section 2.1). */
  maxStreamBufferBytes?: number;
}

export type CallResponseFrame =
  | { type: 'call_response'; id: string; ok: true; result: string }
  /** The result is a stream: its chunks follow as `stream_chunk` frames with this id; `window` is the one the gateway granted (it may cap the caller's). */
  | { type: 'call_response'; id: string; ok: true; stream: true; window: number }
  /** `retryAfterReconnect`: the call did not run (the token expired); send it again once reconnected. */
  | { type: 'call_response'; id: string; ok: false; error: string; retryAfterReconnect?: true };

export interface IncomingCallFrame {
  type: 'incoming_call';
  id: string;
  method: string;
  args: string;
  /** the original caller of the chain */
  origin: Origin;
  /** every hop, origin first, the immediate caller last */
  chain: Origin[];
}

export interface SupersededFrame {
  type: 'superseded';
  reason: string;
}

/** A frame the gateway could not act on and could not answer as a call. */
export interface ErrorFrame {
  type: 'error';
  id?: string;
  code: string;
  message: string;
}

export type ServerFrame = ConnectionStatusFrame | CallResponseFrame | IncomingCallFrame | SupersededFrame | ErrorFrame | StreamFrame;

// ── decoding ──────────────────────────────────────────────────────────────────

const BINDING_RE = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const METHOD_RE = /^[A-Za-z_$][A-Za-z0-9_$]{0,99}$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new ProtocolError('Frame is not valid JSON; send a JSON object with a "type" field.', 'bad_json');
  }
}

/** A call id that a caller can echo back: a non-empty string within the length limit. */
export function readCallId(frame: Record<string, unknown>, maxLength: number = DEFAULTS.maxCallIdLength): string | undefined {
  const id = frame.id;
  return typeof id === 'string' && id.length > 0 && id.length <= maxLength ? id : undefined;
}

/** A short description of a value for an error message; never calls the value's own toString (it may not be callable). */
function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.slice(0, 40));
  if (value === null || typeof value !== 'object') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

function fieldError(type: string, field: string, expected: string): ProtocolError {
  return new ProtocolError(`"${type}" frame field "${field}" must be ${expected}.`, 'bad_field');
}

/** A ProtocolError from `decodeClientFrame`, with what could still be read of the frame. */
export type FrameError = ProtocolError & { callId?: string; frameType?: string };

/** Deepest JSON nesting of one frame from a client: the frame's object, and in it `state`, at most MAX_STATE_DEPTH levels. */
export const MAX_FRAME_DEPTH = MAX_STATE_DEPTH + 1;

/**
 * Most arrays and objects one message from a client opens, in all frames of
 * a batch together (strings not counted). A call frame opens two, and more
 * only for its `state`; JSON.parse spends most of its time building them.
 */
export const MAX_MESSAGE_CONTAINERS = 8192;

/** A frame refused before parsing (client-messages.ts): only its top-level `id` and `type` were read, so it can still be answered. */
export class UnparsedFrame {
  constructor(readonly peeked: Record<string, string>) {}
}

/** Most frames one batch (a message that is a JSON array of frames) may carry, either way. */
export const MAX_BATCH_FRAMES = 256;

/**
 * A message, either way: one frame (a JSON object), or a batch of them (a
 * JSON array of 1 to MAX_BATCH_FRAMES), parsed but not yet checked: check
 * each element (checkClientFrame, or decodeServerMessage for the client).
 * Throws ProtocolError for anything else. A gateway reads a client's
 * message with readClientMessage (client-messages.ts), which bounds it first.
 */
export function parseMessage(text: string): { values: unknown[]; batch: boolean } {
  const value = parseJson(text);
  if (!Array.isArray(value)) return { values: [value], batch: false };
  return { values: checkBatchLength(value), batch: true };
}

/** The elements of a batch, if it holds 1 to MAX_BATCH_FRAMES of them; else a ProtocolError. */
export function checkBatchLength<T>(values: T[]): T[] {
  if (values.length === 0 || values.length > MAX_BATCH_FRAMES) {
    throw new ProtocolError(`A batch must hold 1 to ${MAX_BATCH_FRAMES} frames; this one held ${values.length > MAX_BATCH_FRAMES ? `more than ${MAX_BATCH_FRAMES}` : 'none'}.`, 'bad_frame');
  }
  return values;
}

/** Checks one parsed frame from a client, as decodeClientFrame does (the same errors). */
export function checkClientFrame(value: unknown, maxIdLength: number = DEFAULTS.maxCallIdLength): ClientFrame {
  const frame = value instanceof UnparsedFrame ? value.peeked : value;
  if (!isObject(frame)) throw new ProtocolError('Frame must be a JSON object with a "type" field.', 'bad_frame');
  const id = readCallId(frame, maxIdLength);
  const fail = (error: ProtocolError): never => {
    if (id !== undefined) (error as FrameError).callId = id;
    (error as FrameError).frameType = typeof frame.type === 'string' ? frame.type.slice(0, 40) : undefined;
    throw error;
  };
  if (value instanceof UnparsedFrame) {
    fail(new ProtocolError(`Frame nests JSON more than ${MAX_FRAME_DEPTH} levels deep, or opens more than ${MAX_MESSAGE_CONTAINERS} arrays and objects with the frames sent with it; `
      + `only "state" may nest, at most ${MAX_STATE_DEPTH} levels: send a smaller state.`, 'bad_frame'));
  }
  if (frame.type === 'call') {
    if (id === undefined) fail(fieldError('call', 'id', `a non-empty string of at most ${maxIdLength} characters`));
    const to = frame.to;
    if (!isObject(to) || typeof to.binding !== 'string' || !BINDING_RE.test(to.binding)) fail(fieldError('call', 'to.binding', 'a binding name (letters, digits, _)'));
    const target = to as Record<string, unknown>;
    if (target.instance !== undefined && (typeof target.instance !== 'string' || target.instance.length === 0 || target.instance.length > 256)) fail(fieldError('call', 'to.instance', 'a non-empty string of at most 256 characters'));
    if (typeof frame.method !== 'string' || !METHOD_RE.test(frame.method)) fail(fieldError('call', 'method', 'a method name (identifier characters, at most 100)'));
    if (typeof frame.args !== 'string') fail(fieldError('call', 'args', 'a codec string of the argument array'));
    if (frame.state !== undefined && !isObject(frame.state)) fail(fieldError('call', 'state', 'a JSON object'));
    if (frame.timeoutMs !== undefined && !(Number.isInteger(frame.timeoutMs) && (frame.timeoutMs as number) > 0 && (frame.timeoutMs as number) <= 86_400_000)) {
      fail(fieldError('call', 'timeoutMs', 'a whole number of milliseconds from 1 to 86400000'));
    }
    if (frame.resentFrom !== undefined && (typeof frame.resentFrom !== 'string' || frame.resentFrom.length === 0 || frame.resentFrom.length > 64)) {
      fail(fieldError('call', 'resentFrom', 'the epoch string from connection_status'));
    }
    if (frame.cancellable !== undefined && frame.cancellable !== true) fail(fieldError('call', 'cancellable', 'true or absent'));
    if (frame.streamWindow !== undefined && !(Number.isInteger(frame.streamWindow) && (frame.streamWindow as number) >= 1)) {
      fail(fieldError('call', 'streamWindow', 'a whole number of chunks ≥ 1'));
    }
    return {
      type: 'call',
      id: id!,
      to: target.instance === undefined ? { binding: target.binding as string } : { binding: target.binding as string, instance: target.instance as string },
      method: frame.method as string,
      args: frame.args as string,
      ...(frame.state === undefined ? {} : { state: frame.state as Record<string, unknown> }),
      ...(frame.timeoutMs === undefined ? {} : { timeoutMs: frame.timeoutMs as number }),
      ...(frame.resentFrom === undefined ? {} : { resentFrom: frame.resentFrom as string }),
      ...(frame.cancellable === true ? { cancellable: true as const } : {}),
      ...(frame.streamWindow === undefined ? {} : { streamWindow: frame.streamWindow as number }),
    };
  }
  if (frame.type === 'incoming_call_response') {
    if (id === undefined) fail(fieldError('incoming_call_response', 'id', 'the id of the incoming call'));
    if (frame.ok === true && typeof frame.result === 'string') return { type: 'incoming_call_response', id: id!, ok: true, result: frame.result };
    if (frame.ok === true && frame.stream === true) return { type: 'incoming_call_response', id: id!, ok: true, stream: true };
    if (frame.ok === false && typeof frame.error === 'string') return { type: 'incoming_call_response', id: id!, ok: false, error: frame.error };
    return fail(fieldError('incoming_call_response', 'ok/result/error', 'ok: true with a "result" codec string, or ok: false with an "error" codec string'));
  }
  if (typeof frame.type === 'string' && STREAM_TYPES.has(frame.type)) {
    try {
      return decodeStreamFrame(frame, id);
    } catch (error) {
      return fail(error as ProtocolError);
    }
  }
  return fail(new ProtocolError(`Unknown frame type ${describe(frame.type)}; expected "call", "incoming_call_response" or a stream frame (docs/protocol.md §2.1).`, 'unknown_type'));
}

/**
 * Parses a frame from the gateway. The client trusts the gateway, so this
 * checks shape only — but it does check it, so a malformed frame is a
 * ProtocolError here, never a TypeError deeper in the client.
 */
export function decodeServerFrame(text: string): ServerFrame {
  return checkServerFrame(parseJson(text));
}

/**
 * The frames of a message from the gateway: one frame, or a batch (a JSON
 * array of them), each checked as decodeServerFrame checks one. A frame of a
 * batch that fails its check goes to `onBadFrame` and the others are kept,
 * as they would be sent one by one. Throws for a message that is no frame
 * and no batch of 1 to MAX_BATCH_FRAMES.
 */
export function decodeServerMessage(text: string, onBadFrame: (error: unknown) => void): ServerFrame[] {
  const { values, batch } = parseMessage(text);
  if (!batch) return [checkServerFrame(values[0])];
  const frames: ServerFrame[] = [];
  for (const element of values) {
    try {
      frames.push(checkServerFrame(element));
    } catch (error) {
      onBadFrame(error);
    }
  }
  return frames;
}

/** Throws the bad_field error for `field` of a `type` frame unless `ok`. */
function checkField(type: unknown, ok: boolean, field: string, expected: string): void {
  if (!ok) throw fieldError(String(type), field, expected);
}

function isString(value: unknown): value is string {
  return typeof value === 'string';
}

function checkServerFrame(value: unknown): ServerFrame {
  if (!isObject(value)) throw new ProtocolError('Frame must be a JSON object with a "type" field.', 'bad_frame');
  const frame = value;
  const type = frame.type;
  switch (type) {
    case 'connection_status':
      checkField(type, typeof frame.subscriptionRequired === 'boolean', 'subscriptionRequired', 'a boolean');
      checkField(type, isString(frame.instanceName) && isString(frame.sub), 'instanceName/sub', 'strings');
      break;
    case 'call_response':
      checkField(type, isString(frame.id), 'id', 'a string');
      checkField(type, (frame.ok === true && (isString(frame.result) || (frame.stream === true && Number.isSafeInteger(frame.window) && (frame.window as number) >= 1))) || (frame.ok === false && isString(frame.error)), 'ok/result/error', 'ok: true with a "result" string (or stream: true and a window), or ok: false with an "error" string');
      break;
    case 'incoming_call':
      checkField(type, isString(frame.id) && isString(frame.method) && isString(frame.args), 'id/method/args', 'strings');
      checkField(type, isObject(frame.origin) && Array.isArray(frame.chain), 'origin/chain', 'an object and an array');
      break;
    case 'superseded':
      checkField(type, isString(frame.reason), 'reason', 'a string');
      break;
    case 'error':
      checkField(type, isString(frame.code) && isString(frame.message) && (frame.id === undefined || isString(frame.id)), 'code/message/id', 'strings');
      break;
    default:
      if (typeof type === 'string' && STREAM_TYPES.has(type)) return decodeStreamFrame(frame, typeof frame.id === 'string' ? frame.id : undefined);
      throw new ProtocolError(`Unknown frame type from gateway: ${describe(type)}`, 'unknown_type');
  }
  return frame as unknown as ServerFrame;
}

export function encodeFrame(frame: ClientFrame | ServerFrame): string {
  return JSON.stringify(frame);
}

/**
 * A `call_response` with a result or an error, the same text as encodeFrame
 * makes of it, built as a string: it goes out for every call, and the frame
 * object and its JSON walk cost more than the two strings it quotes.
 */
export function encodeCallResponse(id: string, ok: boolean, payload: string, retryAfterReconnect = false): string {
  const head = `{"type":"call_response","id":${JSON.stringify(id)},`;
  if (ok) return `${head}"ok":true,"result":${JSON.stringify(payload ?? '')}}`;
  return `${head}"ok":false,"error":${JSON.stringify(payload ?? '')}${retryAfterReconnect ? ',"retryAfterReconnect":true' : ''}}`;
}
