import { findDataMethod } from '../protocol/method-lookup.js';
import { isStandardSchema, type StandardSchemaV1 } from '../protocol/standard-schema.js';
import type { MeshMethodOptions, SchemaOutputs } from './checks.js';

/**
 * The allowlist marker. Only methods marked with `@mesh` are callable from
 * outside; everything else — constructor, fetch, alarm, Object.prototype,
 * framework internals, unmarked methods — is refused by `findExposedMethod`.
 */

const EXPOSED = Symbol.for('meshgate.exposed');
const CHECKS = Symbol.for('meshgate.checks');

type AnyFunction = (...args: never[]) => unknown;

function markFunction<F>(fn: F, checks?: MeshMethodOptions): F {
  if (typeof fn !== 'function') throw new TypeError('@mesh can only mark methods.');
  Object.defineProperty(fn, EXPOSED, { value: true });
  if (checks) Object.defineProperty(fn, CHECKS, { value: checks });
  return fn;
}

/** The options, checked once when the method is marked, so a typo fails at deploy rather than on a call. */
function checkedOptions(options: MeshMethodOptions): MeshMethodOptions {
  const { args, result, guard } = options;
  if (args !== undefined && (!Array.isArray(args) || !args.every(isStandardSchema))) {
    throw new TypeError('@mesh({ args }): args must be an array of Standard Schema schemas (zod, valibot, arktype, …), one per argument.');
  }
  if (result !== undefined && !isStandardSchema(result)) throw new TypeError('@mesh({ result }): result must be a Standard Schema schema (zod, valibot, arktype, …).');
  if (guard !== undefined && typeof guard !== 'function') throw new TypeError('@mesh({ guard }): guard must be a function (context, node, method) => boolean.');
  return Object.freeze({ ...options, ...(args === undefined ? {} : { args: Object.freeze([...args]) }) });
}

/**
 * Marks a method as callable through the mesh. Works as `@mesh`, `@mesh()`,
 * with TypeScript's standard decorators and with `experimentalDecorators`.
 * `@mesh({ args, result, guard })` makes it a checked method: the guard and
 * the argument schemas run before it, the result schema after it. With
 * `args`, the method's parameters must accept what the schemas output.
 */
export function mesh(): <F>(value: F, context?: unknown) => F;
export function mesh<const A extends readonly StandardSchemaV1[]>(options: MeshMethodOptions & { args: A }):
  <This, F extends (this: This, ...args: SchemaOutputs<A>) => unknown>(value: F, context: ClassMethodDecoratorContext<This, F> | object, descriptor?: PropertyDescriptor) => F;
export function mesh(options: MeshMethodOptions): <F>(value: F, context?: unknown, descriptor?: PropertyDescriptor) => F;
export function mesh<F extends AnyFunction>(value: F, context: ClassMethodDecoratorContext): F;
export function mesh(target: object, key: string | symbol, descriptor: PropertyDescriptor): PropertyDescriptor;
export function mesh(...args: unknown[]): unknown {
  if (args.length === 0) return (value: unknown) => markFunction(value);
  if (args.length === 1 && typeof args[0] !== 'function') {
    const checks = checkedOptions((args[0] ?? {}) as MeshMethodOptions);
    return (...inner: unknown[]) => {
      if (inner.length === 3 && inner[2] && typeof inner[2] === 'object') {
        markFunction((inner[2] as PropertyDescriptor).value, checks);
        return inner[2];
      }
      return markFunction(inner[0], checks);
    };
  }
  if (args.length === 3 && args[2] && typeof args[2] === 'object') {
    const descriptor = args[2] as PropertyDescriptor;
    markFunction(descriptor.value);
    return descriptor;
  }
  return markFunction(args[0]);
}

/** The guard and schemas a marked method declared with `@mesh({ ... })`, if any. */
export function checksOf(fn: AnyFunction): MeshMethodOptions | undefined {
  return Object.getOwnPropertyDescriptor(fn, CHECKS)?.value as MeshMethodOptions | undefined;
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
