/**
 * `this.mesh` inside a node: typed stubs to call other nodes and connected
 * clients. A call made while serving a call extends that call's chain and
 * keeps its origin; a call made outside one starts a chain at this node.
 */
import { decodeValue, encodeValue } from '../protocol/codec.js';
import { DEFAULT_GATEWAY_BINDING, isDurationMs } from '../protocol/limits.js';
import type { CallTarget, Origin } from '../protocol/frames.js';
import { createStub, type Stub } from '../protocol/stub.js';
import { getCallContext } from './context.js';
import { abortSignalOf } from './signals.js';
import type { ValueBounds } from '../protocol/value-bounds.js';
import { settleResult } from './dispatch.js';
import { checkResult } from './checks.js';
import type { StandardSchemaV1 } from '../protocol/standard-schema.js';
import type { CallContext, ClientCallEnvelope, MeshResult, NotifyResult } from './envelope.js';
import { callNode, resolveTarget } from './targets.js';
import { isNamespace, type Namespace } from '../bindings/kinds.js';

export interface GatewayStub {
  __meshgateCallClient(envelope: ClientCallEnvelope): Promise<MeshResult>;
  __meshgateNotifyClient(envelope: ClientCallEnvelope): Promise<NotifyResult>;
  __meshgateWatchDeparture(watcher: { binding: string; instance: string }): Promise<{ ok: true; watching: boolean } | { ok: false; error: string }>;
  __meshgateUnwatchDeparture(watcher: { binding: string; instance: string }): Promise<void>;
}

/** Told when a watched client is gone for good: `at` is when its gateway's grace period ended (its clock). */
export type ClientGoneListener = (instanceName: string, at: number) => void | Promise<void>;

/** Where a notification went: onto the client's open socket, or queued by its gateway for a reconnect inside the grace period. */
export type NotifyReceipt = 'sent' | 'queued';

export interface ClientCallOptions {
  /** the gateway binding the client is connected through (default 'GATEWAY') */
  gateway?: string;
  /** how long to wait for a connected client's answer (default: the gateway's, 30 s) */
  timeoutMs?: number;
  /**
   * Start a new call chain at this node, so the client sees this node as the
   * origin. Use it for calls the node decides on (broadcasts, notifications):
   * clients refuse by default calls whose origin is another client.
   */
  ownChain?: boolean;
}

/** Schemas for what a client's handlers answer, by method: an answer that fails one rejects with ValidationError. */
export type ClientResultSchemas<T> = { [K in keyof T]?: StandardSchemaV1 };

export class MeshApi {
  readonly #env: unknown;
  readonly #self: () => Origin;
  readonly #bounds: () => ValueBounds | undefined;
  readonly #goneListeners = new Set<ClientGoneListener>();
  /** Who in this object still needs a client's departure (e.g. each Presence): one watch per object is shared by all of them. */
  readonly #departureHolders = new Set<(instanceName: string) => boolean>();

  /** `bounds`: what answers decoded here may expand to (the node class's valueBounds). */
  constructor(env: unknown, self: () => Origin, bounds: () => ValueBounds | undefined = () => undefined) {
    this.#env = env;
    this.#self = self;
    this.#bounds = bounds;
  }

  /** The context of the call being served, or undefined outside one. */
  get context(): CallContext | undefined {
    return getCallContext();
  }

  /**
   * Aborted when the caller of the call being served cancels it (its
   * AbortSignal, or breaking out of a stream's `for await`), when the client
   * that started it is gone for good, or when the caller stopped waiting (its
   * deadline). Outside a call, a signal that never aborts.
   */
  get signal(): AbortSignal {
    return abortSignalOf(getCallContext());
  }

