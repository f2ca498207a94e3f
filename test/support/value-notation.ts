/**
 * The typed JSON notation of src/protocol/vectors/values-v1.json: `describedValue`
 * builds the JavaScript value a description names, and `assertSameValue`
 * compares two values the way the codec promises to keep them (NaN, -0,
 * holes, prototypes, key order, shared identity and cycles).
 */
import { reviveError } from '../../src/protocol/errors.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Every `$form` of the notation, so a test can check each one is used. */
export const NOTATION_FORMS = [
  '$ref', '$undefined', '$number', '$bigint', '$date', '$regexp', '$array', '$sparse', '$object', '$nullproto', '$map', '$set',
  '$boxed', '$url', '$urlsearchparams', '$arraybuffer', '$view', '$error',
] as const;

const SPECIAL_NUMBERS: Record<string, number> = { NaN, Infinity, '-Infinity': -Infinity, '-0': -0 };

function fail(path: string, why: string): never {
  throw new Error(`value description at ${path}: ${why}`);
}

function bytesFromHex(hex: string, path: string): ArrayBuffer {
  if (!/^(?:[0-9a-f]{2})*$/.test(hex)) fail(path, 'an $arraybuffer is lowercase hex, two digits a byte');
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes.buffer;
}

/** Builds the value `description` names; `$id`s are registered before their children are built, so a child may `$ref` an ancestor. */
export function describedValue(description: Json): unknown {
  const ids = new Map<string, unknown>();
  const build = (d: Json, path: string): unknown => {
    if (d === null || typeof d !== 'object') {
      if (typeof d === 'number' && Object.is(d, -0)) fail(path, 'write -0 as {"$number":"-0"}');
      return d;
    }
    if (Array.isArray(d)) return d.map((item, i) => build(item, `${path}[${i}]`));
    const forms = Object.keys(d).filter((key) => key.startsWith('$') && key !== '$id');
    const id = d.$id;
    if (id !== undefined && typeof id !== 'string') fail(path, '$id is a string');
    const made = <T>(value: T): T => {
      if (id !== undefined) {
        if (ids.has(id)) fail(path, `$id "${id}" is used twice`);
        ids.set(id, value);
      }
      return value;
    };
    const pairs = (x: Json, what: string): Array<[Json, Json]> => {
      if (!Array.isArray(x) || !x.every((p) => Array.isArray(p) && p.length === 2)) fail(path, `${what} is a list of [key, value] pairs`);
      return x as Array<[Json, Json]>;
    };
    if (forms.length === 0) {
      const object = made({} as Record<string, unknown>);
      for (const [key, value] of Object.entries(d)) if (key !== '$id') object[key] = build(value, `${path}.${key}`);
      return object;
    }
    if (forms.length > 1) fail(path, `one $form per object, got ${forms.join(', ')}`);
    const form = forms[0]!;
    const arg = d[form]!;
    switch (form) {
      case '$ref':
        if (typeof arg !== 'string' || !ids.has(arg)) fail(path, `$ref "${String(arg)}" names no $id met before it`);
        return ids.get(arg);
      case '$undefined': return undefined;
      case '$number':
        if (typeof arg !== 'string' || !(arg in SPECIAL_NUMBERS)) fail(path, '$number is "NaN", "Infinity", "-Infinity" or "-0"');
        return SPECIAL_NUMBERS[arg];
      case '$bigint': return BigInt(arg as string);
      case '$date': return made(new Date(arg === null ? NaN : (arg as string)));
      case '$regexp': {
        const [source, flags] = arg as [string, string];
        return made(new RegExp(source, flags));
      }
      case '$array': {
        const array = made([] as unknown[]);
        (arg as Json[]).forEach((item, i) => array.push(build(item, `${path}[${i}]`)));
        return array;
      }
      case '$sparse': {
        const { length, items } = arg as { length: number; items: Json };
        const array = made([] as unknown[]);
        array.length = length;
        for (const [index, value] of pairs(items, '$sparse.items')) array[index as number] = build(value, `${path}[${String(index)}]`);
        return array;
      }
      case '$object':
      case '$nullproto': {
        const object = made((form === '$object' ? {} : Object.create(null)) as Record<string, unknown>);
        for (const [key, value] of pairs(arg, form)) {
          Object.defineProperty(object, key as string, { value: build(value, `${path}.${String(key)}`), enumerable: true, writable: true, configurable: true });
        }
        return object;
      }
      case '$map': {
        const map = made(new Map());
        for (const [key, value] of pairs(arg, '$map')) map.set(build(key, `${path}.key`), build(value, `${path}.value`));
        return map;
      }
      case '$set': {
        const set = made(new Set());
        (arg as Json[]).forEach((item, i) => set.add(build(item, `${path}[${i}]`)));
        return set;
      }
      case '$boxed': return made(Object(build(arg, `${path}.$boxed`)));
      case '$url': return made(new URL(arg as string));
      case '$urlsearchparams': return made(new URLSearchParams(arg as string));
      case '$arraybuffer': return made(bytesFromHex(arg as string, path));
      case '$view': {
        const buffer = build(d.buffer!, `${path}.buffer`) as ArrayBuffer;
        const Type = (globalThis as unknown as Record<string, new (b: ArrayBuffer, offset?: number, length?: number) => unknown>)[arg as string];
        if (typeof Type !== 'function') fail(path, `no ${String(arg)} in this runtime`);
        return made(d.byteOffset === undefined ? new Type(buffer) : new Type(buffer, d.byteOffset as number, d.length as number));
      }
      case '$error': {
        const { name, message, cause, props } = arg as { name: string; message: string; cause?: Json; props?: Record<string, Json> };
        // reviveError gives the registered class's prototype; parts are set after $id so they may refer back.
        const error = made(reviveError(name, message, undefined, {}));
        if ('cause' in (arg as object)) Object.defineProperty(error, 'cause', { value: build(cause!, `${path}.cause`), enumerable: false, writable: true, configurable: true });
        for (const [key, value] of Object.entries(props ?? {})) {
          Object.defineProperty(error, key, { value: build(value, `${path}.props.${key}`), enumerable: true, writable: true, configurable: true });
        }
        return error;
      }
      default: return fail(path, `unknown form ${form}`);
    }
  };
  return build(description, '$');
}

