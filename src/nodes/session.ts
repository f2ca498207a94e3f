/**
 * A session with one gateway: the object a Durable Object node returns from
 * `__meshgateSession()`, through which that gateway sends its next calls.
 *
 * It takes every call entry the node itself has, under the same names, and
 * hands each call to the node, so a call through it is delivered to the
 * same object, behind the same input gate, as one on the object's own stub
 * — but it is no new RPC to the object, which costs the runtime (and the
 * bill) less. All of one gateway's calls to the object go through it, so
 * they keep the order they were sent in. The gateway closes a session soon
 * after its last call (src/gateway/node-sessions.ts).
 */
import { RpcTarget } from 'cloudflare:workers';
import type { MeshDurableObject } from './base.js';
import type { BurstDelivery } from './dispatch.js';
import type { MeshEnvelope, MeshResult } from './envelope.js';
import type { PackedEnvelope, TextAnswer } from './packed-envelope.js';

type Maybe<T> = T | Promise<T>;

/** A node's call entries, as a session and the object's own stub both take them. */
export type CallEntries = Pick<MeshDurableObject, '__meshgateCall' | '__meshgateCallPacked' | '__meshgateCallText' | '__meshgateCallBatch' | '__meshgateCallBatchPacked'>;

export class NodeSession extends RpcTarget implements CallEntries {
  readonly #node: CallEntries;

  constructor(node: CallEntries) {
    super();
    this.#node = node;
  }

  __meshgateCall(envelope: MeshEnvelope): Maybe<MeshResult> {
    return this.#node.__meshgateCall(envelope);
  }

  __meshgateCallPacked(envelope: PackedEnvelope): Maybe<MeshResult> {
    return this.#node.__meshgateCallPacked(envelope);
  }

  __meshgateCallText(text: string): Maybe<TextAnswer> {
    return this.#node.__meshgateCallText(text);
  }

  __meshgateCallBatch(envelopes: MeshEnvelope[], deliver: BurstDelivery): Promise<boolean> {
    return this.#node.__meshgateCallBatch(envelopes, deliver);
  }

  __meshgateCallBatchPacked(envelopes: PackedEnvelope[], deliver: BurstDelivery): Promise<boolean> {
    return this.#node.__meshgateCallBatchPacked(envelopes, deliver);
  }
}
