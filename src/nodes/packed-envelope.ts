/**
 * The packed envelope: a client's call as a gateway sends it to a node of
 * this version. A call that needs no stub beside it (no cancel watch) goes
 * as one JSON text (`__meshgateCallText`) and is answered with one text: the
 * RPC then carries two strings, which costs the runtime less than the
 * objects it would serialize field by field. Any other call goes as a
 * `PackedEnvelope` (`__meshgateCallPacked`): the context as one JSON text
 * inside the envelope's object. A client's call has a chain of one, so only
 * the origin, its verified identity and the state travel; the caller and
 * the chain are the origin. Nodes of earlier versions lack one entry or
 * both: the gateway falls back to the next form (targets.ts).
 */
import { ProtocolError } from '../protocol/errors.js';
import type { Origin } from '../protocol/frames.js';
import type { CallContext, MeshEnvelope, MeshResult, OriginAuth } from './envelope.js';

export interface PackedEnvelope extends Omit<MeshEnvelope, 'context'> {
  /** `{"origin":…,"originAuth":…,"state":…}` (packedContext) */
  context: string;
}

/**
 * The JSON text of a client-origin context's fixed part (`"origin":…,"originAuth":…`),
 * or undefined if it would not survive JSON unchanged (claims an onBeforeAccept
 * hook set to a Date, a Map…): such a context travels as objects.
 */
export function packedIdentity(origin: Origin, originAuth: OriginAuth): string | undefined {
  if (!isJsonData(origin, 0) || !isJsonData(originAuth, 0)) return undefined;
  return `"origin":${JSON.stringify(origin)},"originAuth":${JSON.stringify(originAuth)}`;
}

/** The packed context: the identity from packedIdentity, and the call's state (JSON data: it came in a JSON frame). */
export function packedContext(identity: string, state: Record<string, unknown>): string {
  return `{${identity},"state":${JSON.stringify(state)}}`;
}

/**
 * Any client-origin context packed whole, checked first (after an
 * onBeforeCallToMesh hook, which may have changed or added anything): undefined
 * if it is not a chain of one or holds what JSON would not carry unchanged.
 */
export function packContext(context: CallContext): string | undefined {
  const { origin, caller, chain, originAuth, state } = context;
  if (caller !== origin || chain.length !== 1 || chain[0] !== origin || Object.keys(context).length !== (originAuth === undefined ? 4 : 5)) return undefined;
  if (!isJsonData(origin, 0) || !isJsonData(state, 0) || (originAuth !== undefined && !isJsonData(originAuth, 0))) return undefined;
  return JSON.stringify(originAuth === undefined ? { origin, state } : { origin, originAuth, state });
}

/** The MeshEnvelope a packed one stands for. */
export function unpackEnvelope(packed: PackedEnvelope): MeshEnvelope {
  let parts: unknown = null;
  try {
    parts = typeof packed.context === 'string' ? JSON.parse(packed.context) : null;
  } catch {
    // reported by contextOf
  }
  const { target, method, args, deadlineMs, cancel } = packed;
  const envelope: MeshEnvelope = { target, method, args, context: contextOf(parts) };
  if (deadlineMs !== undefined) envelope.deadlineMs = deadlineMs;
  if (cancel !== undefined) envelope.cancel = cancel;
  return envelope;
}

/** The context a packed one's parsed JSON stands for. */
function contextOf(parsed: unknown): CallContext {
  const parts = parsed as Partial<CallContext> | null;
  const origin = parts?.origin;
  if (typeof origin !== 'object' || origin === null || typeof parts!.state !== 'object' || parts!.state === null) {
    throw new ProtocolError('A packed call envelope has no readable context: the gateway and this node disagree on the envelope format.', 'bad_payload');
  }
  const context: CallContext = { origin, caller: origin, chain: [origin], state: parts!.state };
  if (parts!.originAuth) context.originAuth = parts!.originAuth;
  return context;
}

