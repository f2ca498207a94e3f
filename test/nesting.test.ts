/**
 * Nesting read from JSON text before it is parsed (src/protocol/nesting.ts),
 * and how the gateway's message reader uses it: a frame nested too deep is
 * never handed to JSON.parse, yet its call is still answered by id.
 */
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readClientMessage } from '../src/protocol/client-messages.js';
import { checkClientFrame, MAX_BATCH_FRAMES, MAX_MESSAGE_CONTAINERS, parseMessage, type FrameError } from '../src/protocol/frames.js';
import { arrayElements, nestingExceeds, topLevelStrings } from '../src/protocol/nesting.js';
import { MAX_STATE_DEPTH } from '../src/protocol/wire.js';

/** Arrays and objects in a parsed JSON value, counted as the text scan counts them. */
function containersOf(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  return 1 + Object.values(value).reduce((n: number, v) => n + containersOf(v), 0);
}

/** Depth of a parsed JSON value, the reference the text scan must agree with. */
function depthOf(value: unknown): number {
  if (typeof value !== 'object' || value === null) return 0;
  return 1 + Math.max(0, ...Object.values(value).map(depthOf));
}

const deep = (levels: number, leaf = '1'): string => '['.repeat(levels) + leaf + ']'.repeat(levels);
const call = (id: string, extra = ''): string => `{"type":"call","id":${JSON.stringify(id)},"to":{"binding":"COUNTER","instance":"x"},"method":"increment","args":"[[]]"${extra}}`;

afterEach(() => vi.restoreAllMocks());

describe('nestingExceeds', () => {
  it('agrees with the depth of the parsed value, for any JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 12 }), fc.integer({ min: 0, max: 14 }), (value, max) => {
        const text = JSON.stringify(value);
        expect(nestingExceeds(text, max)).toBe(depthOf(value) > max);
      }),
      { numRuns: 2_000 },
    );
  });

  it('counts arrays and objects as the parsed value has them, for any JSON', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.integer({ min: 0, max: 40 }), (value, max) => {
        expect(nestingExceeds(JSON.stringify(value), Infinity, max)).toBe(containersOf(value) > max);
      }),
      { numRuns: 2_000 },
    );
  });

  it('skips brackets inside strings, escaped quotes and runs of backslashes', () => {
    expect(nestingExceeds(JSON.stringify({ a: '[[[[{{{{' }), 1)).toBe(false);
    expect(nestingExceeds(JSON.stringify({ a: 'say \\"[[[[" \\\\' }), 1)).toBe(false);
    expect(nestingExceeds(JSON.stringify(['\\', [['x']]]), 2)).toBe(true);
    expect(nestingExceeds(JSON.stringify(['\\\\"', '[', [['x']]]), 3)).toBe(false);
  });

  it('reads a span of the text only', () => {
    const text = `[${deep(5)},${deep(2)}]`;
    const [first, second] = arrayElements(text, 10)!;
    expect([first![2], second![2]]).toEqual([5, 2]);
    expect(nestingExceeds(text, 4, first![0], first![1])).toBe(true);
    expect(nestingExceeds(text, 4, second![0], second![1])).toBe(false);
  });

  it('an unterminated string ends the scan, found not too deep (JSON.parse refuses the text)', () => {
    expect(nestingExceeds('[["' + '['.repeat(100), 3)).toBe(false);
  });
});

