/**
 * useStream: runs a stream from the mesh while the component is mounted and
 * its deps stay the same, and cancels it (its AbortSignal) otherwise. The
 * start waits a microtask, so StrictMode's immediate unmount and remount
 * starts one stream, not one cancelled and one running.
 */
import { useCallback, useEffect, useRef, useState, type DependencyList } from 'react';

export interface UseStreamOptions {
  /** How many of the latest chunks the hook returns (default 100; `Infinity` keeps all, as a text being typed out needs). */
  keep?: number;
}

export interface StreamView<T> {
  /** the latest `keep` chunks of the current run, oldest first */
  chunks: readonly T[];
  /** the last chunk received, if any */
  latest: T | undefined;
  /** chunks received in the current run, kept or not */
  count: number;
  /** the stream is being read */
  running: boolean;
  /** the producer ended it */
  done: boolean;
  /** stop() ended it (no error is shown for that) */
  stopped: boolean;
  /** what ended it otherwise: the producer's error, StreamInterruptedError, SupersededError… */
  error: unknown;
  /** Cancels the current run: the node's signal aborts and its generator's `finally` runs. */
  stop(): void;
}

type Start<T> = (signal: AbortSignal) => AsyncIterable<T> | Promise<AsyncIterable<T>> | null | undefined | false;
type State<T> = Omit<StreamView<T>, 'stop'>;

const IDLE: State<never> = { chunks: [], latest: undefined, count: 0, running: false, done: false, stopped: false, error: undefined };

/**
 * `start(signal)` makes the call: pass the signal to the stub,
 * `(signal) => client.node<Assistant>('ASSISTANT', room, { signal }).reply(prompt)`.
 * It runs again when `deps` change (the previous run is cancelled first);
 * returning nothing (null, undefined, false) runs nothing, e.g. before the user asked.
 */
export function useStream<T>(start: Start<T>, deps: DependencyList, options: UseStreamOptions = {}): StreamView<T> {
  const keep = options.keep ?? 100;
  if (!(keep === Infinity || (Number.isSafeInteger(keep) && keep >= 0))) {
    throw new RangeError(`useStream: keep must be a whole number of chunks (0 or more) or Infinity, not ${String(options.keep)}.`);
  }
  const [state, setState] = useState<State<T>>(IDLE);
  const startRef = useRef(start);
  startRef.current = start;
  const keepRef = useRef(keep);
  keepRef.current = keep;
  const current = useRef<AbortController | undefined>(undefined);

  useEffect(() => {
    const controller = new AbortController();
    current.current = controller;
    const { signal } = controller;
    queueMicrotask(() => {
      if (signal.aborted) return; // StrictMode's first mount, or deps that changed at once
      void run(signal);
    });
    const run = async (signal: AbortSignal): Promise<void> => {
      const update = (change: (previous: State<T>) => State<T>) => {
        if (!signal.aborted) setState(change);
      };
      try {
        const started = startRef.current(signal);
        if (!started) return update(() => IDLE);
        update(() => ({ ...IDLE, running: true }));
        const iterable = await started; // a MeshStream resolves once the node answered with its stream
        for await (const chunk of iterable) {
          if (signal.aborted) break; // leaving the loop cancels it too
          update((previous) => {
            const chunks = keepRef.current === 0 ? [] : [...previous.chunks, chunk];
            return { ...previous, chunks: chunks.length > keepRef.current ? chunks.slice(chunks.length - keepRef.current) : chunks, latest: chunk, count: previous.count + 1 };
          });
        }
        update((previous) => ({ ...previous, running: false, done: true }));
      } catch (error) {
        update((previous) => ({ ...previous, running: false, error }));
      }
    };
    return () => {
      controller.abort();
      if (current.current === controller) current.current = undefined;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps -- the caller's deps decide when it runs again
  }, deps);

  const stop = useCallback(() => {
    const controller = current.current;
    if (!controller || controller.signal.aborted) return;
    controller.abort();
    setState((previous) => (previous.running ? { ...previous, running: false, stopped: true } : previous));
  }, []);
  return { ...state, stop };
}
