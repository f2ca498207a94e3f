/**
 * How deep JSON text nests and how many arrays and objects it opens, read
 * before it is parsed. JSON.parse spends most of its time building those (a
 * MiB of `[[[…` takes 70–110 ms, of `[[[[[[[1]]]]]]],…` 60–90 ms, of one string
 * 1 ms), so a message from a client is measured first, in one linear pass
 * whose strings are skipped by the engine's own indexOf. Only a message past
 * a bound is walked further, to split a batch into its frames and to read a
 * refused frame's `id` and `type`, so the call it carried is still answered.
 */

/** Index of the `"` that closes the string opening at `open`, or -1. `slash` is the next backslash at or after open + 1 (or -1), kept by the caller so the text is searched once. */
function closingQuote(text: string, open: number, slash: { at: number }): number {
  let from = open + 1;
  for (;;) {
    const quote = text.indexOf('"', from);
    if (quote < 0) return -1;
    if (slash.at >= 0 && slash.at < from) slash.at = text.indexOf('\\', from);
    if (slash.at < 0 || slash.at > quote) return quote;
    from = slash.at + 2;
    slash.at = text.indexOf('\\', from);
  }
}

/**
 * True if the text opens more than `maxDepth` arrays or objects inside one
 * another, or more than `maxContainers` in all. Does not check that it is JSON.
 */
export function nestingExceeds(text: string, maxDepth: number, maxContainers = Infinity, start = 0, end = text.length): boolean {
  const slash = { at: text.indexOf('\\', start) };
  let depth = 0;
  let opened = 0;
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      i = closingQuote(text, i, slash);
      if (i < 0) return false;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > maxDepth || ++opened > maxContainers) return true;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return false;
}

type Visit = (kind: 'open' | 'close' | 'comma' | 'colon' | 'string', at: number, end: number, deepest: number, opened: number) => boolean | void;

/**
 * Walks the structure of the text at its first level (inside the outermost
 * bracket), calling `visit` for that level's brackets, commas, colons and
 * strings (`end`: a string's closing quote), with the deepest level reached
 * and the arrays and objects opened since the last visit; stops when visit
 * returns true.
 */
function walkFirstLevel(text: string, start: number, end: number, visit: Visit): void {
  const slash = { at: text.indexOf('\\', start) };
  let depth = 0;
  let deepest = 0;
  let opened = 0;
  const at1 = (kind: Parameters<Visit>[0], i: number, close: number): boolean => {
    const stop = visit(kind, i, close, deepest, opened) === true;
    deepest = depth;
    opened = 0;
    return stop;
  };
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      const close = closingQuote(text, i, slash);
      if (close < 0 || (depth === 1 && at1('string', i, close))) return;
      i = close;
    } else if (c === 0x5b || c === 0x7b) {
      opened++;
      if (++depth > deepest) deepest = depth;
      if (depth === 1 && at1('open', i, i)) return;
    } else if (c === 0x5d || c === 0x7d) {
      if (depth-- === 1 && at1('close', i, i)) return;
    } else if (depth === 1 && (c === 0x2c || c === 0x3a)) {
      if (at1(c === 0x2c ? 'comma' : 'colon', i, i)) return;
    }
  }
}

/**
 * The elements of the top-level array the text holds, each as its span
 * [start, end), how deep it nests and how many arrays and objects it opens
 * (at most `most` + 1 of them: reading stops there), or undefined if the
 * text is no array with nothing after it.
 */
export function arrayElements(text: string, most: number): Array<[start: number, end: number, depth: number, containers: number]> | undefined {
  const elements: Array<[number, number, number, number]> = [];
  let from = -1;
  let closed = -1;
  walkFirstLevel(text, 0, text.length, (kind, at, _end, deepest, opened) => {
    if (kind === 'open') from = at + 1;
    else if (kind === 'comma' || kind === 'close') {
      elements.push([from, at, Math.max(0, deepest - 1), opened]);
      from = at + 1;
      if (kind === 'close') closed = at;
    }
    return closed >= 0 || elements.length > most;
  });
  if (elements.length > most) return elements;
  if (closed < 0 || text.slice(closed + 1).trim() !== '' || text.slice(0, text.indexOf('[')).trim() !== '') return undefined;
  return elements.length === 1 && text.slice(elements[0]![0], elements[0]![1]).trim() === '' ? [] : elements;
}

/**
 * The string values of the given keys of the object spanning [start, end),
 * read at its top level only (the last one wins, as in JSON.parse). A value
 * longer than `longest` characters is left out: it would not be used.
 */
export function topLevelStrings(text: string, start: number, end: number, keys: readonly string[], longest: number): Record<string, string> {
  const found: Record<string, string> = {};
  let key: string | undefined;
  let afterColon = false;
  walkFirstLevel(text, start, end, (kind, at, close) => {
    if (kind === 'string' && afterColon) {
      if (key !== undefined && close - at <= longest * 6 + 2) {
        const value = readString(text.slice(at, close + 1));
        if (value !== undefined && value.length <= longest) found[key] = value;
      }
      afterColon = false;
      key = undefined;
    } else if (kind === 'string') {
      const name = close - at <= 16 ? readString(text.slice(at, close + 1)) : undefined;
      key = name !== undefined && keys.includes(name) ? name : undefined;
    } else if (kind === 'colon') {
      afterColon = true;
    } else {
      afterColon = false;
      if (kind !== 'comma') key = undefined;
    }
    return false;
  });
  return found;
}

function readString(quoted: string): string | undefined {
  try {
    const value: unknown = JSON.parse(quoted);
    return typeof value === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}