describe('arrayElements', () => {
  it('splits a top-level array at its own commas only', () => {
    const text = ' [ {"a":[1,2]} , "x,]" ,[3] ] ';
    expect(arrayElements(text, 10)!.map(([s, e]) => JSON.parse(text.slice(s, e)))).toEqual([{ a: [1, 2] }, 'x,]', [3]]);
  });

  it('gives each element’s depth, as the parsed element has it, for any JSON array', () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue({ maxDepth: 8 }), { minLength: 1, maxLength: 8 }), (values) => {
        const text = JSON.stringify(values, null, values.length % 2 === 0 ? 1 : undefined);
        const elements = arrayElements(text, 100)!;
        expect(elements.map(([start, end]) => JSON.parse(text.slice(start, end)))).toEqual(JSON.parse(text)); // -0 is written 0
        expect(elements.map(([, , depth]) => depth)).toEqual(values.map(depthOf));
        expect(elements.map(([, , , containers]) => containers)).toEqual(values.map(containersOf));
      }),
      { numRuns: 1_000 },
    );
  });

  it('an empty array has no elements; text after the array, or no closing bracket, is no array', () => {
    expect(arrayElements('[ ]', 10)).toEqual([]);
    expect(arrayElements('[1] x', 10)).toBeUndefined();
    expect(arrayElements('[1,[2]', 10)).toBeUndefined();
  });

  it('stops reading past `most` + 1 elements', () => {
    const spans = arrayElements(`[${'1,'.repeat(1_000)}1]`, 3)!;
    expect(spans).toHaveLength(4);
  });
});

describe('topLevelStrings', () => {
  it('reads only the object’s own keys, the last one winning as in JSON.parse', () => {
    const text = '{"state":{"id":"inner","type":"x"},"id":"first","type":"call","id":"k\\u0031"}';
    expect(topLevelStrings(text, 0, text.length, ['id', 'type'], 100)).toEqual({ id: 'k1', type: 'call' });
  });

  it('leaves out values that are not strings, and strings longer than asked', () => {
    const text = `{"id":5,"type":${JSON.stringify('t'.repeat(50))},"x":"id"}`;
    expect(topLevelStrings(text, 0, text.length, ['id', 'type'], 10)).toEqual({});
  });

  it('a string value after a nested value is not taken for the key’s value', () => {
    const text = '{"id":{"a":1},"b":"c","type":"call"}';
    expect(topLevelStrings(text, 0, text.length, ['id', 'type'], 10)).toEqual({ type: 'call' });
  });
});

