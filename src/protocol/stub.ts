/** Typed call stubs, shared by the client and the server (no runtime-specific imports). */

/**
 * What a call to a streaming method gives: iterate it directly
 * (`for await (const x of stub.words())`), or await it for the stream first
 * (which also waits for the call itself to be answered).
 */
export interface MeshStream<U> extends Promise<AsyncIterable<U>>, AsyncIterable<U> {}

/** A method's result as its caller sees it: a stream for an async iterable or ReadableStream, else a promise of the value. */
export type Remote<R> = Awaited<R> extends AsyncIterable<infer U>
  ? MeshStream<U>
  : Awaited<R> extends ReadableStream<infer U> ? MeshStream<U> : Promise<Awaited<R>>;

/** Every method of T as an async function returning the awaited result (or a stream, see Remote). */
export type Stub<T> = {
  [K in keyof T as T[K] extends (...args: never[]) => unknown ? K : never]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => Remote<R>
    : never;
};

/**
 * The promise of a call that can also be iterated: its iterator awaits the
 * call, then reads the stream it answered with. Leaving the loop before the
 * answer came cancels the stream as soon as it does.
 */
export function iterableCall<U>(call: Promise<unknown>): MeshStream<U> {
  Object.defineProperty(call, Symbol.asyncIterator, { value: iterateCall });
  return call as MeshStream<U>;
}

/** The iterator of a call's promise (`this`): one function for every call, so making a call allocates none. */
function iterateCall<U>(this: Promise<unknown>): AsyncIterator<U> {
  const call = this;
  if (!(call instanceof Promise)) throw new TypeError('meshgate: a call\'s [Symbol.asyncIterator] was called without its call; iterate the call itself (for await (const x of stub.method())).');
  let inner: AsyncIterator<U> | undefined;
  let left = false;
  const open = async (): Promise<AsyncIterator<U> | undefined> => {
    if (inner) return inner;
    const result = await call;
    if (typeof (result as AsyncIterable<U> | null)?.[Symbol.asyncIterator] !== 'function') {
      throw new TypeError('meshgate: this method did not return a stream (an async iterable or ReadableStream); await its result instead of iterating it.');
    }
    inner = (result as AsyncIterable<U>)[Symbol.asyncIterator]();
    if (left) await inner.return?.();
    return left ? undefined : inner;
  };
  return {
    next: async () => (await open())?.next() ?? { value: undefined, done: true },
    return: async () => {
      left = true;
      if (inner) await inner.return?.();
      else void call.then((result) => (result as AsyncIterable<U> | null)?.[Symbol.asyncIterator]?.().return?.(), () => undefined);
      return { value: undefined, done: true };
    },
  };
}

/** Builds a stub whose every property is a method that calls `invoke`. */
export function createStub<T>(invoke: (method: string, args: unknown[]) => Promise<unknown>): Stub<T> {
  return new Proxy({} as Stub<T>, {
    get(_target, property) {
      // A stub must not look like a promise, or `await stub` would call it.
      if (typeof property !== 'string' || property === 'then') return undefined;
      return (...args: unknown[]) => iterableCall(invoke(property, args));
    },
  });
}
