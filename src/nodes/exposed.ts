import { findDataMethod } from '../protocol/method-lookup.js';

/**
 * The allowlist marker. Only methods marked with `@mesh` are callable from
 * outside; everything else — constructor, fetch, alarm, Object.prototype,
 * framework internals, unmarked methods — is refused by `findExposedMethod`.
 */

const EXPOSED = Symbol.for('meshgate.exposed');

type AnyFunction = (...args: never[]) => unknown;

function markFunction<F>(fn: F): F {
  if (typeof fn !== 'function') throw new TypeError('@mesh can only mark methods.');
  Object.defineProperty(fn, EXPOSED, { value: true });
  return fn;
}

/**
 * Marks a method as callable through the mesh. Works as `@mesh`, `@mesh()`,
 * with TypeScript's standard decorators and with `experimentalDecorators`.
 */
export function mesh(): <F>(value: F, context?: unknown) => F;
export function mesh<F extends AnyFunction>(value: F, context: ClassMethodDecoratorContext): F;
export function mesh(target: object, key: string | symbol, descriptor: PropertyDescriptor): PropertyDescriptor;
export function mesh(...args: unknown[]): unknown {
  if (args.length === 0) return (value: unknown) => markFunction(value);
  if (args.length === 3 && args[2] && typeof args[2] === 'object') {
    const descriptor = args[2] as PropertyDescriptor;
    markFunction(descriptor.value);
    return descriptor;
  }
  return markFunction(args[0]);
}

/** Names that are never callable, marked or not. */
const NEVER_CALLABLE = new Set([
  'constructor', 'fetch', 'alarm', 'webSocketMessage', 'webSocketClose', 'webSocketError',
  '__proto__', 'prototype', 'toString', 'valueOf', 'hasOwnProperty', 'isPrototypeOf',
  'propertyIsEnumerable', 'toLocaleString', '__defineGetter__', '__defineSetter__',
  '__lookupGetter__', '__lookupSetter__', 'then',
]);

/** The marked method of that name on `target`, or undefined; a getter of that name is never run. */
export function findExposedMethod(target: object, name: string): AnyFunction | undefined {
  if (NEVER_CALLABLE.has(name) || name.startsWith('__meshgate')) return undefined;
  const fn = findDataMethod(target, name);
  if (fn === undefined) return undefined;
  return Object.getOwnPropertyDescriptor(fn, EXPOSED)?.value === true ? fn : undefined;
}
