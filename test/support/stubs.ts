/**
 * Durable Object stubs reached from the host once per object and reused.
 * Reaching one through Miniflare's proxy takes synchronous calls, whose
 * channel can lose step under load and then fail every later one; a reused
 * stub's fetch is asynchronous, so polls make none.
 */
export function reusedStubs(namespace: (binding: string) => Promise<DurableObjectNamespace>): (binding: string, name: string) => Promise<DurableObjectStub> {
  const stubs = new Map<string, DurableObjectStub>();
  return async (binding, name) => {
    const key = `${binding}/${name}`;
    let stub = stubs.get(key);
    if (!stub) {
      const ns = await namespace(binding);
      stub = ns.get(ns.idFromName(name));
      stubs.set(key, stub);
    }
    return stub;
  };
}
