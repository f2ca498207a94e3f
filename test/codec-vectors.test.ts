/**
 * The codec's conformance vectors (src/protocol/vectors/values-v1.json),
 * checked both ways: each described value encodes to exactly its text, each
 * text decodes to the described value, each refused text is refused with its
 * error. A devalue upgrade that changes one byte of any form fails here.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { decodeValue, encodeValue } from '../src/protocol/codec.js';
import * as errors from '../src/protocol/errors.js';
import { DEFAULT_VALUE_BOUNDS, measureFlattened } from '../src/protocol/value-bounds.js';
import { assertSameValue, describedValue, NOTATION_FORMS } from './support/value-notation.js';

const root = resolve(import.meta.dirname, '..');
const VECTORS_PATH = 'src/protocol/vectors/values-v1.json';

interface ValueVector { name: string; description: string; value: never; encoded: string; expandedSize: number; depth: number }
interface RefusedVector { name: string; description: string; encoded: string; bounds?: { maxExpandedSize?: number; maxDepth?: number }; error: { name: string; code: string; limit?: string } }
const file = JSON.parse(readFileSync(resolve(root, VECTORS_PATH), 'utf8')) as { format: string; version: number; values: ValueVector[]; refused: RefusedVector[] };

/** The same errors made by their constructors, as the library throws them: their encodings are the vectors'. */
const thrown: Record<string, () => Error> = {
  'meshgate-MeshError': () => new errors.MeshError('Something failed.'),
  'meshgate-ClientDisconnectedError': () => new errors.ClientDisconnectedError('alice.tab1'),
  'meshgate-ClientTimeoutError': () => new errors.ClientTimeoutError('alice.tab1', 5000),
  'meshgate-CallTimeoutError': () => new errors.CallTimeoutError('save', 30000),
  'meshgate-OutcomeUnknownError': () => new errors.OutcomeUnknownError('save'),
  'meshgate-OutcomeUnknownError-cause': () => new errors.OutcomeUnknownError('save', new Error('Network connection lost.')),
  'meshgate-MethodNotExposedError': () => new errors.MethodNotExposedError('secret'),
  'meshgate-UnknownBindingError': () => new errors.UnknownBindingError('NOPE'),
  'meshgate-ForbiddenError': () => new errors.ForbiddenError('Only the owner may edit this document.'),
  'meshgate-ProtocolError': () => new errors.ProtocolError('Payload does not decode: entry 0 refers past the end.', 'bad_payload'),
  'meshgate-LimitExceededError': () => new errors.LimitExceededError('maxInFlightCalls', 64, 'wait for calls to settle.'),
  'meshgate-TokenExpiredError': () => new errors.TokenExpiredError(),
  'meshgate-ClientClosedError': () => new errors.ClientClosedError(),
  'meshgate-SupersededError': () => new errors.SupersededError(),
  'meshgate-LoginRequiredError': () => new errors.LoginRequiredError('token signature is invalid'),
  'meshgate-TooManyConnectionsError': () => new errors.TooManyConnectionsError('too many connections for this identity'),
  'meshgate-ValidationError': () => new errors.ValidationError('send', 'arguments', [{ path: [0], message: 'Expected string' }]),
  'meshgate-UnsupportedProtocolError': () => new errors.UnsupportedProtocolError('it offered meshgate.v0'),
  'meshgate-CancelledError': () => new errors.CancelledError('save'),
  'meshgate-StreamInterruptedError': () => new errors.StreamInterruptedError('save'),
};

it('the file is version 1 and every name is unique', () => {
  expect([file.format, file.version]).toEqual(['meshgate-values', 1]);
  const names = [...file.values, ...file.refused].map((v) => v.name);
  expect(new Set(names).size).toBe(names.length);
});

