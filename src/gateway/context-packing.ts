/**
 * Which calls' contexts travel packed (src/nodes/packed-envelope.ts), and to
 * which bindings: a binding whose node turned out to be of an earlier
 * meshgate version gets objects from then on.
 */
import type { CallContext } from '../nodes/envelope.js';
import { packContext, packedContext, packedIdentity } from '../nodes/packed-envelope.js';

export class ContextPacking {
  /** true if the application overrides onBeforeCallToMesh: it may have changed anything in a context */
  readonly #hookSet: () => boolean;
  /** each socket's packed origin and identity, by its claims object; null if they do not survive JSON */
  readonly #identities = new WeakMap<object, string | null>();
  /** bindings whose nodes have no packed entries */
  readonly #unpacked = new Set<string>();
  /** bindings whose nodes take packed envelopes but no call texts */
  readonly #untexted = new Set<string>();

  constructor(hookSet: () => boolean) {
    this.#hookSet = hookSet;
  }

  /** The context packed for a call to `binding`, or undefined: it travels as objects. */
  pack(binding: string, context: CallContext): string | undefined {
    if (this.#unpacked.has(binding)) return undefined;
    // After a hook the context is checked whole; without one it is as the gateway built it.
    if (this.#hookSet() || !context.originAuth) return packContext(context);
    const { claims } = context.originAuth;
    let identity = this.#identities.get(claims);
    if (identity === undefined) this.#identities.set(claims, (identity = packedIdentity(context.origin, context.originAuth) ?? null));
    return identity === null ? undefined : packedContext(identity, context.state);
  }

  /** `binding`'s node refused a packed call, having run nothing: it gets objects from now on. */
  refused(binding: string): void {
    this.#unpacked.add(binding);
  }

  /** True while `binding`'s node may take calls as one text (packed-envelope.ts, callText). */
  takesText(binding: string): boolean {
    return !this.#untexted.has(binding);
  }

  /** `binding`'s node refused a call text, having run nothing: it gets packed envelopes from now on. */
  refusedText(binding: string): void {
    this.#untexted.add(binding);
  }
}
