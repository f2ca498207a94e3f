/**
 * Subscriptions for a MeshDurableObject: who listens to which topic (durable,
 * in the DO's SQLite), and a fan-out that calls a method on every listener.
 *
 *   class Room extends MeshDurableObject<Env> {
 *     subs = new Subscriptions(this.ctx.storage, this.mesh);
 *     @mesh join() { this.subs.subscribeCaller('room'); }
 *     @mesh async say(text: string) { return this.subs.notify<ChatClient>('room', 'message', [text]); }
 *   }
 *
 * Clients subscribe from `onSubscriptionRequired`, which the client calls on
 * the first connection and whenever its gateway forgot it (grace period
 * over). The helper removes a subscriber when its gateway answers
 * `ClientDisconnectedError` — the one definitive "gone" — and when it timed
 * out `maxConsecutiveTimeouts` times in a row, never on one slow answer.
 */
import { ForbiddenError, LimitExceededError } from '../protocol/errors.js';
import type { ClientCallOptions, MeshApi } from '../nodes/mesh-api.js';
import { getCallContext } from '../nodes/context.js';
import {
  callOne, mapConcurrent, notifyOne, summarize, summarizeNotify, type FanOutSummary, type NotifySummary, type SubscriberOutcome, type NotifyOutcome,
} from './fan-out.js';
import { SubscriptionStore, subOf } from './store.js';
import { TopicHistory, checkPosition, type HistoryOptions } from './history.js';
import { PUBLICATION_HANDLER, type Recovery } from '../protocol/topics.js';
import { DEFAULT_GATEWAY_BINDING } from '../protocol/limits.js';
import { Relays, type RelayOptions, type RelayedFanOut } from './relays.js';

export interface SubscriptionsOptions {
  /** SQLite table (default 'meshgate_subscriptions'); give separate sets in one DO separate tables. */
  table?: string;
  /** Gateway binding the subscribers connect through (default 'GATEWAY'). */
  gateway?: string;
  /** Calls in flight at once during a fan-out (default 64). */
  concurrency?: number;
  /** How long each client may take to answer (default: the gateway's client response timeout, 30 s). */
  timeoutMs?: number;
  /** A subscriber that times out this many fan-outs of a topic in a row is unsubscribed from it (default 3). */
  maxConsecutiveTimeouts?: number;
  /** Subscriptions one user (`sub`) may hold to one topic, one per tab or process (default 16); more are refused. */
  maxSubscriptionsPerSub?: number;
  /** Topics one client connection (instance) may be subscribed to in this set (default 256); more are refused. */
  maxTopicsPerClient?: number;
  /** Bounds of each topic's history, which `publish` writes and `recoverCaller` reads (table `{table}_history`). */
  history?: HistoryOptions;
  /**
   * Fan-out through `FanOutRelay` Durable Objects for large topics (default: on when env has `FANOUT_RELAY`,
   * from 512 subscribers, 256 per relay); `false` keeps every fan-out in this object.
   */
  relays?: RelayOptions | false;
}

/** What `publish` did: the publication's place in the topic's history, and how its notification went. */
export type PublishSummary = NotifySummary & { offset: number; epoch: string };

export interface FanOutOptions {
  /** Instance names to skip, e.g. the sender of a chat message. */
  except?: string | readonly string[];
  concurrency?: number;
  timeoutMs?: number;
}

const DEFAULT_CONCURRENCY = 64;
export const DEFAULT_MAX_CONSECUTIVE_TIMEOUTS = 3;
export const DEFAULT_MAX_SUBSCRIPTIONS_PER_SUB = 16;
export const DEFAULT_MAX_TOPICS_PER_CLIENT = 256;
/** Longest topic name a subscription may have: a topic is often taken from a client's arguments. */
export const MAX_TOPIC_LENGTH = 256;

