/**
 * The value codec: arguments, results and errors keep their types end to end.
 * Built on devalue (Date, Map, Set, BigInt, undefined, NaN/±Infinity, -0,
 * typed arrays, RegExp, cycles and shared references); errors are added with
 * a reducer that keeps name, message, cause and own properties but never the
 * stack, which would leak server internals to clients.
 */
import { stringify, unflatten } from 'devalue';
import { describeUntrusted, MeshError, ProtocolError, reviveError } from './errors.js';
import { checkValueBounds, DEFAULT_VALUE_BOUNDS, type ValueBounds } from './value-bounds.js';

type ErrorParts = [name: string, message: string, cause: unknown, props: Record<string, unknown>];

const reducers = {
  Error: (value: unknown): ErrorParts | false => {
    if (!(value instanceof Error)) return false;
    const props: Record<string, unknown> = {};
    for (const key of Object.keys(value)) {
      if (key === 'name' || key === 'message' || key === 'stack' || key === 'cause') continue;
      props[key] = (value as unknown as Record<string, unknown>)[key];
    }
    return [value.name, value.message, value.cause, props];
  },
};

const revivers = {
  // The parts come from the wire: reviveError checks each one's type and coerces nothing.
  Error: (parts: unknown) => {
    const [name, message, cause, props] = Array.isArray(parts) ? parts : [];
    return reviveError(name, message, cause, props);
  },
};
const REVIVED_TAGS: ReadonlySet<string> = new Set(Object.keys(revivers));

/**
 * Characters devalue writes otherwise than JSON.stringify does (it escapes `<`
 * and the line separators, and leaves lone surrogates as they are): a string
 * without any is encoded the same by both.
 */
const NOT_AS_JSON = /[<\u2028\u2029\ud800-\udfff]/;

/** What a value being encoded is, for the error when it cannot be sent: `the arguments of "save"`. */
export type EncodedPart = 'the arguments of' | 'the value returned by' | 'the value returned by the handler';

/**
 * Encodes any supported value to a string; throws a clear error for values it
 * cannot carry (functions, class instances), naming the part of which call it
 * was (two arguments rather than one string: nothing is built per call).
 */
export function encodeValue(value: unknown, part?: EncodedPart, method?: string): string {
  // A string result (the commonest) written natively, the same text devalue writes with a loop over every character.
  if (typeof value === 'string' && !NOT_AS_JSON.test(value)) return `[${JSON.stringify(value)}]`;
  const primitives = Array.isArray(value) ? primitiveArrayText(value) : undefined;
  if (primitives !== undefined) return primitives;
  try {
    return stringify(value, reducers);
  } catch (error) {
    const what = part === undefined ? 'this value' : `${part} "${method}"`;
    throw new TypeError(`meshgate cannot send ${what}: ${(error as Error).message}. Send plain data (objects, arrays, Date, Map, Set, typed arrays, errors), not functions or class instances.`);
  }
}

/** The longest array primitiveArrayText writes: it finds repeated entries by a scan of those before. */
const MAX_PRIMITIVE_ARRAY = 16;

/**
 * A short array of strings, finite numbers, booleans and nulls (most call
 * arguments) written as devalue writes it, without its walk: the root a list
 * of indexes, equal entries sharing one. Undefined for anything else
 * (holes, special numbers, strings JSON writes otherwise: devalue does those).
 */
function primitiveArrayText(value: unknown[]): string | undefined {
  const n = value.length;
  if (n > MAX_PRIMITIVE_ARRAY || Object.getPrototypeOf(value) !== Array.prototype) return undefined;
  // Each element is read once, as devalue reads it: a getter is never asked twice.
  const items = new Array<unknown>(n);
  const refs = new Array<number>(n);
  let entries = '';
  let count = 0;
  for (let i = 0; i < n; i++) {
    if (!Object.hasOwn(value, i)) return undefined;
    const item = (items[i] = value[i]);
    let text: string;
    if (typeof item === 'string') {
      if (NOT_AS_JSON.test(item)) return undefined;
      text = JSON.stringify(item);
    } else if (typeof item === 'number') {
      if (!Number.isFinite(item) || Object.is(item, -0)) return undefined;
      text = String(item);
    } else if (item === null || typeof item === 'boolean') {
      text = String(item);
    } else {
      return undefined;
    }
    let ref = 0;
    for (let k = 0; k < i; k++) {
      if (items[k] === item) {
        ref = refs[k]!;
        break;
      }
    }
    if (ref === 0) {
      ref = ++count;
      entries += `,${text}`;
    }
    refs[i] = ref;
  }
  return `[[${refs.join(',')}]${entries}]`;
}

/**
 * Decodes a string from `encodeValue`. A payload that does not decode is a
 * `ProtocolError` `bad_payload`; one past `bounds` (its size expanded through
 * shared references, or its depth) is a `LimitExceededError`, thrown before
 * any value is built. `what` names the value in that error.
 */
export function decodeValue(text: string, bounds: ValueBounds = DEFAULT_VALUE_BOUNDS, what = 'a decoded value'): unknown {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ProtocolError(`Payload does not decode: ${(error as Error).message}`, 'bad_payload');
  }
  checkValueBounds(parsed, REVIVED_TAGS, bounds, what);
  // A lone primitive (a string result, the commonest) is its own value: devalue would only unwrap it.
  if (Array.isArray(parsed) && parsed.length === 1 && (parsed[0] === null || typeof parsed[0] !== 'object')) return parsed[0];
  try {
    return unflatten(parsed as number | unknown[], revivers);
  } catch (error) {
    throw new ProtocolError(`Payload does not decode: ${describeUntrusted((error as Error)?.message)}`, 'bad_payload');
  }
}

/** Encodes an error for the wire; one that cannot be encoded (odd custom properties) becomes a plain MeshError with its message. */
export function encodeError(error: unknown): string {
  const wire = error instanceof Error ? error : new MeshError(`Non-error value thrown: ${describeUntrusted(error)}`);
  try {
    return encodeValue(wire);
  } catch {
    return encodeValue(new MeshError(`${wire.name}: ${wire.message}`));
  }
}

export const CODEC_NAME = 'devalue';
