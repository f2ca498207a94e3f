/** Finds the RPC stub behind a binding name: a Durable Object namespace (needs an instance) or a Worker service binding. */
import { UnknownBindingError } from '../protocol/errors.js';
import type { CallTarget } from '../protocol/frames.js';
import type { BurstDelivery } from './dispatch.js';
import type { MeshEnvelope, MeshResult } from './envelope.js';
import { resultOfAnswer, type PackedEnvelope, type TextAnswer } from './packed-envelope.js';
import { isNamespace, isService } from '../bindings/kinds.js';

/** A node's call entries as the gateway calls them: on the object's (or Worker's) own stub, or on a session with the object. */
export interface NodeCallee {
  __meshgateCall(envelope: MeshEnvelope): Promise<MeshResult>;
  __meshgateCallPacked(envelope: PackedEnvelope): Promise<MeshResult>;
  __meshgateCallText(text: string): Promise<TextAnswer>;
  /** false: the node ran nothing and takes these calls one by one (earlier meshgate versions answer undefined, having run them) */
  __meshgateCallBatch(envelopes: MeshEnvelope[], deliver: BurstDelivery): Promise<boolean | undefined>;
  __meshgateCallBatchPacked(envelopes: PackedEnvelope[], deliver: BurstDelivery): Promise<boolean>;
}

/** A session's stub, as the gateway holds it (src/nodes/session.ts). */
export interface SessionStub extends NodeCallee, Disposable {}

export interface NodeStub extends NodeCallee {
  /** a Durable Object node's session for this gateway's next calls (src/nodes/session.ts), pipelined into the first */
  __meshgateSession(): Promise<SessionStub> & SessionStub;
}

/**
 * `excluded` lists bindings that must never be reached this way (the gateways
 * themselves), so a client cannot address another client's gateway.
 */
export function resolveTarget(env: unknown, target: CallTarget, excluded: readonly string[] = []): NodeStub {
  if (excluded.includes(target.binding)) throw new UnknownBindingError(target.binding, 'it is a gateway binding, which cannot be called directly');
  if (typeof env !== 'object' || env === null || !Object.prototype.hasOwnProperty.call(env, target.binding)) {
    throw new UnknownBindingError(target.binding, 'no binding of that name exists');
  }
  const binding = (env as Record<string, unknown>)[target.binding];
  if (isNamespace(binding)) {
    if (target.instance === undefined) throw new UnknownBindingError(target.binding, 'it is a Durable Object namespace, so the call needs an instance name');
    return binding.get(binding.idFromName(target.instance)) as NodeStub;
  }
  if (isService(binding)) {
    return binding as unknown as NodeStub;
  }
  throw new UnknownBindingError(target.binding, 'it is not a Durable Object or Worker binding');
}

/** An RPC failure that means "this is no mesh node" becomes UnknownBindingError; others pass through. */
function explainRpcError(error: unknown, binding: string): unknown {
  const message = (error as Error)?.message ?? '';
  // A class that is no DurableObject/WorkerEntrypoint at all ("does not support RPC") names no method in its error.
  const noMeshMethod = /does not (exist|implement)|not a function|no such method|RPC/i.test(message) && /__meshgateCall/.test(message);
  if (noMeshMethod || /does not support RPC/i.test(message)) {
    return new UnknownBindingError(binding, 'it is not a meshgate node (extend MeshDurableObject or MeshWorker)');
  }
  return error;
}

/** Calls a node with one call. */
export async function callNode(node: NodeCallee, envelope: MeshEnvelope): Promise<MeshResult> {
  try {
    return await node.__meshgateCall(envelope);
  } catch (error) {
    throw explainRpcError(error, envelope.target.binding);
  }
}

/** The RPC failed because the node has no `method` (a node of an earlier version, or no mesh node): nothing ran. */
export function lacksMethod(error: unknown, method: string): boolean {
  const message = String((error as Error)?.message ?? '');
  return message.includes(method) && /does not (exist|implement)|not a function|no such method/i.test(message);
}

/**
 * Calls a node with one call, its context packed. Undefined: the node has no
 * packed entry (an earlier meshgate version, or no mesh node) and ran
 * nothing; send it the MeshEnvelope instead.
 */
export async function callNodePacked(node: NodeCallee, envelope: PackedEnvelope): Promise<MeshResult | undefined> {
  try {
    return await node.__meshgateCallPacked(envelope);
  } catch (error) {
    if (lacksMethod(error, '__meshgateCallPacked')) return undefined;
    throw explainRpcError(error, envelope.target.binding);
  }
}

/**
 * Calls a node with one call as a text (packed-envelope.ts, callText).
 * Undefined: the node has no text entry (an earlier meshgate version, or no
 * mesh node) and ran nothing; send it the packed envelope instead.
 */
export async function callNodeText(node: NodeCallee, text: string, binding: string): Promise<MeshResult | undefined> {
  let answer: TextAnswer;
  try {
    answer = await node.__meshgateCallText(text);
  } catch (error) {
    if (lacksMethod(error, '__meshgateCallText')) return undefined;
    throw explainRpcError(error, binding);
  }
  return resultOfAnswer(answer);
}

/** Calls a node with a burst of calls in one RPC; results arrive through `deliver`. False: the node refused the burst and ran nothing. */
export async function callNodeBurst(node: NodeCallee, envelopes: MeshEnvelope[], deliver: BurstDelivery): Promise<boolean | undefined> {
  try {
    return await node.__meshgateCallBatch(envelopes, deliver);
  } catch (error) {
    throw explainRpcError(error, envelopes[0]?.target.binding ?? '?');
  }
}

/** As callNodeBurst, the contexts packed. Null: the node has no packed burst entry (an earlier meshgate version) and ran nothing. */
export async function callNodeBurstPacked(node: NodeCallee, envelopes: PackedEnvelope[], deliver: BurstDelivery): Promise<boolean | null> {
  try {
    return await node.__meshgateCallBatchPacked(envelopes, deliver);
  } catch (error) {
    if (lacksMethod(error, '__meshgateCallBatchPacked')) return null;
    throw explainRpcError(error, envelopes[0]?.target.binding ?? '?');
  }
}
