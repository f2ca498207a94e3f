/**
 * Bounds on a decoded value, measured on devalue's flattened form (the parsed
 * JSON array) before it is unflattened. Shared references let ~250 characters
 * describe 2^28 values for any code that walks the result naively, so the
 * measure is the value's *expanded* size: what a walk that follows every
 * reference visits, where a reference back to a value on the current path (a
 * cycle) counts 1. It is computed in time linear in the text, never by
 * expanding, and depth as devalue's decoder would recurse.
 */
import { LimitExceededError, ProtocolError } from './errors.js';

export interface ValueBounds {
  /**
   * Most units a value may expand to: each value counts 1, plus the length
   * of each string, object key, BigInt, RegExp and URL, the byte length of
   * each ArrayBuffer, and the declared length of each sparse array.
   */
  maxExpandedSize: number;
  /** Deepest nesting (devalue's own decoder overflows its stack at about 2,400 in Node). */
  maxDepth: number;
}

/**
 * An unshared value never expands past its own text, so anything within a
 * 1 MiB frame passes with 4× to spare for shared references. A naive walk
 * can still print more than a unit per unit (JSON.stringify: 5 characters a
 * sparse slot, up to 13 a typed-array byte): methods check before walking.
 */
export const DEFAULT_VALUE_BOUNDS: Readonly<ValueBounds> = Object.freeze({ maxExpandedSize: 4 * 1024 * 1024, maxDepth: 1_000 });

/**
 * What one revived value (an Error: a new object with a captured stack trace,
 * several microseconds) counts towards maxExpandedSize: about the time a walk
 * spends on a thousand units, so a frame of thousands of tiny errors sharing
 * one part is refused instead of costing the node seconds.
 */
export const REVIVED_WEIGHT = 1024;

/** Longest BigInt text accepted: parsing and printing one grows faster than its length (a million digits take ~100 ms). */
export const MAX_BIGINT_CHARS = 16_384;

/** The bounds with `overrides` applied; a bound that is not a positive number is a RangeError naming it. */
export function resolveValueBounds(overrides: Partial<ValueBounds> | undefined): ValueBounds {
  const bounds = { ...DEFAULT_VALUE_BOUNDS, ...overrides };
  for (const key of ['maxExpandedSize', 'maxDepth'] as const) {
    const value = bounds[key];
    if (typeof value !== 'number' || !(value > 0)) throw new RangeError(`valueBounds.${key} must be a positive number, got ${typeof value === 'number' ? value : typeof value}.`);
  }
  return bounds;
}

export interface ValueMeasure {
  /** expanded size; once past a bound, a lower bound of it (the walk stops early) */
  expandedSize: number;
  depth: number;
  /** the bound passed, if one was */
  exceeded?: 'maxExpandedSize' | 'maxDepth';
}

// devalue 5.x's negative indexes (src/constants.js)
const UNDEFINED = -1, HOLE = -2, NAN = -3, POSITIVE_INFINITY = -4, NEGATIVE_INFINITY = -5, NEGATIVE_ZERO = -6, SPARSE = -7;
const MAX_ARRAY_LEN = 2 ** 32 - 1;
const LEAVES = new Set([UNDEFINED, NAN, POSITIVE_INFINITY, NEGATIVE_INFINITY, NEGATIVE_ZERO]);
const STRING_TAGS = new Set(['Date', 'BigInt', 'URL', 'URLSearchParams', 'Temporal.Duration', 'Temporal.Instant', 'Temporal.PlainDate',
  'Temporal.PlainTime', 'Temporal.PlainDateTime', 'Temporal.PlainMonthDay', 'Temporal.PlainYearMonth', 'Temporal.ZonedDateTime']);
const VIEW_TAGS = new Set(['Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Float16Array', 'Int32Array',
  'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array', 'DataView']);

function invalid(why: string): never {
  throw new ProtocolError(`Payload does not decode: ${why}.`, 'bad_payload');
}

/** The reference graph of a flattened value: each entry's own weight and its references to other entries. */
interface Graph {
  weight: Float64Array;
  /** 2 when an entry has leaf children (undefined, NaN, ...), else 1 */
  leafDepth: Uint8Array;
  edgeStart: Int32Array;
  edges: Int32Array;
}

