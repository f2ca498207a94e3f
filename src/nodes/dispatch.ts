/** Runs incoming mesh calls on a node: allowlist check, decode, context, encode. */
import { decodeValue, encodeValue } from '../protocol/codec.js';
import { failure } from '../protocol/failure.js';
import { describeUntrusted, LimitExceededError, MethodNotExposedError, ProtocolError } from '../protocol/errors.js';
import type { Deadlines } from '../gateway/deadlines.js';
import { withinDeadline } from './call-deadlines.js';
import { MAX_ARGUMENTS, MAX_BURST_PART_SIZE } from '../protocol/wire.js';
import type { ValueBounds } from '../protocol/value-bounds.js';
import { valueBoundsOf } from './node-bounds.js';
import { runWithContext } from './context.js';
import type { MeshEnvelope, MeshResult } from './envelope.js';
import { checkArguments, checkResult, runGuard, type Guard } from './checks.js';
import { checksOf, findExposedMethod } from './exposed.js';
import { watchCancel } from './signals.js';
import { isStreamable, NodeStream, readStream } from './streams.js';

export { valueBoundsOf };

/** The default guard a node class sets with `static guard`, for every method that names none. */
function classGuardOf(node: object): Guard | undefined {
  const guard = (node.constructor as { guard?: unknown } | undefined)?.guard;
  return typeof guard === 'function' ? (guard as Guard) : undefined;
}

/**
 * Runs one call on `node`; `deadlines`: the node's shared deadline timer (a Durable Object's, see call-deadlines.ts).
 * A method that returns without a promise is answered in the same turn: no promise is made for it.
 */
export function dispatchCall(node: object, envelope: MeshEnvelope, deadlines?: Deadlines<object>): MeshResult | Promise<MeshResult> {
  const method = findExposedMethod(node, envelope.method);
  if (!method) return failure(new MethodNotExposedError(envelope.method, node.constructor?.name ?? 'the target'));
  if (envelope.cancel) watchCancel(envelope.cancel, envelope.context, envelope.method);
  let running: unknown;
  try {
    const args = decodeValue(envelope.args, valueBoundsOf(node), `the arguments of "${envelope.method}"`);
    if (!Array.isArray(args)) throw new ProtocolError('Call arguments must encode an array.', 'bad_payload');
    if (args.length > MAX_ARGUMENTS) throw new LimitExceededError('maxArguments', MAX_ARGUMENTS, 'pass a list as one argument instead of spreading it into many.');
    const checks = checksOf(method);
    const guard = checks?.guard ?? classGuardOf(node);
    running = runWithContext(envelope.context, checks === undefined && guard === undefined
      ? () => method.apply(node, args as never[])
      : async () => {
        await runGuard(guard, envelope.context, node, envelope.method);
        const checkedArgs = checks?.args ? await checkArguments(checks.args, args, envelope.method) : args;
        const result = await method.apply(node, checkedArgs as never[]);
        return checks?.result ? checkResult(checks.result, result, envelope.method) : result;
      });
    if (!(running instanceof Promise)) return answerOf(running, envelope);
  } catch (error) {
    return failure(error);
  }
  return settle(running, envelope, deadlines);
}

async function settle(running: Promise<unknown>, envelope: MeshEnvelope, deadlines: Deadlines<object> | undefined): Promise<MeshResult> {
  try {
    const result = envelope.deadlineMs === undefined ? await running : await withinDeadline(running, envelope.method, envelope.deadlineMs, envelope.context, deadlines);
    return answerOf(result, envelope);
  } catch (error) {
    return failure(error);
  }
}

/** The answer for what a method returned: a stream, or its value encoded (which may throw: the caller answers that as an error). */
function answerOf(result: unknown, envelope: MeshEnvelope): MeshResult {
  if (isStreamable(result)) return { ok: true, result: '', stream: new NodeStream(result, envelope.context, envelope.method) };
  return { ok: true, result: encodeValue(result, 'the value returned by', envelope.method) };
}

/** Receives results of a burst, several at once when they complete together; an RPC stub of a gateway function. */
export type BurstDelivery = (results: Array<[index: number, result: MeshResult]>) => unknown;

/**
 * Hands results back as they complete — a slow call never holds up the fast
 * ones — with the results that complete together sharing one delivery, up to
 * MAX_BURST_PART_SIZE. A microtask, not a timer, gathers them: in a Durable
 * Object a pending timer waits behind the input gate and would hold up any
 * later timer, including one inside a blockConcurrencyWhile().
 */
class ResultDelivery {
  #ready: Array<[number, MeshResult]> = [];
  #readySize = 0;
  readonly #deliveries: unknown[] = [];
  readonly #deliver: BurstDelivery;

  constructor(deliver: BurstDelivery) {
    this.#deliver = deliver;
  }

  add(index: number, result: MeshResult): void {
    const size = result.ok ? result.result.length : result.error.length;
    if (this.#ready.length > 0 && this.#readySize + size > MAX_BURST_PART_SIZE) this.#flush();
    this.#readySize += size;
    if (this.#ready.push([index, result]) === 1) queueMicrotask(() => this.#flush());
  }

  async finish(): Promise<void> {
    this.#flush();
    await Promise.all(this.#deliveries);
  }

  #flush(): void {
    if (this.#ready.length === 0) return;
    const ready = this.#ready;
    this.#ready = [];
    this.#readySize = 0;
    this.#deliveries.push(this.#send(ready));
  }

  async #send(ready: Array<[number, MeshResult]>): Promise<void> {
    try {
      await this.#deliver(ready);
    } catch {
      // Maybe too large for one RPC message after all: try each result on its own. A gateway that went
      // away (its stub disposed) cannot take them either; those calls then end as "outcome unknown" there.
      if (ready.length > 1) await Promise.all(ready.map((one) => Promise.resolve(this.#deliver([one])).catch(() => undefined)));
    }
  }
}

/**
 * Runs a burst of calls (one RPC for many), all started at once in order of
 * arrival. Calls inside one RPC share one event, so a Durable Object's input
 * gate cannot keep them apart: only Workers and Durable Objects that opt in
 * (acceptsCallBursts) receive bursts.
 */
export async function dispatchBurst(node: object, envelopes: MeshEnvelope[], deliver: BurstDelivery, deadlines?: Deadlines<object>): Promise<void> {
  const results = new ResultDelivery(deliver);
  await Promise.all(envelopes.map(async (envelope, index) => results.add(index, await dispatchCall(node, envelope, deadlines))));
  await results.finish();
}

/** Turns a MeshResult back into a value or a thrown error; `what` names the call in a bound's error. */
export function settleResult(result: MeshResult, bounds?: ValueBounds, what = 'an answer'): unknown {
  if (result.ok && result.stream) return readStream(result.stream, bounds, what);
  if (result.ok) return decodeValue(result.result, bounds, `the result of ${what}`);
  const error = decodeValue(result.error, bounds, `the error of ${what}`);
  // Peers encode whatever they throw as an Error; anything else came from a hostile client, and callers may String() it.
  if (!(error instanceof Error)) throw new ProtocolError(`The error answered by ${what} is not an error (got ${describeUntrusted(error, 40)}).`, 'bad_payload');
  throw error;
}
