/** Typed call stubs, shared by the client and the server (no runtime-specific imports). */

/** Every method of T as an async function returning the awaited result. */
export type Stub<T> = {
  [K in keyof T as T[K] extends (...args: never[]) => unknown ? K : never]: T[K] extends (...args: infer A) => infer R
    ? (...args: A) => Promise<Awaited<R>>
    : never;
};

/** Builds a stub whose every property is a method that calls `invoke`. */
export function createStub<T>(invoke: (method: string, args: unknown[]) => Promise<unknown>): Stub<T> {
  return new Proxy({} as Stub<T>, {
    get(_target, property) {
      // A stub must not look like a promise, or `await stub` would call it.
      if (typeof property !== 'string' || property === 'then') return undefined;
      return (...args: unknown[]) => invoke(property, args);
    },
  });
}
