/** Hooks over the provider's shared client: the client, its connection state, stubs, calls, and handlers for calls from the mesh. */
import { useCallback, useContext, useEffect, useMemo, useRef, useState, useSyncExternalStore } from 'react';
import type { MeshClient } from '../client/mesh-client.js';
import type { Stub } from '../protocol/stub.js';
import { MeshContext } from './provider.js';
import type { ConnectionSnapshot, SharedClient } from './shared-client.js';

/** The provider's shared client (for this folder's hooks). */
export function useShared(hook: string): SharedClient<object> {
  const shared = useContext(MeshContext);
  if (!shared) throw new Error(`${hook}() needs a <MeshProvider> above this component.`);
  return shared;
}

/** The tab's MeshClient: the same object for the life of the provider, however often it renders or remounts. */
export function useMeshClient<Handlers extends object = object>(): MeshClient<Handlers> {
  return useShared('useMeshClient').client as MeshClient<Handlers>;
}

/** The connection as the user should see it; re-renders only when it changes. */
export function useConnectionState(): ConnectionSnapshot {
  const shared = useShared('useConnectionState');
  const read = useCallback(() => shared.snapshot, [shared]);
  return useSyncExternalStore(shared.subscribe, read, read);
}

/** A stub for a Durable Object (binding + instance) or a Worker (binding only), the same object while they stay the same. */
export function useNode<T>(binding: string, instance?: string, options: { timeoutMs?: number } = {}): Stub<T> {
  const client = useMeshClient();
  const { timeoutMs } = options;
  return useMemo(() => client.node<T>(binding, instance, timeoutMs === undefined ? {} : { timeoutMs }), [client, binding, instance, timeoutMs]);
}

export interface CallState<Args extends unknown[], Result> {
  /** Runs the call; resolves or rejects as the call does (the state below follows it too). */
  call: (...args: Args) => Promise<Result>;
  /** the latest call's result, until the next call starts */
  data: Result | undefined;
  /** the latest call's error (typed errors keep their class: CallTimeoutError, OutcomeUnknownError…) */
  error: unknown;
  loading: boolean;
  reset: () => void;
}

/**
 * A call with its loading and error state, for plain React. Only the latest
 * call's outcome is shown (an earlier one that settles late is ignored), and
 * nothing is set after unmount. With TanStack Query, pass `useNode()`'s stub
 * methods to `useQuery` / `useMutation` instead.
 */
export function useCall<Args extends unknown[], Result>(run: (...args: Args) => Promise<Result>): CallState<Args, Result> {
  const [state, setState] = useState<{ data: Result | undefined; error: unknown; loading: boolean }>({ data: undefined, error: undefined, loading: false });
  const latest = useRef(0);
  const mounted = useRef(true);
  const runRef = useRef(run);
  runRef.current = run;
  useEffect(() => {
    mounted.current = true;
    return () => void (mounted.current = false);
  }, []);
  const call = useCallback(async (...args: Args): Promise<Result> => {
    const id = ++latest.current;
    const settle = (next: { data: Result | undefined; error: unknown }) => {
      if (mounted.current && id === latest.current) setState({ ...next, loading: false });
    };
    setState((previous) => ({ data: previous.data, error: undefined, loading: true }));
    try {
      const data = await runRef.current(...args);
      settle({ data, error: undefined });
      return data;
    } catch (error) {
      settle({ data: undefined, error });
      throw error;
    }
  }, []);
  const reset = useCallback(() => {
    latest.current++;
    setState({ data: undefined, error: undefined, loading: false });
  }, []);
  return { call, ...state, reset };
}

type HandlerMap<Handlers> = { [K in keyof Handlers]?: Handlers[K] };

/**
 * Serves calls from the mesh with these functions while the component is
 * mounted. The latest functions are used at each call, so passing new
 * closures every render registers nothing again; only a change in the set of
 * method names does. The latest mounted component wins a name until it unmounts.
 */
export function useIncoming<Handlers extends object>(handlers: HandlerMap<Handlers>): void {
  const shared = useShared('useIncoming');
  const refs = useRef(new Map<string, { current: (...args: never[]) => unknown }>());
  const names = Object.keys(handlers).filter((name) => typeof (handlers as Record<string, unknown>)[name] === 'function').sort();
  for (const name of names) {
    const fn = (handlers as Record<string, (...args: never[]) => unknown>)[name]!;
    const ref = refs.current.get(name);
    if (ref) ref.current = fn;
    else refs.current.set(name, { current: fn });
  }
  const key = names.join('\n');
  useEffect(() => {
    const releases = key.split('\n').filter(Boolean).map((name) => shared.register(name, refs.current.get(name)!));
    return () => releases.forEach((release) => release());
  }, [shared, key]);
}
