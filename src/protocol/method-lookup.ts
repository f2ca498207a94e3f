/**
 * Finds a method by name without running any code of the target: it reads
 * property descriptors along the prototype chain, so a getter of that name
 * (which a plain `target[name]` would run) is never called, and is no method.
 */

/** The function stored as data property `name` on `target` or its prototypes (Object.prototype excluded), or undefined. */
export function findDataMethod(target: object, name: string): ((...args: never[]) => unknown) | undefined {
  for (let at: object | null = target; at !== null && at !== Object.prototype; at = Object.getPrototypeOf(at)) {
    const descriptor = Object.getOwnPropertyDescriptor(at, name);
    if (descriptor === undefined) continue;
    return 'value' in descriptor && typeof descriptor.value === 'function' ? descriptor.value : undefined;
  }
  return undefined;
}