/** Reads every entry in the forms devalue's `unflatten` accepts (stricter where our encoder never writes a form). */
function readGraph(values: unknown[], customTags: ReadonlySet<string>): Graph {
  const n = values.length;
  const weight = new Float64Array(n);
  const leafDepth = new Uint8Array(n).fill(1);
  const edgeStart = new Int32Array(n + 1);
  let edges: Int32Array = new Int32Array(Math.max(16, n));
  let edgeCount = 0;
  let i = 0;
  let own = 0; // entry i's weight
  const ref = (x: unknown, holeAllowed = false): void => {
    if (typeof x !== 'number' || !Number.isInteger(x)) invalid(`entry ${i} refers to a non-index`);
    if (x >= 0) {
      if (x >= n) invalid(`entry ${i} refers past the end`);
      if (edgeCount === edges.length) edges = growInt32(edges);
      edges[edgeCount++] = x;
    } else if (LEAVES.has(x) || (holeAllowed && x === HOLE)) {
      own += 1;
      if (x !== HOLE) leafDepth[i] = 2;
    } else invalid(`entry ${i} has an unknown special index`);
  };
  const text = (x: unknown, what: string): number => (typeof x === 'string' ? x.length : invalid(`${what} in entry ${i} is not a string`));
  for (; i < n; i++) {
    edgeStart[i] = edgeCount;
    const value = values[i];
    own = 1;
    if (value === null || typeof value !== 'object') {
      if (typeof value === 'string') own += value.length;
    } else if (!Array.isArray(value)) {
      for (const key of Object.keys(value)) {
        if (key === '__proto__') invalid('an object has a __proto__ key');
        own += key.length;
        ref((value as Record<string, unknown>)[key]);
      }
    } else if (typeof value[0] === 'string') {
      const tag = value[0];
      if (customTags.has(tag)) {
        own += REVIVED_WEIGHT;
        ref(value[1]);
      } else if (STRING_TAGS.has(tag)) {
        own += text(value[1], tag);
        if (tag === 'BigInt' && (value[1] as string).length > MAX_BIGINT_CHARS) {
          throw new LimitExceededError('maxBigIntLength', MAX_BIGINT_CHARS, 'a BigInt that long takes superlinear time to parse and print; send such numbers as strings.');
        }
      }
      else if (tag === 'Set') for (let k = 1; k < value.length; k++) ref(value[k]);
      else if (tag === 'Map' || tag === 'null') {
        if (value.length % 2 !== 1) invalid(`a ${tag} entry has an odd number of items`);
        for (let k = 1; k < value.length; k += 2) {
          if (tag === 'null') {
            own += text(value[k], 'a key');
            if (value[k] === '__proto__') invalid('an object has a __proto__ key');
          } else ref(value[k]);
          ref(value[k + 1]);
        }
      } else if (tag === 'RegExp') {
        own += text(value[1], 'a RegExp source') + (value[2] === undefined ? 0 : text(value[2], 'RegExp flags'));
      } else if (tag === 'Object') {
        const boxed = value[1];
        const inner = typeof boxed === 'number' ? values[boxed] : undefined;
        if (!Number.isInteger(boxed) || (boxed as number) < 0 || inner === undefined || inner === null
          || (typeof inner === 'object' && !(Array.isArray(inner) && inner[0] === 'BigInt'))) invalid(`the boxed value in entry ${i} is not a primitive`);
        ref(boxed);
      } else if (VIEW_TAGS.has(tag)) {
        const buffer = typeof value[1] === 'number' ? values[value[1]] : undefined;
        if (!Array.isArray(buffer) || buffer[0] !== 'ArrayBuffer') invalid(`the ${tag} in entry ${i} has no ArrayBuffer`);
        if ((value[2] !== undefined && typeof value[2] !== 'number') || (value[3] !== undefined && typeof value[3] !== 'number')) invalid(`the ${tag} in entry ${i} has a non-numeric offset or length`);
        ref(value[1]);
      } else if (tag === 'ArrayBuffer') own += Math.ceil((text(value[1], 'ArrayBuffer data') * 3) / 4);
      else invalid(`unknown type ${JSON.stringify(tag.slice(0, 40))}`);
    } else if (value[0] === SPARSE) {
      const length = value[1];
      if (!Number.isInteger(length) || (length as number) < 0 || (length as number) > MAX_ARRAY_LEN || value.length % 2 !== 0) invalid(`the sparse array in entry ${i} is malformed`);
      own += length as number;
      for (let k = 2; k < value.length; k += 2) {
        const index = value[k];
        if (!Number.isInteger(index) || (index as number) < 0 || (index as number) >= (length as number)) invalid(`the sparse array in entry ${i} has a bad index`);
        ref(value[k + 1]);
      }
    } else for (const element of value) ref(element, true);
    weight[i] = own;
  }
  edgeStart[n] = edgeCount;
  return { weight, leafDepth, edgeStart, edges };
}

