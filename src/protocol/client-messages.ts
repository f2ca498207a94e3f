/**
 * A client's message as the gateway reads it: measured before it is parsed
 * (nesting.ts), so a frame that is cheap to send and costly to parse is
 * refused without being parsed, and still answered by its id. Apart from
 * frames.ts so the client's bundle, which trusts its gateway, does not carry it.
 */
import { DEFAULTS } from './limits.js';
import { arrayElements, nestingExceeds, topLevelStrings } from './nesting.js';
import { checkBatchLength, checkClientFrame, MAX_BATCH_FRAMES, MAX_FRAME_DEPTH, MAX_MESSAGE_CONTAINERS, parseJson, UnparsedFrame, type ClientFrame } from './frames.js';
import { ProtocolError } from './errors.js';

/**
 * The frames of a client's message, as parseMessage gives them, except that
 * a frame nested deeper than MAX_FRAME_DEPTH, or past MAX_MESSAGE_CONTAINERS,
 * is not parsed at all: it comes out as a value checkClientFrame refuses,
 * with its id. In a batch the frames within the bounds are parsed alone.
 */
export function readClientMessage(text: string): { values: unknown[]; batch: boolean } {
  const batch = firstCharCode(text) === 0x5b;
  // A batch's own array is one level and one container more.
  if (!nestingExceeds(text, batch ? MAX_FRAME_DEPTH + 1 : MAX_FRAME_DEPTH, batch ? MAX_MESSAGE_CONTAINERS + 1 : MAX_MESSAGE_CONTAINERS)) {
    const value = parseJson(text);
    return Array.isArray(value) ? { values: checkBatchLength(value), batch: true } : { values: [value], batch: false };
  }
  return batch ? boundedBatch(text) : { values: [unparsed(text, 0, text.length)], batch: false };
}

/**
 * Parses and validates one frame from a client, bounded as readClientMessage
 * bounds it. Throws `ProtocolError`; when the frame had a usable call id,
 * `error.callId` lets the gateway answer that call.
 */
export function decodeClientFrame(text: string, maxIdLength: number = DEFAULTS.maxCallIdLength): ClientFrame {
  return checkClientFrame(nestingExceeds(text, MAX_FRAME_DEPTH, MAX_MESSAGE_CONTAINERS) ? unparsed(text, 0, text.length) : parseJson(text), maxIdLength);
}

/**
 * A batch past a bound: each element is measured and parsed alone, in order;
 * an element too deep, or one that would bring the batch past
 * MAX_MESSAGE_CONTAINERS, is refused.
 */
function boundedBatch(text: string): { values: unknown[]; batch: true } {
  const elements = arrayElements(text, MAX_BATCH_FRAMES);
  if (elements === undefined) throw new ProtocolError('Frame is not valid JSON; send a JSON object with a "type" field.', 'bad_json');
  let containers = 0;
  const values = checkBatchLength(elements).map(([start, end, depth, opened]) => {
    if (depth > MAX_FRAME_DEPTH || containers + opened > MAX_MESSAGE_CONTAINERS) return unparsed(text, start, end);
    containers += opened;
    return parseJson(text.slice(start, end));
  });
  return { values, batch: true };
}

function unparsed(text: string, start: number, end: number): UnparsedFrame {
  return new UnparsedFrame(topLevelStrings(text, start, end, ['id', 'type'], 1024));
}

function firstCharCode(text: string): number {
  let i = 0;
  while (i < text.length && (text.charCodeAt(i) === 0x20 || text.charCodeAt(i) === 0x0a || text.charCodeAt(i) === 0x0d || text.charCodeAt(i) === 0x09)) i++;
  return text.charCodeAt(i);
}
