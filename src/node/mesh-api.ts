/**
 * `this.mesh` inside a node: typed stubs to call other nodes and connected
 * clients. A call made while serving a call extends that call's chain and
 * keeps its origin; a call made outside one starts a chain at this node.
 */
import { encodeValue } from '../protocol/codec.js';
import { DEFAULT_GATEWAY_BINDING, isDurationMs } from '../protocol/limits.js';
import type { CallTarget, Origin } from '../protocol/frames.js';
import { createStub, type Stub } from '../protocol/stub.js';
import { getCallContext } from './context.js';
import type { ValueBounds } from '../protocol/value-bounds.js';
import { settleResult } from './dispatch.js';
import type { CallContext, ClientCallEnvelope, MeshResult } from './envelope.js';
import { callNode, isNamespace, resolveTarget, type Namespace } from './targets.js';

interface GatewayStub {
  __meshgateCallClient(envelope: ClientCallEnvelope): Promise<MeshResult>;
}

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

export class MeshApi {
  readonly #env: unknown;
  readonly #self: () => Origin;
  readonly #bounds: () => ValueBounds | undefined;

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

  /** A stub for a Durable Object (binding + instance) or a Worker (binding only). */
  node<T>(binding: string, instance?: string): Stub<T> {
    const target: CallTarget = instance === undefined ? { binding } : { binding, instance };
    return createStub<T>(async (method, args) => {
      const stub = resolveTarget(this.#env, target);
      const answer = await callNode(stub, { target, method, args: encodeValue(args), context: this.#nextContext() });
      return settleResult(answer, this.#bounds(), `"${method}" on ${binding}`);
    });
  }

  /** A stub for a connected client, addressed by its instance name (`{sub}.{tabId}`). */
  client<T>(instanceName: string, options: ClientCallOptions = {}): Stub<T> {
    const gatewayBinding = options.gateway ?? DEFAULT_GATEWAY_BINDING;
    const { timeoutMs } = options;
    if (timeoutMs !== undefined && !isDurationMs(timeoutMs)) {
      throw new RangeError(`mesh.client(): timeoutMs must be a positive number of milliseconds, got ${String(timeoutMs)}.`);
    }
    return createStub<T>(async (method, args) => {
      const namespace = (this.#env as Record<string, unknown>)[gatewayBinding];
      if (!isNamespace(namespace)) throw new TypeError(`No Durable Object binding "${gatewayBinding}" for the gateway in env; pass { gateway: 'YOUR_BINDING' } to mesh.client().`);
      const gateway = (namespace as Namespace<GatewayStub>).get(namespace.idFromName(instanceName));
      const answer = await gateway.__meshgateCallClient({
        instanceName, method, args: encodeValue(args), context: this.#nextContext(options.ownChain === true),
        ...(timeoutMs === undefined ? {} : { timeoutMs }),
      });
      return settleResult(answer, this.#bounds(), `"${method}" on client "${instanceName}"`);
    });
  }

  #nextContext(ownChain = false): CallContext {
    const self = this.#self();
    const current = ownChain ? undefined : getCallContext();
    if (!current) return { origin: self, caller: self, chain: [self], state: {} };
    return { ...current, caller: self, chain: [...current.chain, self] };
  }
}