/** A topic is often taken from a client's arguments: a short string, checked before anything is stored. */
function checkTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC_LENGTH) {
    throw new TypeError(`A topic must be a string of 1 to ${MAX_TOPIC_LENGTH} characters, got ${typeof topic === 'string' ? `${topic.length} characters` : typeof topic}.`);
  }
}

function wholeAtLeastOne(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1) throw new RangeError(`Subscriptions option ${name} must be a whole number ≥ 1, got ${String(value)}.`);
  return value;
}

type AnyFn = (...args: never[]) => unknown;
/** Names of the methods of C. */
export type MethodName<C> = { [K in keyof C]: C[K] extends AnyFn ? K : never }[keyof C] & string;
type ArgsOf<F> = F extends (...args: infer A) => unknown ? A : never;
type ResultOf<F> = F extends (...args: never[]) => infer R ? Awaited<R> : never;

/** A client with any methods: the default when no client type is given. */
type AnyClient = Record<string, (...args: unknown[]) => unknown>;

export class Subscriptions {
  /** The durable list itself, for queries the helper does not wrap. */
  readonly store: SubscriptionStore;
  /** Each topic's history: what `publish` stored, by offset. */
  readonly history: TopicHistory;
  readonly #mesh: MeshApi;
  readonly #options: SubscriptionsOptions;
  readonly #maxTimeouts: number;
  readonly #maxPerSub: number;
  readonly #maxTopicsPerClient: number;
  readonly #relays: Relays;

  constructor(storage: DurableObjectStorage, mesh: MeshApi, options: SubscriptionsOptions = {}) {
    this.#maxTimeouts = wholeAtLeastOne('maxConsecutiveTimeouts', options.maxConsecutiveTimeouts, DEFAULT_MAX_CONSECUTIVE_TIMEOUTS);
    this.#maxPerSub = wholeAtLeastOne('maxSubscriptionsPerSub', options.maxSubscriptionsPerSub, DEFAULT_MAX_SUBSCRIPTIONS_PER_SUB);
    this.#maxTopicsPerClient = wholeAtLeastOne('maxTopicsPerClient', options.maxTopicsPerClient, DEFAULT_MAX_TOPICS_PER_CLIENT);
    this.store = new SubscriptionStore(storage, options.table);
    this.history = new TopicHistory(storage.sql, `${options.table ?? 'meshgate_subscriptions'}_history`, options.history);
    this.#mesh = mesh;
    this.#options = options;
    this.#relays = new Relays(mesh, options.relays);
  }

  /**
   * Subscribes `instanceName` (`{sub}.{tabId}`) to `topic`; true if it was not
   * subscribed yet. Refuses with `LimitExceededError` when that user already
   * holds `maxSubscriptionsPerSub` subscriptions to the topic.
   */
  subscribe(topic: string, instanceName: string): boolean {
    checkTopic(topic);
    if (!this.store.has(topic, instanceName)) {
      const sub = subOf(instanceName);
      if (this.store.countOfSub(topic, sub) >= this.#maxPerSub) {
        throw new LimitExceededError('maxSubscriptionsPerSub', this.#maxPerSub,
          `user "${sub.slice(0, 128)}" already has that many subscriptions to "${topic.slice(0, 100)}" (one per tab or process). `
          + 'Close another tab or leave from it first; a closed tab is dropped once its grace period is over and a fan-out finds it gone.');
      }
      if (this.store.countOfInstance(instanceName) >= this.#maxTopicsPerClient) {
        throw new LimitExceededError('maxTopicsPerClient', this.#maxTopicsPerClient,
          `"${instanceName.slice(0, 128)}" is already subscribed to that many topics here; unsubscribe from one first.`);
      }
    }
    return this.store.subscribe(topic, instanceName);
  }

  unsubscribe(topic: string, instanceName: string): boolean {
    return this.store.unsubscribe(topic, instanceName);
  }

  list(topic: string): string[] {
    return this.store.list(topic);
  }

  count(topic: string): number {
    return this.store.count(topic);
  }