const tagOf = (value: object): string => Object.prototype.toString.call(value).slice(8, -1);

/**
 * Throws, naming the path, unless `actual` is the same value as `expected`:
 * primitives by Object.is, objects by prototype, kind, contents and key order,
 * and shared identity (two places holding one object in `expected` hold one
 * object in `actual`, and two different objects stay two).
 */
export function assertSameValue(actual: unknown, expected: unknown): void {
  const paired = new Map<object, unknown>();
  const claimed = new Set<unknown>();
  const walk = (a: unknown, e: unknown, path: string): void => {
    const differ = (why: string): never => { throw new Error(`at ${path}: ${why}`); };
    if (e === null || (typeof e !== 'object' && typeof e !== 'function')) {
      if (!Object.is(a, e)) differ(`expected ${typeof e === 'bigint' ? `${e}n` : String(e)}, got ${typeof a === 'object' && a !== null ? 'an object' : String(a)}`);
      return;
    }
    if (a === null || typeof a !== 'object') differ('expected an object');
    if (paired.has(e)) {
      if (paired.get(e) !== a) differ('expected the same object as met before (a shared reference or cycle), got a different one');
      return;
    }
    if (claimed.has(a)) differ('expected a distinct object, got one already met elsewhere');
    paired.set(e, a);
    claimed.add(a);
    const ao = a as Record<string, unknown>;
    const eo = e as Record<string, unknown>;
    if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(e)) differ(`prototype differs (expected ${tagOf(e)} ${String((e as Error).name ?? '')})`);
    const tag = tagOf(e);
    if (tagOf(a as object) !== tag) differ(`expected a ${tag}, got a ${tagOf(a as object)}`);
    const sameKeys = (): void => {
      const ka = Object.keys(ao), ke = Object.keys(eo);
      if (ka.join('\0') !== ke.join('\0')) differ(`own keys ${JSON.stringify(ka)} instead of ${JSON.stringify(ke)}`);
      for (const key of ke) walk(ao[key], eo[key], `${path}.${key}`);
    };
    switch (tag) {
      case 'Array':
        if ((a as unknown[]).length !== (e as unknown[]).length) differ(`length ${(a as unknown[]).length} instead of ${(e as unknown[]).length}`);
        return sameKeys();
      case 'Date': return walk((a as Date).getTime(), (e as Date).getTime(), `${path}.getTime()`);
      case 'RegExp': return walk(`/${(a as RegExp).source}/${(a as RegExp).flags}`, `/${(e as RegExp).source}/${(e as RegExp).flags}`, path);
      case 'Map': case 'Set': {
        const ea = [...(a as Map<unknown, unknown>).entries()], ee = [...(e as Map<unknown, unknown>).entries()];
        if (ea.length !== ee.length) differ(`size ${ea.length} instead of ${ee.length}`);
        ee.forEach(([k, v], i) => { walk(ea[i]![0], k, `${path}<key ${i}>`); walk(ea[i]![1], v, `${path}<value ${i}>`); });
        return;
      }
      case 'Number': case 'String': case 'Boolean': case 'BigInt': return walk(ao.valueOf(), eo.valueOf(), `${path}.valueOf()`);
      case 'URL': case 'URLSearchParams': return walk(String(a), String(e), path);
      case 'ArrayBuffer': return walk(Buffer.from(a as ArrayBuffer).toString('hex'), Buffer.from(e as ArrayBuffer).toString('hex'), `${path}<bytes>`);
      case 'Error': {
        for (const key of ['name', 'message'] as const) walk(ao[key], eo[key], `${path}.${key}`);
        if (Object.hasOwn(ao, 'cause') !== Object.hasOwn(eo, 'cause')) differ('a cause on one side only');
        if (Object.hasOwn(eo, 'cause')) walk(ao.cause, eo.cause, `${path}.cause`);
        return sameKeys();
      }
      default:
        if (ArrayBuffer.isView(e)) {
          const va = a as ArrayBufferView, ve = e as ArrayBufferView;
          walk(va.byteOffset, ve.byteOffset, `${path}.byteOffset`);
          walk(va.byteLength, ve.byteLength, `${path}.byteLength`);
          return walk(va.buffer, ve.buffer, `${path}.buffer`);
        }
        if (tag !== 'Object') differ(`cannot compare a ${tag}`);
        return sameKeys();
    }
  };
  walk(actual, expected, '$');
}
