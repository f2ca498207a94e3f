/**
 * Cancellable client → mesh calls (`cancellable: true` in the call frame).
 * Workers RPC cannot cancel a call in flight, so the node is handed a
 * CallCancel and asks it `wait()`: the answer comes when the client cancels
 * (true) or when the call ends (false), so no promise outlives the call.
 */
import { RpcTarget } from 'cloudflare:workers';

export class CallCancel extends RpcTarget {
  #resolve!: (cancelled: boolean) => void;
  readonly #answer = new Promise<boolean>((resolve) => (this.#resolve = resolve));
  cancelled = false;

  wait(): Promise<boolean> {
    return this.#answer;
  }

  settle(cancelled: boolean): void {
    this.cancelled ||= cancelled;
    this.#resolve(cancelled);
  }
}

export class CallCancels {
  readonly #calls = new Map<string, CallCancel>();

  /** The CallCancel for a call about to run. */
  add(id: string): CallCancel {
    const cancel = new CallCancel();
    this.#calls.set(id, cancel);
    return cancel;
  }

  get(id: string): CallCancel | undefined {
    return this.#calls.get(id);
  }

  /** The client cancelled call `id`: its node hears it. False: no such call is running. */
  cancel(id: string): boolean {
    const cancel = this.#calls.get(id);
    cancel?.settle(true);
    return cancel !== undefined;
  }

  /** Call `id` ended: its node stops waiting. True if it had been cancelled. */
  end(id: string): boolean {
    const cancel = this.#calls.get(id);
    if (!cancel) return false;
    this.#calls.delete(id);
    cancel.settle(false);
    return cancel.cancelled;
  }

  /** The client is gone for good: every running call it can cancel is cancelled. */
  cancelAll(): void {
    for (const cancel of this.#calls.values()) cancel.settle(true);
  }
}
