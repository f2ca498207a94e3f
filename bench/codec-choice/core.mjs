/**
 * The codec candidates and payloads, bundled unchanged into a Worker and a
 * browser page so every runtime measures the same code on the same values.
 */
import { encodeValue, decodeValue } from '../../src/protocol/codec.ts';
import { Encoder } from 'cbor-x';
import { encode as cborgEncode, decode as cborgDecode } from 'cborg/extended';

const cborx = new Encoder({ structuredClone: true, useRecords: false, tagUint8Array: true });

export const codecs = {
  'meshgate (devalue + bounds)': { enc: (v) => encodeValue(v), dec: (s) => decodeValue(s) },
  'cbor-x (structuredClone)': { enc: (v) => cborx.encode(v), dec: (b) => cborx.decode(b) },
  'cborg/extended': { enc: (v) => cborgEncode(v), dec: (b) => cborgDecode(b) },
};

function record(i, shared) {
  return { id: `k3f9-${i}`, at: new Date(1795637475069 + i), n: i, big: 12345678901234567890n + BigInt(i), tags: new Set(['a', 'b']), meta: new Map([['room', 'lobby']]), bytes: new Uint8Array([1, 2, 3, i & 255]), text: 'hello world, chat', shared };
}
/** ~100 B, ~100 KB, ~1 MB of rich data (Date, Map, Set, BigInt, typed arrays, shared references, an error). */
export function payload(size) {
  const count = { small: 1, large: 700, huge: 7000 }[size];
  const shared = { owner: 'u1' };
  const items = Array.from({ length: count }, (_, i) => record(i, shared));
  return size === 'small' ? { at: new Date(0), big: 5n, tags: new Set([1]), shared, again: shared } : { items, failure: Object.assign(new RangeError('out of range', { cause: new Error('inner') }), { detail: 3 }) };
}

/** Each value meshgate carries, with the check that it came back intact. */
export function fidelity(codec) {
  const shared = { x: 1 };
  const cyc = { a: 1 }; cyc.self = cyc;
  const nullProto = Object.assign(Object.create(null), { k: 1 });
  const sparse = [1, , 3]; // eslint-disable-line no-sparse-arrays
  const cases = {
    'error name/message': [new RangeError('boom'), (b) => b instanceof Error && b.name === 'RangeError' && b.message === 'boom'],
    'error cause': [new Error('outer', { cause: new Error('inner') }), (b) => b?.cause?.message === 'inner'],
    'error props': [Object.assign(new Error('e'), { detail: 3 }), (b) => b?.detail === 3],
    undefined: [{ u: undefined }, (b) => 'u' in b && b.u === undefined],
    '-0': [-0, (b) => Object.is(b, -0)],
    NaN: [NaN, (b) => Number.isNaN(b)],
    Infinity: [-Infinity, (b) => b === -Infinity],
    'sparse array': [sparse, (b) => b.length === 3 && !(1 in b) && b[2] === 3],
    'null-prototype object': [nullProto, (b) => Object.getPrototypeOf(b) === null && b.k === 1],
    cycle: [cyc, (b) => b.self === b],
    'shared reference': [{ a: shared, b: shared }, (b) => b.a === b.b && b.a.x === 1],
    Date: [new Date(5), (b) => b instanceof Date && b.getTime() === 5],
    Map: [new Map([[1, 'a']]), (b) => b instanceof Map && b.get(1) === 'a'],
    Set: [new Set([2]), (b) => b instanceof Set && b.has(2)],
    BigInt: [-(2n ** 70n), (b) => b === -(2n ** 70n)],
    Uint8Array: [new Uint8Array([9, 8]), (b) => b instanceof Uint8Array && b[1] === 8],
    Float64Array: [new Float64Array([1.5]), (b) => b instanceof Float64Array && b[0] === 1.5],
    RegExp: [/ab+c/gi, (b) => b instanceof RegExp && b.flags === 'gi'],
  };
  const failed = [];
  for (const [name, [value, ok]] of Object.entries(cases)) {
    try { if (!ok(codec.dec(codec.enc(value)))) failed.push(name); } catch { failed.push(`${name} (throws)`); }
  }
  return failed;
}

/** Runs one operation `n` times (n bounded by the caller); returns elapsed ms by the runtime's own clock. */
export function run(codecName, size, op, n) {
  const codec = codecs[codecName];
  const value = payload(size);
  const encoded = codec.enc(value);
  const t0 = performance.now();
  if (op === 'enc') for (let i = 0; i < n; i++) codec.enc(value);
  else for (let i = 0; i < n; i++) codec.dec(encoded);
  return performance.now() - t0;
}

export function sizes(codecName, size) {
  const e = codecs[codecName].enc(payload(size));
  return typeof e === 'string' ? new TextEncoder().encode(e) : e;
}