describe.each(file.values.map((v) => [v.name, v] as const))('value %s', (_, vector) => {
  it('encodes to exactly its text', () => {
    expect(encodeValue(describedValue(vector.value))).toBe(vector.encoded);
  });
  it('decodes to the described value', () => {
    assertSameValue(decodeValue(vector.encoded), describedValue(vector.value));
  });
  it('measures its expandedSize and depth', () => {
    const measure = measureFlattened(JSON.parse(vector.encoded), new Set(['Error']), DEFAULT_VALUE_BOUNDS);
    expect(measure).toEqual({ expandedSize: vector.expandedSize, depth: vector.depth });
  });
});

describe.each(file.refused.map((v) => [v.name, v] as const))('refused %s', (_, vector) => {
  it('is refused with its error', () => {
    const bounds = { ...DEFAULT_VALUE_BOUNDS, ...vector.bounds };
    let caught: unknown;
    try {
      decodeValue(vector.encoded, bounds);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(errors.MeshError);
    const error = caught as errors.LimitExceededError;
    expect({ name: error.name, code: error.code, ...(vector.error.limit ? { limit: error.limit } : {}) }).toEqual(vector.error);
  });
});

it('each meshgate error class has a vector, and the error as constructed encodes to it', () => {
  const classes = Object.values(errors).filter((x): x is typeof errors.MeshError => typeof x === 'function' && (x === errors.MeshError || x.prototype instanceof errors.MeshError));
  expect(classes.length).toBeGreaterThanOrEqual(15);
  for (const ctor of classes) expect(Object.keys(thrown), ctor.name).toContain(`meshgate-${ctor.name}`);
  for (const [name, make] of Object.entries(thrown)) {
    const vector = file.values.find((v) => v.name === name);
    expect(vector, name).toBeDefined();
    expect(encodeValue(make()), name).toBe(vector!.encoded);
    expect(decodeValue(vector!.encoded), name).toBeInstanceOf(make().constructor);
  }
});

it('the vectors use every notation form and every marker and type name the decoder accepts', () => {
  const text = JSON.stringify(file.values.map((v) => v.value));
  for (const form of NOTATION_FORMS) expect(text, form).toContain(`"${form}"`);
  const encoded = file.values.map((v) => v.encoded).join('\n');
  for (const marker of [-1, -2, -3, -4, -5, -6, -7]) expect(encoded, `marker ${marker}`).toMatch(new RegExp(`(^|[\\[,])${marker}([\\],]|$)`, 'm'));
  // Temporal.* and Float16Array are accepted by the decoder where the runtime has them; Node 20 and workerd do not.
  for (const tag of ['Error', 'Date', 'RegExp', 'Map', 'Set', 'BigInt', 'Object', 'null', 'URL', 'URLSearchParams', 'ArrayBuffer', 'Int8Array', 'Uint8Array',
    'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'Float32Array', 'Float64Array', 'BigInt64Array', 'BigUint64Array', 'DataView']) {
    expect(encoded, tag).toContain(`["${tag}"`);
  }
});

it('the checker tells apart what the codec must keep apart', () => {
  const differs = (a: unknown, e: unknown): void => expect(() => assertSameValue(a, e)).toThrow();
  assertSameValue(NaN, NaN);
  differs(0, -0);
  differs([undefined], describedValue({ $sparse: { length: 1, items: [] } }));
  differs({}, Object.create(null));
  differs({ a: 1, b: 2 }, { b: 2, a: 1 });
  const shared = { n: 1 };
  differs({ a: { n: 1 }, b: { n: 1 } }, { a: shared, b: shared });
  differs({ a: shared, b: shared }, { a: { n: 1 }, b: { n: 1 } });
  differs(new Error('x'), new TypeError('x'));
  differs(new Uint8Array([1]), new Int8Array([1]));
  differs(new Map([[1, 2]]), new Map([[2, 1]]));
});

it('the vectors ship in the package', () => {
  const [pack] = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as Array<{ files: Array<{ path: string }> }>;
  expect(pack!.files.map((f) => f.path)).toContain(VECTORS_PATH);
}, 60_000);
