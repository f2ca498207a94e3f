/** Runs incoming mesh calls on a node: allowlist check, decode, context, encode. */
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
 * Hands results back as they complete — a slow call never holds up the fast
 * ones — with the results of one turn sharing one delivery.
 */
class ResultDelivery {
  #ready: Array<[number, MeshResult]> = [];
  readonly #deliveries: unknown[] = [];
  readonly #deliver: BatchDelivery;

  constructor(deliver: BatchDelivery) {
    this.#deliver = deliver;
  }

  add(index: number, result: MeshResult): void {
    if (this.#ready.push([index, result]) === 1) setTimeout(() => this.#flush(), 0);
  }

  async finish(): Promise<void> {
    this.#flush();
    await Promise.all(this.#deliveries);
  }

  #flush(): void {
    if (this.#ready.length === 0) return;
    // A gateway that went away (its stub disposed) cannot take results: nothing to do but drop them.
    this.#deliveries.push(Promise.resolve(this.#deliver(this.#ready)).catch(() => undefined));
    this.#ready = [];
  }
}

/** A Worker's burst: every call starts at once, in order of arrival (a Worker has no input gate to respect). */
export async function dispatchBatch(node: object, envelopes: MeshEnvelope[], deliver: BatchDelivery): Promise<void> {
  const results = new ResultDelivery(deliver);
  await Promise.all(envelopes.map(async (envelope, index) => results.add(index, await dispatchCall(node, envelope))));
  await results.finish();
}

/**
 * A Durable Object's burst, run as if each call were its own RPC. Separate
 * RPCs are separate events, and the object's input gate delivers the next one
 * only while the current one waits on something other than storage. Inside
 * one RPC the gate cannot do that, so this loop does it: the next call starts
 * when the current one has finished, or when a zero-delay timer fires while
 * it is still pending — the timer is itself an event behind the input gate,
 * so it fires only once the call waits on a fetch, an RPC, a timer or another
 * call, never on a storage read or write. Calls that need each other (one
 * waits for the next to arrive) still both run.
 */
export async function dispatchBatchGated(node: object, envelopes: MeshEnvelope[], deliver: BatchDelivery): Promise<void> {
  const results = new ResultDelivery(deliver);
  const started: Array<Promise<void>> = [];
  for (let index = 0; index < envelopes.length; index++) {
    const call = dispatchCall(node, envelopes[index]!).then((result) => results.add(index, result));
    started.push(call);
    if (index < envelopes.length - 1) await finishedOrWaiting(call);
  }
  await Promise.all(started);
  await results.finish();
}

/** Microtask turns to wait before setting a timer: a call that does no I/O settles within a few (the common case, no timer needed). */
const QUICK_TURNS = 8;

async function finishedOrWaiting(call: Promise<void>): Promise<void> {
  let settled = false;
  void call.then(() => (settled = true));
  for (let turn = 0; turn < QUICK_TURNS && !settled; turn++) await undefined;
  if (settled) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([call, new Promise<void>((resolve) => (timer = setTimeout(resolve, 0)))]);
  clearTimeout(timer);
}

/** Turns a MeshResult back into a value or a thrown error. */
export function settleResult(result: MeshResult): unknown {
  if (result.ok) return decodeValue(result.result);
  throw decodeValue(result.error);
}
