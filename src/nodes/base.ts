/** Base classes for application nodes: a Durable Object and a Worker reachable through the mesh. */
import { DurableObject, WorkerEntrypoint } from 'cloudflare:workers';
import type { CallTarget, Origin } from '../protocol/frames.js';
import type { ValueBounds } from '../protocol/value-bounds.js';
import type { Guard } from './checks.js';
import { dispatchBurst, dispatchCall, valueBoundsOf, type BurstDelivery } from './dispatch.js';
import type { MeshEnvelope, MeshResult } from './envelope.js';
import { answerText, envelopeOfText, unpackEnvelope, type PackedEnvelope, type TextAnswer } from './packed-envelope.js';
import { failure } from '../protocol/failure.js';
import { MeshApi } from './mesh-api.js';
import { nodeDeadlines } from './call-deadlines.js';
import { NodeSession } from './session.js';

/** A node's own origin, as its callers address it (binding name, and instance for a Durable Object). */
function originOf(target: CallTarget): Origin {
  return { kind: 'node', binding: target.binding, ...(target.instance === undefined ? {} : { instance: target.instance }) };
}

/**
 * Runs a packed burst through `run` (the class's burst entry); a call whose
 * context does not unpack is answered with its error and never runs.
 */
async function runUnpacked(packed: PackedEnvelope[], deliver: BurstDelivery, run: (envelopes: MeshEnvelope[], deliver: BurstDelivery) => Promise<boolean>): Promise<boolean> {
  const envelopes: MeshEnvelope[] = [];
  const indexes: number[] = [];
  const refused: Array<[number, MeshResult]> = [];
  packed.forEach((one, index) => {
    try {
      envelopes.push(unpackEnvelope(one));
      indexes.push(index);
    } catch (error) {
      refused.push([index, failure(error)]);
    }
  });
  const accepted = await run(envelopes, (results) => deliver(results.map(([index, result]) => [indexes[index]!, result])));
  if (accepted && refused.length > 0) await deliver(refused);
  return accepted;
}

/** Runs `call` on the envelope a packed one stands for; one that does not unpack is answered with its error, having run nothing. */
function callUnpacked(packed: PackedEnvelope, call: (envelope: MeshEnvelope) => MeshResult | Promise<MeshResult>): MeshResult | Promise<MeshResult> {
  let envelope: MeshEnvelope;
  try {
    envelope = unpackEnvelope(packed);
  } catch (error) {
    return failure(error);
  }
  return call(envelope);
}

/** Runs `call` on the envelope a call text stands for, answered as a text (packed-envelope.ts); one that does not read is answered with its error, having run nothing. */
function callFromText(text: string, call: (envelope: MeshEnvelope) => MeshResult | Promise<MeshResult>): TextAnswer | Promise<TextAnswer> {
  let envelope: MeshEnvelope;
  try {
    envelope = envelopeOfText(text);
  } catch (error) {
    return answerText(failure(error));
  }
  const result = call(envelope);
  return result instanceof Promise ? result.then(answerText) : answerText(result);
}

export class MeshDurableObject<Env = unknown> extends DurableObject<Env> {
  /**
   * Opt in to bursts: calls from one client that arrive together may then
   * share one RPC (about 1.6× the throughput for a client with many calls in
   * flight). They run concurrently, like `Promise.all`, inside one event — so
   * the input gate no longer keeps one call's awaited storage operations or
   * `blockConcurrencyWhile()` apart from another call of the same burst.
   * Set it only when your methods do not rely on that, e.g. they use the
   * synchronous `ctx.storage.sql` / `ctx.storage.kv` APIs, or no storage.
   * Off by default: each call is its own RPC, exactly as with plain RPC.
   */
  static acceptsCallBursts = false;

  /**
   * Bounds on the values this node decodes (call arguments, and answers to
   * its own calls): how far one may expand through shared references, and
   * how deep it may nest. See docs/limits.md; unset fields keep the defaults.
   */
  static valueBounds: Partial<ValueBounds> = {};

  /**
   * The guard of every `@mesh` method that names none of its own, e.g. "the
   * caller is a member of this instance". Returns true to allow; anything
   * else refuses with ForbiddenError before the method runs.
   */
  static guard: Guard | undefined = undefined;