  /**
   * Subscribes the client whose call is being served (the call chain's
   * origin, which the gateway takes from the verified token — a client cannot
   * subscribe someone else). Returns its instance name.
   */
  subscribeCaller(topic: string): string {
    const instanceName = callerInstance('subscribe');
    this.subscribe(topic, instanceName);
    return instanceName;
  }

  /**
   * Subscribes the calling client and returns what it missed since `since`
   * (the position of the last publication it saw, from the client; checked
   * here): every publication after it, in order, with `recovered: true`, or
   * none with `recovered: false` when it gave no position or the history no
   * longer reaches back (another epoch, too old, too many, too large). At
   * most `history.maxCount` publications and `history.maxRecoveryBytes`.
   */
  recoverCaller<T = unknown>(topic: string, since?: unknown): Recovery<T> {
    const position = checkPosition(since);
    this.subscribeCaller(topic);
    return this.history.since<T>(topic, position);
  }

  /**
   * Stores `data` as the topic's next publication (its offset one more than
   * the last) and notifies every subscriber's `meshgatePublication` handler
   * (the client helper `Topics`), as `notify` does: without waiting for answers.
   */
  async publish<T>(topic: string, data: T, options: FanOutOptions = {}): Promise<PublishSummary> {
    checkTopic(topic);
    const publication = this.history.append(topic, data);
    const summary = await this.notify<AnyClient>(topic, PUBLICATION_HANDLER, [publication], options);
    return { ...summary, offset: publication.offset, epoch: publication.epoch };
  }

  /** Unsubscribes the calling client from `topic`; returns its instance name. */
  unsubscribeCaller(topic: string): string {
    const instanceName = callerInstance('unsubscribe');
    this.store.unsubscribe(topic, instanceName);
    return instanceName;
  }

