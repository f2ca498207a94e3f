/**
 * Fan-out: one call to many clients, concurrently, each outcome classified.
 *
 * Calls run through a bounded pool of workers, so hundreds of subscribers
 * never wait in line behind one slow client: a slow client holds one worker
 * until its timeout while the others keep going. Notifications (calls nobody
 * waits for) hold a worker only until the client's gateway has sent them.
 */
import { ClientDisconnectedError, ClientTimeoutError, ProtocolError, describeUntrusted } from '../protocol/errors.js';

/** What happened to one subscriber in a fan-out. */
export type SubscriberOutcome<R = unknown> =
  /** the client ran the method and answered */
  | { instanceName: string; status: 'delivered'; value: R }
  /**
   * unsubscribed: the gateway says the client is gone for good (grace period over;
   * `ClientDisconnectedError`, from every topic), or it timed out too many times
   * in a row (`ClientTimeoutError`, from this topic)
   */
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
  /** instance names unsubscribed: gone (ClientDisconnectedError) or too many timeouts in a row (ClientTimeoutError) */
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
  return error instanceof Error ? error : new Error(describeUntrusted(error));
}

/** What happened to one subscriber in a notification fan-out (`Subscriptions.notify`). */
export type NotifyOutcome =
  /** on the client's open socket; nobody waits for its answer */
  | { instanceName: string; status: 'sent' }
  /** the client is in its grace period: its gateway sends it on the reconnect */
  | { instanceName: string; status: 'queued' }
  | { instanceName: string; status: 'dropped' | 'timeout' | 'failed'; error: Error };

export interface NotifySummary {
  topic: string;
  method: string;
  /** subscribers notified */
  total: number;
  sent: number;
  queued: number;
  /** instance names unsubscribed: gone (ClientDisconnectedError) or too many timeouts in a row (ClientTimeoutError) */
  dropped: string[];
  /** instance names that left an earlier notification unanswered past the timeout: not sent this one, still subscribed */
  timedOut: string[];
  /** instance names not notified for another reason (too many unanswered, a hook refused, an RPC failure): still subscribed */
  failed: string[];
  /** one entry per subscriber, in subscription order */
  outcomes: NotifyOutcome[];
}

/** How a failed call to a subscriber counts. Only ClientDisconnectedError is definitive; a timeout is a live client that was slow. */
function failure(instanceName: string, error: unknown): { instanceName: string; status: 'dropped' | 'timeout' | 'failed'; error: Error } {
  if (isNamed(error, ClientDisconnectedError)) return { instanceName, status: 'dropped', error: asError(error) };
  if (isNamed(error, ClientTimeoutError)) return { instanceName, status: 'timeout', error: asError(error) };
  return { instanceName, status: 'failed', error: asError(error) };
}

/** Calls `call` for one subscriber and says what happened; never throws. */
export async function callOne<R>(instanceName: string, call: () => Promise<R>): Promise<SubscriberOutcome<R>> {
  try {
    const value = await call();
    // A client may answer with a stream where a fan-out wants a value: stop reading it, and count it as a failure.
    if (isAsyncIterable(value)) {
      void (value as AsyncIterator<unknown>).return?.()?.catch(() => undefined);
      return failure(instanceName, new ProtocolError('The client answered a fan-out call with a stream; a subscriber\'s handler must return a value.'));
    }
    return { instanceName, status: 'delivered', value };
  } catch (error) {
    return failure(instanceName, error);
  }
}

function isAsyncIterable(value: unknown): boolean {
  return typeof value === 'object' && value !== null && typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';
}

/** Notifies one subscriber through `notify` and says what happened; never throws. */
export async function notifyOne(instanceName: string, notify: () => Promise<'sent' | 'queued'>): Promise<NotifyOutcome> {
  try {
    return { instanceName, status: await notify() };
  } catch (error) {
    return failure(instanceName, error);
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

/** Folds notification outcomes into a summary. */
export function summarizeNotify(topic: string, method: string, outcomes: NotifyOutcome[]): NotifySummary {
  const names = (status: NotifyOutcome['status']) => outcomes.filter((o) => o.status === status).map((o) => o.instanceName);
  return {
    topic,
    method,
    total: outcomes.length,
    sent: outcomes.filter((o) => o.status === 'sent').length,
    queued: outcomes.filter((o) => o.status === 'queued').length,
    dropped: names('dropped'),
    timedOut: names('timeout'),
    failed: names('failed'),
    outcomes,
  };
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