  /** Typed stubs to other nodes and to connected clients. */
  readonly mesh: MeshApi;
  #self: Origin | undefined;
  /** the deadlines of the calls this object serves, on one timer */
  readonly #deadlines = nodeDeadlines();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.mesh = new MeshApi(env, () => this.#self ?? { kind: 'node', binding: this.constructor.name, instance: ctx.id.name ?? ctx.id.toString() }, () => valueBoundsOf(this));
  }

  #acceptsBursts(): boolean {
    return (this.constructor as typeof MeshDurableObject).acceptsCallBursts === true;
  }

  /** Internal RPC entry for mesh calls; not callable by clients. A method that returns without a promise is answered in the same turn. */
  __meshgateCall(envelope: MeshEnvelope): MeshResult | Promise<MeshResult> {
    this.#self ??= originOf(envelope.target);
    const result = dispatchCall(this, envelope, this.#deadlines);
    return result instanceof Promise ? result.then((settled) => this.#marked(settled)) : this.#marked(result);
  }

  /** The result, saying whether this class takes bursts (the gateway learns it from any answer). */
  #marked(result: MeshResult): MeshResult {
    if (this.#acceptsBursts()) result.acceptsBursts = true;
    return result;
  }

  /** Internal RPC entry for a client's call with its context packed (packed-envelope.ts); not callable by clients. */
  __meshgateCallPacked(envelope: PackedEnvelope): MeshResult | Promise<MeshResult> {
    return callUnpacked(envelope, (unpacked) => this.__meshgateCall(unpacked));
  }

  /** Internal RPC entry for a client's call as one text, answered as one (packed-envelope.ts); not callable by clients. */
  __meshgateCallText(text: string): TextAnswer | Promise<TextAnswer> {
    return callFromText(text, (envelope) => this.__meshgateCall(envelope));
  }

  /** Internal RPC entry: a session through which one gateway sends its next calls to this object (session.ts); not callable by clients. */
  __meshgateSession(): NodeSession {
    return new NodeSession(this);
  }

  /** Internal RPC entry: a client this node watches is gone for good (mesh.watchDeparture); not callable by clients. */
  async __meshgateClientGone(instanceName: string, at: number): Promise<void> {
    if (typeof instanceName === 'string' && typeof at === 'number') await this.mesh.clientGone(instanceName, at);
  }

  /**
   * Internal RPC entry for a burst of calls from one gateway; not callable by
   * clients. Without acceptsCallBursts it runs nothing and answers false, and
   * the gateway sends the calls one by one (a gateway learned otherwise from
   * an earlier version of this class, or another instance mid-deployment).
   */
  async __meshgateCallBatch(envelopes: MeshEnvelope[], deliver: BurstDelivery): Promise<boolean> {
    if (!this.#acceptsBursts()) return false;
    if (envelopes[0]) this.#self ??= originOf(envelopes[0].target);
    await dispatchBurst(this, envelopes, deliver, this.#deadlines);
    return true;
  }

  /** Internal RPC entry for a burst whose contexts are packed; as __meshgateCallBatch. */
  async __meshgateCallBatchPacked(envelopes: PackedEnvelope[], deliver: BurstDelivery): Promise<boolean> {
    return runUnpacked(envelopes, deliver, (unpacked, delivery) => this.__meshgateCallBatch(unpacked, delivery));
  }
}

export class MeshWorker<Env = unknown> extends WorkerEntrypoint<Env> {
  /** As MeshDurableObject.valueBounds. */
  static valueBounds: Partial<ValueBounds> = {};

  /** As MeshDurableObject.guard. */
  static guard: Guard | undefined = undefined;

  readonly mesh: MeshApi;
  #self: Origin | undefined;

  constructor(ctx: ExecutionContext, env: Env) {
    super(ctx, env);
    this.mesh = new MeshApi(env, () => this.#self ?? { kind: 'node', binding: this.constructor.name }, () => valueBoundsOf(this));
  }

  __meshgateCall(envelope: MeshEnvelope): MeshResult | Promise<MeshResult> {
    this.#self ??= originOf(envelope.target);
    return dispatchCall(this, envelope);
  }

  __meshgateCallPacked(envelope: PackedEnvelope): MeshResult | Promise<MeshResult> {
    return callUnpacked(envelope, (unpacked) => this.__meshgateCall(unpacked));
  }

  __meshgateCallText(text: string): TextAnswer | Promise<TextAnswer> {
    return callFromText(text, (envelope) => this.__meshgateCall(envelope));
  }

  /** A Worker has no input gate to respect: bursts always run, concurrently. */
  async __meshgateCallBatch(envelopes: MeshEnvelope[], deliver: BurstDelivery): Promise<boolean> {
    if (envelopes[0]) this.#self ??= originOf(envelopes[0].target);
    await dispatchBurst(this, envelopes, deliver);
    return true;
  }

  async __meshgateCallBatchPacked(envelopes: PackedEnvelope[], deliver: BurstDelivery): Promise<boolean> {
    return runUnpacked(envelopes, deliver, (unpacked, delivery) => this.__meshgateCallBatch(unpacked, delivery));
  }
}
