/** Shared-reference ("billion laughs") values: tiny as text, 2^depth values for any walk that follows every reference. */

/** A value whose every level is an array holding the level below twice, down to `leaf`. */
export function laughs(depth: number, leaf: unknown = 'x'): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = [value, value];
  return value;
}

/** devalue entries of `laughs(depth, leaf)` placed at index `first` of a payload. */
export function laughsEntries(depth: number, first: number, leaf = 'x'): unknown[] {
  const entries: unknown[] = [];
  for (let k = 0; k < depth; k++) entries.push([first + k + 1, first + k + 1]);
  entries.push(leaf);
  return entries;
}

/** The codec text of `laughs(depth, leaf)`, written by hand (about 8 characters a level). */
export function laughsText(depth: number, leaf = 'x'): string {
  return JSON.stringify(laughsEntries(depth, 0, leaf));
}

/** The codec text of an error whose name and message are `laughs(depth)`. */
export function errorLaughsText(depth: number): string {
  return JSON.stringify([['Error', 1], [2, 2, -1, -1], ...laughsEntries(depth, 2)]);
}