  /** A stub for a Durable Object (binding + instance) or a Worker (binding only). */
  node<T>(binding: string, instance?: string): Stub<T> {
    const target: CallTarget = instance === undefined ? { binding } : { binding, instance };
    return createStub<T>(async (method, args) => {
      const stub = resolveTarget(this.#env, target);
      const answer = await callNode(stub, { target, method, args: encodeValue(args, 'the arguments of', method), context: this.#nextContext() });
      return settleResult(answer, this.#bounds(), `"${method}" on ${binding}`);
    });
  }

  /** A stub for a connected client, addressed by its instance name (`{sub}.{tabId}`). */
  client<T>(instanceName: string, options: ClientCallOptions & { results?: ClientResultSchemas<T> } = {}): Stub<T> {
    checkTimeout('mesh.client()', options.timeoutMs);
    const results = options.results as Record<string, StandardSchemaV1 | undefined> | undefined;
    return createStub<T>(async (method, args) => {
      const value = await this.#callClient(instanceName, this.#clientEnvelope(instanceName, method, args, options), options.gateway, 'mesh.client()');
      const schema = results && Object.prototype.hasOwnProperty.call(results, method) ? results[method] : undefined;
      return schema ? checkResult(schema, value, method) : value;
    });
  }

  /**
   * Calls `method(...args)` on a client without waiting for its answer:
   * resolves as soon as the client's gateway has put the call on the socket
   * (`'sent'`) or queued it for a reconnect inside the grace period
   * (`'queued'`), so this node holds no RPC open while the client works.
   * Rejects with `ClientDisconnectedError` (gone), `ClientTimeoutError` (it
   * left an earlier notification unanswered past `timeoutMs`: silent, this one
   * was not sent) or `LimitExceededError` (too many unanswered).
   */
  async notifyClient(instanceName: string, method: string, args: readonly unknown[], options: ClientCallOptions = {}): Promise<NotifyReceipt> {
    checkTimeout('mesh.notifyClient()', options.timeoutMs);
    return this.#notifyClient(instanceName, this.#clientEnvelope(instanceName, method, args, options), options.gateway, 'mesh.notifyClient()');
  }

  /**
   * @internal One method called on many clients (a fan-out's loop): the
   * arguments are encoded and the context built once for all of them, not
   * once per subscriber. Arguments that do not encode fail each call, as
   * they would one by one.
   */
  clientCalls(method: string, args: readonly unknown[], options: ClientCallOptions = {}): { call(instanceName: string): Promise<unknown>; notify(instanceName: string): Promise<NotifyReceipt> } {
    checkTimeout('Subscriptions.fanOut() / notify()', options.timeoutMs);
    let shared: Omit<ClientCallEnvelope, 'instanceName'> | undefined;
    let unencodable: unknown;
    try {
      shared = this.#sharedEnvelope(method, args, options);
    } catch (error) {
      unencodable = error;
    }
    const envelope = (instanceName: string): ClientCallEnvelope => {
      if (!shared) throw unencodable;
      return { instanceName, ...shared };
    };
    return {
      call: async (instanceName) => this.#callClient(instanceName, envelope(instanceName), options.gateway, 'Subscriptions'),
      notify: async (instanceName) => this.#notifyClient(instanceName, envelope(instanceName), options.gateway, 'Subscriptions'),
    };
  }

  async #callClient(instanceName: string, envelope: ClientCallEnvelope, binding: string | undefined, api: string): Promise<unknown> {
    const answer = await this.#gateway(instanceName, binding, api).__meshgateCallClient(envelope);
    return settleResult(answer, this.#bounds(), `"${envelope.method}" on client "${instanceName}"`);
  }

  async #notifyClient(instanceName: string, envelope: ClientCallEnvelope, binding: string | undefined, api: string): Promise<NotifyReceipt> {
    const result = await this.#gateway(instanceName, binding, api).__meshgateNotifyClient(envelope);
    if (!result.ok) throw decodeValue(result.error);
    return result.queued ? 'queued' : 'sent';
  }

  /**
   * Asks the client's gateway to tell this Durable Object when the client is
   * gone for good (its grace period ended without a reconnect); listeners
   * added with `onClientGone` then run. Resolves false if it already is gone.
   */
  async watchDeparture(instanceName: string, options: { gateway?: string } = {}): Promise<boolean> {
    const self = this.#self();
    if (self.kind !== 'node' || self.instance === undefined) throw new TypeError('mesh.watchDeparture(): only a Durable Object that was called through the mesh can be told of departures.');
    const result = await this.#gateway(instanceName, options.gateway, 'mesh.watchDeparture()').__meshgateWatchDeparture({ binding: self.binding, instance: self.instance });
    if (!result.ok) throw decodeValue(result.error);
    return result.watching;
  }

  /** Stops `watchDeparture` for this node (the client left it), so the client's gateway has room for others. */
  async unwatchDeparture(instanceName: string, options: { gateway?: string } = {}): Promise<void> {
    const self = this.#self();
    if (self.kind !== 'node' || self.instance === undefined) return;
    await this.#gateway(instanceName, options.gateway, 'mesh.unwatchDeparture()').__meshgateUnwatchDeparture({ binding: self.binding, instance: self.instance });
  }

  /**
   * Runs `listener` whenever a client this node watches is gone for good (see
   * `watchDeparture`). `holds` says whether this listener still needs a
   * client's departure, so `releaseDeparture` keeps a watch another part of
   * the object relies on.
   */
  onClientGone(listener: ClientGoneListener, options: { holds?: (instanceName: string) => boolean } = {}): void {
    this.#goneListeners.add(listener);
    if (options.holds) this.#departureHolders.add(options.holds);
  }

  /**
   * `unwatchDeparture`, unless a listener added with `holds` still needs this
   * client's departure: the gateway keeps one watch per object, shared.
   * Resolves true if the watch was stopped.
   */
  async releaseDeparture(instanceName: string, options: { gateway?: string } = {}): Promise<boolean> {
    for (const holds of this.#departureHolders) if (holds(instanceName)) return false;
    await this.unwatchDeparture(instanceName, options);
    return true;
  }

  /** @internal A gateway says its client is gone: runs the listeners, each on its own (one that throws stops no other). */
  async clientGone(instanceName: string, at: number): Promise<void> {
    await Promise.allSettled([...this.#goneListeners].map(async (listener) => listener(instanceName, at)));
  }

  /** @internal A binding of this node's env by name, or undefined (meshgate's own helpers: fan-out relays). */
  binding(name: string): unknown {
    const env = this.#env as Record<string, unknown> | undefined;
    return env && Object.prototype.hasOwnProperty.call(env, name) ? env[name] : undefined;
  }

  /** @internal This node as its callers address it. */
  get self(): Origin {
    return this.#self();
  }

  /** @internal The context a call to a client made now carries (`ownChain`: a new chain at this node). */
  clientCallContext(ownChain: boolean): CallContext {
    return this.#nextContext(ownChain);
  }

  /** @internal A client's answer that came another way (through a fan-out relay), decoded within this node's bounds, as `client()` does. */
  settleClientAnswer(instanceName: string, method: string, answer: MeshResult): unknown {
    return settleResult(answer, this.#bounds(), `"${method}" on client "${instanceName}"`);
  }

  #gateway(instanceName: string, binding = DEFAULT_GATEWAY_BINDING, api: string): GatewayStub {
    return gatewayOf(this.#env, instanceName, binding, api);
  }

  #clientEnvelope(instanceName: string, method: string, args: readonly unknown[], options: ClientCallOptions): ClientCallEnvelope {
    return { instanceName, ...this.#sharedEnvelope(method, args, options) };
  }

  /** A client call's envelope but for the client it goes to. */
  #sharedEnvelope(method: string, args: readonly unknown[], options: ClientCallOptions): Omit<ClientCallEnvelope, 'instanceName'> {
    return {
      method, args: encodeValue(args, 'the arguments of', method), context: this.#nextContext(options.ownChain === true),
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
    };
  }

  #nextContext(ownChain = false): CallContext {
    const self = this.#self();
    const current = ownChain ? undefined : getCallContext();
    if (!current) return { origin: self, caller: self, chain: [self], state: {} };
    return { ...current, caller: self, chain: [...current.chain, self] };
  }
}

/** The gateway of client `instanceName` in `env` (binding `binding`), or a TypeError that says which binding to pass. */
export function gatewayOf(env: unknown, instanceName: string, binding: string, api: string): GatewayStub {
  const namespace = (env as Record<string, unknown>)[binding];
  if (!isNamespace(namespace)) throw new TypeError(`No Durable Object binding "${binding}" for the gateway in env; pass { gateway: 'YOUR_BINDING' } to ${api}.`);
  return (namespace as Namespace<GatewayStub>).get(namespace.idFromName(instanceName));
}

function checkTimeout(api: string, timeoutMs: unknown): void {
  if (timeoutMs !== undefined && !isDurationMs(timeoutMs)) {
    throw new RangeError(`${api}: timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}.`);
  }
}
