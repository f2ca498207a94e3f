/**
 * `this.mesh.signal`: one AbortSignal per call served, aborted when the
 * caller cancels it (or the client that started it is gone for good). The
 * controller is made only when someone reads the signal or aborts it, so a
 * call nobody cancels costs a WeakMap lookup at most.
 */
import { CancelledError } from '../protocol/errors.js';
import type { CallContext, CancelWatch } from './envelope.js';

/** What code outside any call sees: a signal that never aborts (made on first use: workerd allows no AbortController at global scope). */
let never: AbortSignal | undefined;

export class CallSignal {
  #controller: AbortController | undefined;
  #reason: unknown;
  #aborted = false;

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
  }
}

/** Keyed by the context object the call runs under (the one in AsyncLocalStorage), so the signal goes wherever the context does. */
const signals = new WeakMap<CallContext, CallSignal>();

export function signalOf(context: CallContext): CallSignal {
  let signal = signals.get(context);
  if (!signal) signals.set(context, (signal = new CallSignal()));
  return signal;
}

/** The signal of the call `context` serves, or one that never aborts. */
export function abortSignalOf(context: CallContext | undefined): AbortSignal {
  return context ? signalOf(context).signal : (never ??= new AbortController().signal);
}

/** Aborts the call's signal when its gateway says the caller cancelled (`wait()` resolves true); false or a broken RPC: the call ended first. */
export function watchCancel(watch: CancelWatch, context: CallContext, method: string): void {
  Promise.resolve(watch.wait()).then((cancelled) => {
    if (cancelled === true) signalOf(context).abort(new CancelledError(method));
  }, () => undefined);
}
