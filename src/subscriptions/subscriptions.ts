/**
 * Subscriptions for a MeshDurableObject: who listens to which topic (durable,
 * in the DO's SQLite), and a fan-out that calls a method on every listener.
 *
 *   class Room extends MeshDurableObject<Env> {
 *     subs = new Subscriptions(this.ctx.storage, this.mesh);
 *     @mesh join() { this.subs.subscribeCaller('room'); }
 *     @mesh async say(text: string) { return this.subs.fanOut<ChatClient>('room', 'message', [text]); }
 *   }
 *
 * Clients subscribe from `onSubscriptionRequired`, which the client calls on
 * the first connection and whenever its gateway forgot it (grace period
 * over). The helper removes a subscriber only when its gateway answers
 * `ClientDisconnectedError` — the one definitive "gone" — never on a timeout
 * from a client that is still connected but slow.
 */
import { ForbiddenError } from '../protocol/errors.js';
import type { MeshApi } from '../node/mesh-api.js';
import { getCallContext } from '../node/context.js';
import { callOne, mapConcurrent, summarize, type FanOutSummary } from './fan-out.js';
import { SubscriptionStore } from './store.js';

export interface SubscriptionsOptions {
  /** SQLite table (default 'meshgate_subscriptions'); give separate sets in one DO separate tables. */
  table?: string;
  /** Gateway binding the subscribers connect through (default 'GATEWAY'). */
  gateway?: string;
  /** Calls in flight at once during a fan-out (default 64). */
  concurrency?: number;
  /** How long each client may take to answer (default: the gateway's client response timeout, 30 s). */
  timeoutMs?: number;
}

export interface FanOutOptions {
  /** Instance names to skip, e.g. the sender of a chat message. */
  except?: string | readonly string[];
  concurrency?: number;
  timeoutMs?: number;
}

const DEFAULT_CONCURRENCY = 64;

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
  readonly #mesh: MeshApi;
  readonly #options: SubscriptionsOptions;

  constructor(storage: DurableObjectStorage, mesh: MeshApi, options: SubscriptionsOptions = {}) {
    this.store = new SubscriptionStore(storage, options.table);
    this.#mesh = mesh;
    this.#options = options;
  }

  subscribe(topic: string, instanceName: string): boolean {
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
    this.store.subscribe(topic, instanceName);
    return instanceName;
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
   * `ClientDisconnectedError` are removed from every topic of this store;
   * the client resubscribes from `onSubscriptionRequired` when it comes back.
   */
  async fanOut<C extends object = AnyClient, M extends MethodName<C> = MethodName<C>>(
    topic: string, method: M, args: ArgsOf<C[M]>, options: FanOutOptions = {},
  ): Promise<FanOutSummary<ResultOf<C[M]>>> {
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
    const outcomes = await mapConcurrent(targets, options.concurrency ?? this.#options.concurrency ?? DEFAULT_CONCURRENCY, (instanceName) =>
      callOne(instanceName, () => {
        const stub = this.#mesh.client<AnyClient>(instanceName, clientOptions) as AnyClient;
        return stub[method]!(...(args as unknown[])) as Promise<ResultOf<C[M]>>;
      }));
    for (const outcome of outcomes) {
      if (outcome.status === 'dropped') this.store.dropStale(outcome.instanceName, watermark);
    }
    return summarize(topic, method, outcomes);
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