function growInt32(array: Int32Array): Int32Array {
  const grown = new Int32Array(array.length * 2);
  grown.set(array);
  return grown;
}

/**
 * How deep the value nests as decoded: the longest path of a depth-first walk that enters each value once (devalue's own recursion).
 * Also whether any value is reached twice (`shared`; a cycle counts), and the weight of every value reached: without sharing,
 * that weight is the expanded size, and the full walk is not needed.
 */
function decodedDepth(graph: Graph, n: number, max: number): { depth: number; shared: boolean; reachedWeight: number } {
  const { edgeStart, edges, leafDepth, weight } = graph;
  const seen = new Uint8Array(n);
  const path: number[] = [0];
  const cursor: number[] = [edgeStart[0]!];
  seen[0] = 1;
  let deepest = leafDepth[0]!;
  let shared = false;
  let reachedWeight = weight[0]!;
  while (path.length > 0) {
    const v = path[path.length - 1]!;
    const position = cursor[cursor.length - 1]!;
    if (position === edgeStart[v + 1]) {
      path.pop();
      cursor.pop();
      continue;
    }
    cursor[cursor.length - 1] = position + 1;
    const w = edges[position]!;
    if (seen[w]) {
      shared = true;
      continue;
    }
    seen[w] = 1;
    reachedWeight += weight[w]!;
    path.push(w);
    cursor.push(edgeStart[w]!);
    deepest = Math.max(deepest, path.length - 1 + leafDepth[w]!);
    if (deepest > max) break;
  }
  return { depth: deepest, shared, reachedWeight };
}

/**
 * Measures a parsed devalue payload (`JSON.parse` of its text); stops as soon
 * as a bound is passed. A payload devalue would not accept is a
 * `ProtocolError` `bad_payload`. `customTags` are the types revived by the
 * codec's own revivers (their entry refers to one index).
 *
 * The size is a depth-first walk that follows every reference, counting one
 * back onto the current path as 1, and reusing the size found for an entry
 * when the walk meets it again — exact without cycles; with them, valid only
 * when every cycle that entry's walk closed went to a value still on the
 * current path, else the entry is walked again from here (never less than a
 * real walk, at most a few times more). Walking again is capped at two
 * steps per reference: a value whose cycles are reached from so many places
 * is refused as too large without its exact size. So the work is linear.
 */
