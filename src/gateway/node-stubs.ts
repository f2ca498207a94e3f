/** The RPC stubs a gateway keeps for reuse, by target, the oldest dropped past config.maxCachedStubs. */
import { UnknownBindingError } from '../protocol/errors.js';
import type { CallTarget } from '../protocol/frames.js';
import { resolveTarget, type NodeStub } from '../nodes/targets.js';
import { stubKey } from './calls.js';
import type { GatewayConfig } from './config.js';

export class NodeStubs {
  readonly #env: unknown;
  readonly #config: () => Pick<GatewayConfig, 'nodeBindings' | 'gatewayBindings' | 'maxCachedStubs'>;
  readonly #stubs = new Map<string, NodeStub>();

  constructor(env: unknown, config: () => Pick<GatewayConfig, 'nodeBindings' | 'gatewayBindings' | 'maxCachedStubs'>) {
    this.#env = env;
    this.#config = config;
  }

  get size(): number {
    return this.#stubs.size;
  }

  /** The stub for `to`; an UnknownBindingError if clients may not reach it. */
  get(to: CallTarget): NodeStub {
    const { nodeBindings, gatewayBindings, maxCachedStubs } = this.#config();
    if (nodeBindings && !nodeBindings.includes(to.binding)) throw new UnknownBindingError(to.binding, 'it is not in this gateway\'s nodeBindings');
    const key = stubKey(to);
    let stub = this.#stubs.get(key);
    if (!stub) {
      stub = resolveTarget(this.#env, to, gatewayBindings);
      if (this.#stubs.size >= maxCachedStubs) this.#stubs.delete(this.#stubs.keys().next().value!);
      this.#stubs.set(key, stub);
    }
    return stub;
  }

  /** An RPC through it threw: it may be broken (e.g. the target was reset), so a fresh one is built next time. */
  forget(to: CallTarget): void {
    this.#stubs.delete(stubKey(to));
  }
}