  /**
   * Calls `method(...args)` on every subscriber of `topic`, concurrently,
   * and says what happened to each. The calls start a new chain at this node
   * (`ownChain`), so clients accept them even when the fan-out runs inside
   * another client's call. Subscribers whose gateway answers
   * `ClientDisconnectedError` are removed from every topic of this store (the
   * client resubscribes from `onSubscriptionRequired` when it comes back);
   * one that timed out `maxConsecutiveTimeouts` times in a row, from this topic.
   *
   * The fan-out waits for every answer (up to `timeoutMs` each): use
   * `notify` when the node must not wait for its clients.
   */
  async fanOut<C extends object = AnyClient, M extends MethodName<C> = MethodName<C>>(
    topic: string, method: M, args: ArgsOf<C[M]>, options: FanOutOptions = {},
  ): Promise<FanOutSummary<ResultOf<C[M]>>> {
    const { watermark, targets, clientOptions, concurrency } = this.#plan(topic, options);
    const outcomes = this.#relays.carries(targets.length)
      ? await this.#relays.callAll<ResultOf<C[M]>>(this.#relayed(targets, method, args as unknown[], clientOptions, concurrency))
      : await this.#loop(targets, concurrency, (calls, instanceName) =>
        callOne(instanceName, () => calls.call(instanceName) as Promise<ResultOf<C[M]>>), method, args as unknown[], clientOptions);
    this.#settle(topic, watermark, outcomes, 'delivered');
    return summarize(topic, method, outcomes);
  }

  /**
   * Calls `method(...args)` on every subscriber of `topic` without waiting
   * for their answers: each client's gateway answers as soon as it has put
   * the call on the socket (or queued it for a client in its grace period).
   * So a publish returns in a few milliseconds whatever the clients do, and
   * this Durable Object holds no RPC open afterwards (it can be evicted).
   *
   * Gone subscribers (`ClientDisconnectedError`) are removed as in `fanOut`.
   * A client that left an earlier notification unanswered for longer than
   * `timeoutMs` is not sent this one and counts a timeout; after
   * `maxConsecutiveTimeouts` in a row it is unsubscribed from this topic.
   */
  async notify<C extends object = AnyClient, M extends MethodName<C> = MethodName<C>>(
    topic: string, method: M, args: ArgsOf<C[M]>, options: FanOutOptions = {},
  ): Promise<NotifySummary> {
    const { watermark, targets, clientOptions, concurrency } = this.#plan(topic, options);
    const outcomes = this.#relays.carries(targets.length)
      ? await this.#relays.notifyAll(this.#relayed(targets, method, args as unknown[], clientOptions, concurrency))
      : await this.#loop(targets, concurrency, (calls, instanceName) => notifyOne(instanceName, () => calls.notify(instanceName)), method, args as unknown[], clientOptions);
    this.#settle(topic, watermark, outcomes, 'sent', 'queued');
    return summarizeNotify(topic, method, outcomes);
  }

  /** A fan-out by the loop in this object: one RPC per subscriber, `concurrency` at a time, the call encoded once. */
  #loop<R>(targets: string[], concurrency: number, one: (calls: ReturnType<MeshApi['clientCalls']>, instanceName: string) => Promise<R>,
    method: string, args: unknown[], clientOptions: ClientCallOptions): Promise<R[]> {
    const calls = this.#mesh.clientCalls(method, args, clientOptions);
    return mapConcurrent(targets, concurrency, (instanceName) => one(calls, instanceName));
  }

  /** A fan-out as relays carry it (relay.ts): one RPC per relay instead of one per subscriber. */
  #relayed(targets: string[], method: string, args: unknown[], clientOptions: { timeoutMs?: number }, concurrency: number): RelayedFanOut {
    return { targets, method, args, gateway: this.#options.gateway ?? DEFAULT_GATEWAY_BINDING, timeoutMs: clientOptions.timeoutMs, concurrency };
  }

  #plan(topic: string, options: FanOutOptions) {
    const except = new Set(typeof options.except === 'string' ? [options.except] : options.except ?? []);
    // Taken before any call goes out: rows newer than this (a resubscribe) survive a drop.
    const watermark = this.store.watermark();
    const targets = this.store.list(topic).filter((name) => !except.has(name));
    const timeoutMs = options.timeoutMs ?? this.#options.timeoutMs;
    const clientOptions = {
      ownChain: true,
      ...(this.#options.gateway === undefined ? {} : { gateway: this.#options.gateway }),
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    };
    return { watermark, targets, clientOptions, concurrency: options.concurrency ?? this.#options.concurrency ?? DEFAULT_CONCURRENCY };
  }

  /**
   * Applies what a fan-out learned: gone subscribers leave every topic; a
   * timeout adds to the subscriber's streak, and a streak at the limit
   * unsubscribes it from `topic` (its outcome becomes 'dropped'); an answer
   * ends the streak. Only rows no newer than `watermark` change.
   */
  #settle(topic: string, watermark: number, outcomes: Array<SubscriberOutcome | NotifyOutcome>, ...answered: string[]): void {
    const streaks = this.store.timeoutCounts(topic);
    outcomes.forEach((outcome, index) => {
      const { instanceName } = outcome;
      if (outcome.status === 'dropped') {
        this.store.dropStale(instanceName, watermark);
      } else if (outcome.status === 'timeout') {
        const streak = (streaks.get(instanceName) ?? 0) + 1;
        if (streak < this.#maxTimeouts) {
          this.store.setTimeouts(topic, instanceName, streak, watermark);
        } else if (this.store.unsubscribeStale(topic, instanceName, watermark)) {
          outcomes[index] = { instanceName, status: 'dropped', error: outcome.error };
        }
      } else if (answered.includes(outcome.status) && streaks.has(instanceName)) {
        this.store.setTimeouts(topic, instanceName, 0, watermark);
      }
    });
  }
}

/** The instance name of the client that started the call being served, or a clear refusal. */
function callerInstance(action: string): string {
  const origin = getCallContext()?.origin;
  if (origin?.kind !== 'client') {
    throw new ForbiddenError(`Only a client can ${action} itself: call this from a method a client called (the call chain's origin must be a client).`);
  }
  return origin.instance;
}
