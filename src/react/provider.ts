/** <MeshProvider>: gives its subtree the tab's MeshClient (shared-client.ts) and connects it while mounted. */
import { createContext, createElement, useEffect, useReducer, type ReactNode } from 'react';
import type { MeshClientOptions } from '../client/mesh-client.js';
import { sharedClient, type SharedClient } from './shared-client.js';

export const MeshContext = createContext<SharedClient<object> | undefined>(undefined);

export interface MeshProviderProps<Handlers extends object> {
  /** Read when the tab's client is made; later changes are ignored (register handlers with useIncoming instead). */
  options: MeshClientOptions<Handlers>;
  /** Clients are shared per key: providers with one key share one client and socket (default 'default'). */
  clientKey?: string;
  /** How long the client outlives its last provider, so a remount keeps its socket (default 1000 ms). */
  disposeDelayMs?: number;
  children?: ReactNode;
}

export function MeshProvider<Handlers extends object>({ options, clientKey = 'default', disposeDelayMs = 1000, children }: MeshProviderProps<Handlers>) {
  const [, renderAgain] = useReducer((n: number) => n + 1, 0);
  const shared = sharedClient(clientKey, options, disposeDelayMs) as unknown as SharedClient<object>;
  useEffect(() => {
    // A render committed after its client was already disposed (held back longer than disposeDelayMs): take the next one.
    if (shared.disposed) return renderAgain();
    return shared.hold();
  }, [shared]);
  return createElement(MeshContext.Provider, { value: shared }, children);
}
