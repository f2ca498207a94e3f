/** Base classes for application nodes: a Durable Object and a Worker reachable through the mesh. */
import { DurableObject, WorkerEntrypoint } from 'cloudflare:workers';
import type { Origin } from '../protocol/frames.js';
import { dispatchBatch, dispatchBatchGated, dispatchCall, type BatchDelivery } from './dispatch.js';
import type { MeshEnvelope, MeshResult } from './envelope.js';
import { MeshApi } from './mesh-api.js';

export class MeshDurableObject<Env = unknown> extends DurableObject<Env> {
  /** Typed stubs to other nodes and to connected clients. */
  readonly mesh: MeshApi;
  #self: Origin | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.mesh = new MeshApi(env, () => this.#self ?? { kind: 'node', binding: this.constructor.name, instance: ctx.id.name ?? ctx.id.toString() });
  }

  /** Internal RPC entry for mesh calls; not callable by clients. */
  async __meshgateCall(envelope: MeshEnvelope): Promise<MeshResult> {
    this.#self ??= { kind: 'node', binding: envelope.target.binding, ...(envelope.target.instance === undefined ? {} : { instance: envelope.target.instance }) };
    return dispatchCall(this, envelope);
  }

  /** Internal RPC entry for a burst of calls from one gateway, run as separate RPCs would be; not callable by clients. */
  async __meshgateCallBatch(envelopes: MeshEnvelope[], deliver: BatchDelivery): Promise<void> {
    const first = envelopes[0];
    if (first) this.#self ??= { kind: 'node', binding: first.target.binding, ...(first.target.instance === undefined ? {} : { instance: first.target.instance }) };
    return dispatchBatchGated(this, envelopes, deliver);
  }
}

export class MeshWorker<Env = unknown> extends WorkerEntrypoint<Env> {
  readonly mesh: MeshApi;
  #self: Origin | undefined;

  constructor(ctx: ExecutionContext, env: Env) {
    super(ctx, env);
    this.mesh = new MeshApi(env, () => this.#self ?? { kind: 'node', binding: this.constructor.name });
  }

  async __meshgateCall(envelope: MeshEnvelope): Promise<MeshResult> {
    this.#self ??= { kind: 'node', binding: envelope.target.binding };
    return dispatchCall(this, envelope);
  }

  async __meshgateCallBatch(envelopes: MeshEnvelope[], deliver: BatchDelivery): Promise<void> {
    if (envelopes[0]) this.#self ??= { kind: 'node', binding: envelopes[0].target.binding };
    return dispatchBatch(this, envelopes, deliver);
  }
}
