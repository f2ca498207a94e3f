/** Runs one incoming mesh call on a node: allowlist check, decode, context, encode. */
import { decodeValue, encodeError, encodeValue } from '../protocol/codec.js';
import { MethodNotExposedError, ProtocolError } from '../protocol/errors.js';
import { runWithContext } from './context.js';
import type { MeshEnvelope, MeshResult } from './envelope.js';
import { findExposedMethod } from './exposed.js';

export async function dispatchCall(node: object, envelope: MeshEnvelope): Promise<MeshResult> {
  const method = findExposedMethod(node, envelope.method);
  if (!method) return { ok: false, error: encodeError(new MethodNotExposedError(envelope.method, node.constructor?.name ?? 'the target')) };
  try {
    const args = decodeValue(envelope.args);
    if (!Array.isArray(args)) throw new ProtocolError('Call arguments must encode an array.', 'bad_payload');
    const result = await runWithContext(envelope.context, () => method.apply(node, args as never[]));
    return { ok: true, result: encodeValue(result) };
  } catch (error) {
    return { ok: false, error: encodeError(error) };
  }
}

/** Receives results of a batch, several at once when they complete together; an RPC stub of a gateway function. */
export type BatchDelivery = (results: Array<[index: number, result: MeshResult]>) => unknown;

/**
 * Runs a burst of calls (one RPC for many) in order of arrival, concurrently.
 * The gateway sends bursts only to Workers: calls inside one RPC share one
 * event, so a Durable Object's input gate could not keep them apart.
 * Results go back through `deliver` as they complete — a slow call never holds
 * up the fast ones — with the results of one turn sharing one delivery.
 */
export async function dispatchBatch(node: object, envelopes: MeshEnvelope[], deliver: BatchDelivery): Promise<void> {
  let ready: Array<[number, MeshResult]> = [];
  const deliveries: unknown[] = [];
  const flush = (): void => {
    if (ready.length === 0) return;
    // A gateway that went away (its stub disposed) cannot take results: nothing to do but drop them.
    deliveries.push(Promise.resolve(deliver(ready)).catch(() => undefined));
    ready = [];
  };
  await Promise.all(envelopes.map(async (envelope, index) => {
    const result = await dispatchCall(node, envelope);
    if (ready.push([index, result]) === 1) setTimeout(flush, 0);
  }));
  flush();
  await Promise.all(deliveries);
}

/** Turns a MeshResult back into a value or a thrown error. */
export function settleResult(result: MeshResult): unknown {
  if (result.ok) return decodeValue(result.result);
  throw decodeValue(result.error);
}
