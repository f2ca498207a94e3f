/**
 * Fan-out: one call to many clients, concurrently, each outcome classified.
 *
 * Calls run through a bounded pool of workers, so hundreds of subscribers
 * never wait in line behind one slow client: a slow client holds one worker
 * until its timeout while the others keep going.
 */
import { ClientDisconnectedError, ClientTimeoutError } from '../protocol/errors.js';

/** What happened to one subscriber in a fan-out. */
export type SubscriberOutcome<R = unknown> =
  /** the client ran the method and answered */
  | { instanceName: string; status: 'delivered'; value: R }
  /** the gateway says the client is gone for good (grace period over): it was unsubscribed */
  | { instanceName: string; status: 'dropped'; error: Error }
  /** the client is connected (or in its grace period) but did not answer in time: kept */
  | { instanceName: string; status: 'timeout'; error: Error }
  /** anything else (the handler threw, refused the call, an RPC failure): kept */
  | { instanceName: string; status: 'failed'; error: Error };

export interface FanOutSummary<R = unknown> {
  topic: string;
  method: string;
  /** subscribers called */
  total: number;
  delivered: number;
  /** instance names removed because the gateway answered ClientDisconnectedError */
  dropped: string[];
  /** instance names that did not answer in time (still subscribed) */
  timedOut: string[];
  /** instance names whose call failed for another reason (still subscribed) */
  failed: string[];
  /** one entry per subscriber called, in subscription order */
  outcomes: SubscriberOutcome<R>[];
}

// By name too: an error revived by a second copy of the library is another class.
function isNamed(error: unknown, ctor: { name: string; prototype: Error }): boolean {
  return error instanceof (ctor as unknown as new () => Error) || (error as Error | undefined)?.name === ctor.name;
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

/** Calls `call` for one subscriber and says what happened; never throws. */
export async function callOne<R>(instanceName: string, call: () => Promise<R>): Promise<SubscriberOutcome<R>> {
  try {
    return { instanceName, status: 'delivered', value: await call() };
  } catch (error) {
    // Only ClientDisconnectedError is definitive; a timeout is a live client that was slow.
    if (isNamed(error, ClientDisconnectedError)) return { instanceName, status: 'dropped', error: asError(error) };
    if (isNamed(error, ClientTimeoutError)) return { instanceName, status: 'timeout', error: asError(error) };
    return { instanceName, status: 'failed', error: asError(error) };
  }
}

/** Runs `task` over `items` with at most `limit` running at once; results keep the order of `items`. */
export async function mapConcurrent<T, R>(items: readonly T[], limit: number, task: (item: T) => Promise<R>): Promise<R[]> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`Fan-out concurrency must be a whole number ≥ 1, got ${limit}.`);
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await task(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/** Folds outcomes into a summary. */
export function summarize<R>(topic: string, method: string, outcomes: SubscriberOutcome<R>[]): FanOutSummary<R> {
  const names = (status: SubscriberOutcome['status']) => outcomes.filter((o) => o.status === status).map((o) => o.instanceName);
  return {
    topic,
    method,
    total: outcomes.length,
    delivered: outcomes.filter((o) => o.status === 'delivered').length,
    dropped: names('dropped'),
    timedOut: names('timeout'),
    failed: names('failed'),
    outcomes,
  };
}