describe('readClientMessage (the gateway reading a client)', () => {
  const refusal = (value: unknown): FrameError => {
    try {
      checkClientFrame(value);
    } catch (error) {
      return error as FrameError;
    }
    throw new Error('the frame was accepted');
  };

  it(`a call with state ${MAX_STATE_DEPTH} levels deep is parsed; one level more is refused with its id, never parsed`, () => {
    const ok = readClientMessage(call('c1', `,"state":${'{"a":'.repeat(MAX_STATE_DEPTH)}1${'}'.repeat(MAX_STATE_DEPTH)}`));
    expect(checkClientFrame(ok.values[0])).toMatchObject({ type: 'call', id: 'c1' });
    const parse = vi.spyOn(JSON, 'parse');
    const tooDeep = readClientMessage(call('c2', `,"state":${'{"a":'.repeat(MAX_STATE_DEPTH + 1)}1${'}'.repeat(MAX_STATE_DEPTH + 1)}`));
    const error = refusal(tooDeep.values[0]);
    expect(error).toMatchObject({ code: 'bad_frame', callId: 'c2', frameType: 'call' });
    expect(error.message).toContain('"state"');
    // only the short strings of id and type were parsed, never the frame
    expect(parse.mock.calls.every(([text]) => (text as string).length < 10)).toBe(true);
  });

  it('a MiB of brackets costs one linear scan, not a parse', () => {
    const parse = vi.spyOn(JSON, 'parse');
    for (const text of ['['.repeat(1 << 20), deep(1 << 19), '{"a":'.repeat(200_000), call('c3', `,"x":${deep(500_000)}`)]) {
      const refused = (() => {
        try {
          return refusal(readClientMessage(text).values[0]);
        } catch (error) {
          return error as FrameError;
        }
      })();
      expect(refused.code).toMatch(/^bad_(frame|json)$/);
    }
    expect(parse.mock.calls.every(([text]) => (text as string).length < 10)).toBe(true);
  });

  it('a batch with one frame too deep: the others are parsed and checked, the deep one refused by its id', () => {
    const text = `[${call('b1')},${call('b2', `,"state":{"a":${deep(100)}}`)},${call('b3')}]`;
    const { values, batch } = readClientMessage(text);
    expect(batch).toBe(true);
    expect(checkClientFrame(values[0])).toMatchObject({ id: 'b1' });
    expect(refusal(values[1])).toMatchObject({ callId: 'b2', frameType: 'call', code: 'bad_frame' });
    expect(checkClientFrame(values[2])).toMatchObject({ id: 'b3' });
  });

  it(`a frame of ${MAX_MESSAGE_CONTAINERS + 1} shallow arrays is refused by its id, never parsed; ${MAX_MESSAGE_CONTAINERS - 1} and the frame itself pass`, () => {
    const many = (n: number) => `,"x":[${Array.from({ length: n }, () => '[]').join(',')}]`;
    // the frame object, the "x" array, `to`, and n more
    expect(checkClientFrame(readClientMessage(call('ok', many(MAX_MESSAGE_CONTAINERS - 3))).values[0])).toMatchObject({ id: 'ok' });
    const parse = vi.spyOn(JSON, 'parse');
    const refused = refusal(readClientMessage(call('many', many(MAX_MESSAGE_CONTAINERS - 2))).values[0]);
    expect(refused).toMatchObject({ code: 'bad_frame', callId: 'many', frameType: 'call' });
    expect(refused.message).toContain(`${MAX_MESSAGE_CONTAINERS} arrays and objects`);
    expect(parse.mock.calls.every(([text]) => (text as string).length < 10)).toBe(true);
  });

  it('a batch of 256 calls with small states is read whole; frames that would bring a batch past the bound are refused by id, in order', () => {
    const state = ',"state":{"trace":{"id":"t"},"tags":["a","b"]}';
    const full = readClientMessage(`[${Array.from({ length: MAX_BATCH_FRAMES }, (_, i) => call(`s${i}`, state)).join(',')}]`);
    expect(full.values.map((v) => checkClientFrame(v).type)).toEqual(Array(MAX_BATCH_FRAMES).fill('call'));
    // each frame opens itself, `to`, "x" and what "x" holds: a third of the bound
    const third = `,"x":[${Array.from({ length: Math.floor(MAX_MESSAGE_CONTAINERS / 3) - 3 }, () => '{}').join(',')}]`;
    const { values } = readClientMessage(`[${['a', 'b', 'c', 'd'].map((id) => call(id, third)).join(',')}]`);
    expect(checkClientFrame(values[0])).toMatchObject({ id: 'a' });
    expect(checkClientFrame(values[1])).toMatchObject({ id: 'b' });
    expect(checkClientFrame(values[2])).toMatchObject({ id: 'c' });
    expect(refusal(values[3])).toMatchObject({ callId: 'd', code: 'bad_frame' });
  });

  it('a batch is allowed one level more than a frame, for its own array', () => {
    const state = `,"state":${'{"a":'.repeat(MAX_STATE_DEPTH)}1${'}'.repeat(MAX_STATE_DEPTH)}`;
    const { values } = readClientMessage(`[${call('d1', state)}]`);
    expect(checkClientFrame(values[0])).toMatchObject({ id: 'd1' });
  });

  it('a deep batch of too many frames, or not valid JSON, is refused whole', () => {
    expect(() => readClientMessage(`[${`${call('x')},`.repeat(MAX_BATCH_FRAMES)}${deep(100)}]`)).toThrow(/1 to 256 frames/);
    expect(() => readClientMessage(`[${call('x')},${deep(100)}`)).toThrow(/not valid JSON/);
    expect(() => readClientMessage(`[${call('x')},${deep(100)},]`)).toThrow(/not valid JSON/);
  });

  it('parseMessage (the client reading its gateway) scans nothing', () => {
    expect(parseMessage(deep(100)).values[0]).toBeInstanceOf(Array);
  });
});