/**
 * A packed envelope with no cancel watch as one JSON text:
 * `[binding, instance or null, method, deadlineMs or null, args, context]`,
 * the packed context written in place (it is JSON already).
 */
export function callText(envelope: PackedEnvelope): string {
  const { target, method, args, context, deadlineMs } = envelope;
  const instance = target.instance === undefined ? 'null' : JSON.stringify(target.instance);
  return `[${JSON.stringify(target.binding)},${instance},${JSON.stringify(method)},${deadlineMs ?? 'null'},${JSON.stringify(args)},${context}]`;
}

/** The MeshEnvelope a call text stands for (callText); a ProtocolError for anything else. */
export function envelopeOfText(text: unknown): MeshEnvelope {
  let parts: unknown;
  try {
    parts = typeof text === 'string' ? JSON.parse(text) : undefined;
  } catch {
    // reported below
  }
  if (!Array.isArray(parts) || parts.length !== 6) throw new ProtocolError('A call text is not the array of six a gateway sends: the gateway and this node disagree on the call format.', 'bad_payload');
  const [binding, instance, method, deadlineMs, args, context] = parts as unknown[];
  if (typeof binding !== 'string' || (instance !== null && typeof instance !== 'string') || typeof method !== 'string' || typeof args !== 'string'
    || (deadlineMs !== null && typeof deadlineMs !== 'number')) {
    throw new ProtocolError('A call text has a field of the wrong type: the gateway and this node disagree on the call format.', 'bad_payload');
  }
  const envelope: MeshEnvelope = { target: instance === null ? { binding } : { binding, instance }, method, args, context: contextOf(context) };
  if (deadlineMs !== null) envelope.deadlineMs = deadlineMs;
  return envelope;
}

/**
 * The answer to a call text: one string, its first character `r` (a result)
 * or `e` (an error), upper case if the node's class accepts bursts. A stream
 * carries a stub, which no text can: it is answered as the MeshResult.
 */
export type TextAnswer = string | MeshResult;

export function answerText(result: MeshResult): TextAnswer {
  if (result.ok && result.stream) return result;
  const mark = result.ok ? 'r' : 'e';
  return `${result.acceptsBursts ? mark.toUpperCase() : mark}${result.ok ? result.result : result.error}`;
}

/** The MeshResult an answer to a call text stands for; a ProtocolError for anything else. */
export function resultOfAnswer(answer: unknown): MeshResult {
  if (typeof answer !== 'string') {
    if (typeof answer === 'object' && answer !== null && (answer as MeshResult).ok === true && (answer as { stream?: unknown }).stream) return answer as MeshResult;
    throw new ProtocolError('A node answered a call text with neither a text nor a stream: the gateway and this node disagree on the call format.', 'bad_payload');
  }
  const mark = answer.charAt(0);
  const kind = mark.toLowerCase();
  if (kind !== 'r' && kind !== 'e') {
    throw new ProtocolError(`A node's answer to a call text starts with ${JSON.stringify(mark)}, not r or e: the gateway and this node disagree on the call format.`, 'bad_payload');
  }
  const result: MeshResult = kind === 'r' ? { ok: true, result: answer.slice(1) } : { ok: false, error: answer.slice(1) };
  if (mark !== kind) result.acceptsBursts = true;
  return result;
}

/** True if `value` is plain JSON data (what JSON.stringify then JSON.parse gives back unchanged), at most 64 levels deep. */
function isJsonData(value: unknown, depth: number): boolean {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return true;
  if (typeof value === 'number') return Number.isFinite(value) && !Object.is(value, -0);
  if (typeof value !== 'object' || depth > 64) return false;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!(i in value) || value[i] === undefined || !isJsonData(value[i], depth + 1)) return false;
    return true;
  }
  const proto = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key of Object.keys(value)) {
    const item = (value as Record<string, unknown>)[key];
    if (key === '__proto__' || item === undefined || !isJsonData(item, depth + 1)) return false;
  }
  return true;
}
