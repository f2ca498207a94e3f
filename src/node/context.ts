/** The call context of the handler now running, carried across `await` by AsyncLocalStorage. */
import { AsyncLocalStorage } from 'node:async_hooks';
import type { CallContext } from './envelope.js';

const storage = new AsyncLocalStorage<CallContext>();

export function runWithContext<T>(context: CallContext, fn: () => T): T {
  return storage.run(context, fn);
}

/** The context of the mesh call being served, or undefined outside one (e.g. in `alarm()`). */
export function getCallContext(): CallContext | undefined {
  return storage.getStore();
}
