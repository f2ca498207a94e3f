/**
 * The packed envelope: a client's call as a gateway sends it to a node of
 * this version (`__meshgateCallPacked`), its context as one JSON text
 * instead of nested objects, which the RPC would serialize field by field.
 * A client's call has a chain of one, so only the origin, its verified
 * identity and the state travel; the caller and the chain are the origin.
 * Nodes of an earlier version have no packed entry: the gateway sends them
 * the MeshEnvelope (targets.ts, callNodePacked).
 */
import { ProtocolError } from '../protocol/errors.js';
import type { Origin } from '../protocol/frames.js';
import type { CallContext, MeshEnvelope, OriginAuth } from './envelope.js';

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
  let parts: Partial<CallContext> | null = null;
  try {
    parts = typeof packed.context === 'string' ? (JSON.parse(packed.context) as Partial<CallContext>) : null;
  } catch {
    // reported below
  }
  const origin = parts?.origin;
  if (typeof origin !== 'object' || origin === null || typeof parts!.state !== 'object' || parts!.state === null) {
    throw new ProtocolError('A packed call envelope has no readable context: the gateway and this node disagree on the envelope format.', 'bad_payload');
  }
  const context: CallContext = { origin, caller: origin, chain: [origin], state: parts!.state, ...(parts!.originAuth ? { originAuth: parts!.originAuth } : {}) };
  return { ...packed, context };
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
