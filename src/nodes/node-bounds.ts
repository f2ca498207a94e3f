/** The value bounds a node class sets with `static valueBounds`, resolved once per object (no runtime imports: unit tests load it in Node). */
import { resolveValueBounds, type ValueBounds } from '../protocol/value-bounds.js';

/** Resolved bounds by the `static valueBounds` object they came from, with the fields they were resolved from: resolving on every call costs more than the check. */
const resolvedBounds = new WeakMap<object, { from: [unknown, unknown]; bounds: ValueBounds }>();

/** The bounds a node class sets with `static valueBounds` on the values it decodes, over the defaults. */
export function valueBoundsOf(node: object): ValueBounds {
  const overrides = (node.constructor as { valueBounds?: Partial<ValueBounds> } | undefined)?.valueBounds;
  if (typeof overrides !== 'object' || overrides === null) return resolveValueBounds(overrides);
  const cached = resolvedBounds.get(overrides);
  // A field changed since (or a new object assigned) is resolved again, and checked again.
  if (cached && cached.from[0] === overrides.maxExpandedSize && cached.from[1] === overrides.maxDepth) return cached.bounds;
  const bounds = resolveValueBounds(overrides);
  resolvedBounds.set(overrides, { from: [overrides.maxExpandedSize, overrides.maxDepth], bounds });
  return bounds;
}