export function measureFlattened(parsed: unknown, customTags: ReadonlySet<string>, bounds: ValueBounds = { maxExpandedSize: Infinity, maxDepth: Infinity }): ValueMeasure {
  if (typeof parsed === 'number') return LEAVES.has(parsed) ? { expandedSize: 1, depth: 1 } : invalid('a bare number that is not a special value');
  if (!Array.isArray(parsed) || parsed.length === 0) invalid('not a non-empty array');
  const flat = flatSize(parsed);
  if (flat !== undefined) {
    const root = parsed[0];
    const depth = Array.isArray(root) && root.length > 0 ? 2 : 1;
    if (depth > bounds.maxDepth) return { expandedSize: 0, depth, exceeded: 'maxDepth' };
    return flat > bounds.maxExpandedSize ? { expandedSize: flat, depth, exceeded: 'maxExpandedSize' } : { expandedSize: flat, depth };
  }
  const graph = readGraph(parsed, customTags);
  const { weight, edgeStart, edges } = graph;
  const n = parsed.length;
  const { depth, shared, reachedWeight } = decodedDepth(graph, n, bounds.maxDepth);
  if (depth > bounds.maxDepth) return { expandedSize: 0, depth, exceeded: 'maxDepth' };
  // No value reached twice (most payloads): the walk below would enter each once, so its size is their weight.
  if (!shared) return reachedWeight > bounds.maxExpandedSize ? { expandedSize: reachedWeight, depth, exceeded: 'maxExpandedSize' } : { expandedSize: reachedWeight, depth };
  const visit = new Float64Array(n).fill(-1); // order of the entry's latest visit
  const onPath = new Uint8Array(n);
  const size = new Float64Array(n);
  // The deepest value off the entry's own walk that the walk cycled back to (by entry and visit order), or -1.
  const cycledTo = new Int32Array(n);
  const cycledToVisit = new Float64Array(n);
  const path: number[] = [];
  const cursor: number[] = [];
  let visits = 0;
  let total = 0; // what the root's size is growing to: past the bound, the value is
  let steps = 2 * (n + edges.length) + 65_536;
  const tooLarge = (): ValueMeasure => ({ expandedSize: total, depth, exceeded: 'maxExpandedSize' });

  const enter = (v: number): void => {
    visit[v] = visits++;
    onPath[v] = 1;
    size[v] = weight[v]!;
    cycledTo[v] = -1;
    path.push(v);
    cursor.push(edgeStart[v]!);
    total += weight[v]!;
  };
  /** v's walk cycled back to `to` (seen at visit `toVisit`); a cycle to v itself counts as one to v's parent (the deepest it could reach). */
  const cycled = (v: number, to: number, toVisit: number): void => {
    if (to === -1) return;
    if (to === v && toVisit === visit[v]) {
      const parent = path[path.length - 2];
      if (parent === undefined) return;
      to = parent;
      toVisit = visit[parent]!;
    }
    if (cycledTo[v] === -1 || toVisit > cycledToVisit[v]!) {
      cycledTo[v] = to;
      cycledToVisit[v] = toVisit;
    }
  };
  const reusable = (w: number): boolean =>
    visit[w]! >= 0 && (cycledTo[w] === -1 || (onPath[cycledTo[w]!] === 1 && visit[cycledTo[w]!] === cycledToVisit[w]));

  enter(0);
  while (path.length > 0) {
    if (total > bounds.maxExpandedSize || --steps < 0) return tooLarge();
    const v = path[path.length - 1]!;
    const position = cursor[cursor.length - 1]!;
    if (position < edgeStart[v + 1]!) {
      cursor[cursor.length - 1] = position + 1;
      const w = edges[position]!;
      if (onPath[w]) { // a cycle: counts 1
        total += 1;
        size[v] = size[v]! + 1;
        if (w !== v) cycled(v, w, visit[w]!);
      } else if (reusable(w)) {
        total += size[w]!;
        size[v] = size[v]! + size[w]!;
        cycled(v, cycledTo[w]!, cycledToVisit[w]!);
      } else enter(w);
      continue;
    }
    path.pop();
    cursor.pop();
    onPath[v] = 0;
    const parent = path[path.length - 1];
    if (parent === undefined) break;
    size[parent] = size[parent]! + size[v]!;
    cycled(parent, cycledTo[v]!, cycledToVisit[v]!);
  }
  return total > bounds.maxExpandedSize ? tooLarge() : { expandedSize: size[0]!, depth };
}

/**
 * The expanded size of the commonest payloads: a lone primitive (most results),
 * or an array of primitives (most arguments: the root a plain array of references,
 * every other entry a string, number, boolean or null). Undefined for anything
 * else, which the graph walk measures. A primitive referenced twice counts
 * twice, as the walk counts it; one entry never referenced counts nothing.
 */
function flatSize(values: unknown[]): number | undefined {
  const root = values[0];
  if (!Array.isArray(root)) {
    const lone = values.length === 1 && (root === null || typeof root !== 'object');
    return lone ? (typeof root === 'string' ? 1 + root.length : 1) : undefined;
  }
  const n = values.length;
  for (let i = 1; i < n; i++) {
    const value = values[i];
    if (value !== null && typeof value === 'object') return undefined;
  }
  let size = 1;
  for (let k = 0; k < root.length; k++) {
    const ref = root[k];
    if (typeof ref !== 'number' || !Number.isInteger(ref) || ref < 1 || ref >= n) return undefined; // special indexes, holes and faults: the walk
    const value = values[ref];
    size += typeof value === 'string' ? 1 + value.length : 1;
  }
  return size;
}

/** Throws `LimitExceededError` naming the bound a parsed payload passes (`what` names the value: "call arguments", "an answer", …). */
export function checkValueBounds(parsed: unknown, customTags: ReadonlySet<string>, bounds: ValueBounds, what: string): void {
  const measure = measureFlattened(parsed, customTags, bounds);
  if (measure.exceeded === 'maxExpandedSize') {
    throw new LimitExceededError('maxExpandedSize', bounds.maxExpandedSize, `the value (${what}) expands to more than that many values and characters once its shared references and cycles are followed, and was refused before any code saw it. Send less, or fewer references to the same large value; a node class can raise its static valueBounds.`);
  }
  if (measure.exceeded === 'maxDepth') {
    throw new LimitExceededError('maxDepth', bounds.maxDepth, `the value (${what}) nests deeper than that and was refused before any code saw it. Send a flatter value (a list instead of a deep chain); a node class can raise its static valueBounds.`);
  }
}
