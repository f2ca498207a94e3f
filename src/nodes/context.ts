/** The call context of the handler now running, carried across `await` by AsyncLocalStorage. */
import type { AsyncLocalStorage } from 'node:async_hooks';
import type { CallContext } from './envelope.js';

export const NODEJS_COMPAT_MISSING = 'meshgate needs the "nodejs_compat" compatibility flag (for AsyncLocalStorage, which carries the call context): '
  + 'add "compatibility_flags": ["nodejs_compat"] to your wrangler.jsonc (or wrangler.toml) and restart.';

type Storage = AsyncLocalStorage<CallContext>;
let storage: Storage | undefined;

/**
 * AsyncLocalStorage, reached through `process.getBuiltinModule` rather than a
 * static import: without nodejs_compat a static import fails the whole Worker
 * with `No such module "node:async_hooks"`, which does not say what to do.
 */
export function contextStorage(): Storage {
  if (storage) return storage;
  const process = (globalThis as { process?: { getBuiltinModule?: (name: string) => unknown } }).process;
  const hooks = process?.getBuiltinModule?.('node:async_hooks') as { AsyncLocalStorage?: new () => Storage } | undefined;
  if (!hooks?.AsyncLocalStorage) throw new Error(NODEJS_COMPAT_MISSING);
  return (storage = new hooks.AsyncLocalStorage());
}

export function runWithContext<T>(context: CallContext, fn: () => T): T {
  return contextStorage().run(context, fn);
}

/** The context of the mesh call being served, or undefined outside one (e.g. in `alarm()`). */
export function getCallContext(): CallContext | undefined {
  return contextStorage().getStore();
}
