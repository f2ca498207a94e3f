/**
 * Why devalue: the codec candidates measured on the same payloads in one run.
 * Every candidate must round-trip the rich payload (Date, Map, Set, BigInt,
 * undefined, NaN, typed array, RegExp, a cycle, an Error with cause); plain
 * JSON is the baseline for speed and size on plain data only.
 * Run: npm run bench:codec
 */
import { parse, stringify } from 'devalue';
import superjson from 'superjson';
import { serialize as ungapSerialize, deserialize as ungapDeserialize } from '@ungap/structured-clone';
import { mkdirSync, writeFileSync } from 'node:fs';

const plain = { id: 'k3f9-12', room: 'lobby', text: 'hello world, this is a chat message', at: 1795637475069, tags: ['a', 'b'], n: 42 };
function rich() {
  const shared = { x: 1 };
  const value = {
    when: new Date(0), map: new Map([['a', 1]]), set: new Set([1, 2]), big: 12345678901234567890n, missing: undefined,
    nan: NaN, inf: -Infinity, bytes: new Uint8Array([1, 2, 3]), re: /ab+c/gi, shared, again: shared,
    error: Object.assign(new RangeError('out of range', { cause: new Error('inner') }), { detail: 3 }),
  };
  value.self = value;
  return value;
}

const errorReducers = { Error: (v) => v instanceof Error && [v.name, v.message, v.cause, { ...v }] };
const errorRevivers = { Error: ([name, message, cause, props]) => Object.assign(new Error(message, { cause }), props, { name }) };

const codecs = {
  JSON: { enc: (v) => JSON.stringify(v), dec: (s) => JSON.parse(s), richOk: false },
  devalue: { enc: (v) => stringify(v, errorReducers), dec: (s) => parse(s, errorRevivers) },
  superjson: { enc: (v) => superjson.stringify(v), dec: (s) => superjson.parse(s) },
  '@ungap/structured-clone': { enc: (v) => JSON.stringify(ungapSerialize(v, { lossy: true })), dec: (s) => ungapDeserialize(JSON.parse(s)) },
};

/** The hard parts of the rich payload that did not survive (empty = all did). */
function richMissing(back) {
  const checks = {
    Date: () => back.when instanceof Date, Map: () => back.map.get('a') === 1, Set: () => back.set.has(2),
    BigInt: () => back.big === 12345678901234567890n, undefined: () => 'missing' in back, NaN: () => Number.isNaN(back.nan),
    Infinity: () => back.inf === -Infinity, Uint8Array: () => back.bytes instanceof Uint8Array && back.bytes[2] === 3,
    RegExp: () => back.re instanceof RegExp && back.re.flags === 'gi', sharedRef: () => back.shared === back.again,
    cycle: () => back.self === back, errorName: () => back.error instanceof Error && back.error.name === 'RangeError',
    errorCause: () => back.error.cause?.message === 'inner', errorProps: () => back.error.detail === 3,
  };
  return Object.entries(checks).filter(([, check]) => { try { return !check(); } catch { return true; } }).map(([k]) => k);
}

function time(fn, ms = 400) {
  for (let i = 0; i < 2000; i++) fn(); // warm up
  let n = 0;
  const end = performance.now() + ms;
  while (performance.now() < end) for (let i = 0; i < 100; i++, n++) fn();
  return (ms * 1000) / n; // µs per op
}

const rows = [];
for (const [name, c] of Object.entries(codecs)) {
  const richValue = rich();
  let missing = ['everything'];
  let richText = '';
  try {
    richText = c.enc(richValue);
    missing = richMissing(c.dec(richText));
  } catch (error) {
    missing = [`throws: ${error.message.slice(0, 40)}`];
  }
  const richOk = missing.length === 0;
  const plainText = c.enc(plain);
  rows.push({
    codec: name,
    richMissing: missing.join(' ') || '—',
    plainBytes: plainText.length,
    richBytes: richOk ? richText.length : null,
    plainEncodeUs: +time(() => c.enc(plain)).toFixed(2),
    plainDecodeUs: +time(() => c.dec(plainText)).toFixed(2),
    richEncodeUs: richOk ? +time(() => c.enc(richValue)).toFixed(2) : null,
    richDecodeUs: richOk ? +time(() => c.dec(richText)).toFixed(2) : null,
  });
}
const json = rows.find((r) => r.codec === 'JSON');
for (const r of rows) r.plainVsJson = +((r.plainEncodeUs + r.plainDecodeUs) / (json.plainEncodeUs + json.plainDecodeUs)).toFixed(2);
console.table(rows);
mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
writeFileSync(new URL('./results/codec.json', import.meta.url), JSON.stringify({ node: process.version, rows }, null, 2));
