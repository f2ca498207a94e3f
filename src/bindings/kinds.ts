/** What kind of binding a value in `env` is, told apart without calling it. */

export interface Namespace<Stub = unknown> {
  idFromName(name: string): unknown;
  get(id: unknown): Stub;
}

// RPC stubs answer every property with a function, so bindings are told apart by their tag.
export function isNamespace(value: unknown): value is Namespace {
  return Object.prototype.toString.call(value) === '[object DurableObjectNamespace]';
}

export function isService(value: unknown): boolean {
  return Object.prototype.toString.call(value) === '[object Fetcher]';
}
