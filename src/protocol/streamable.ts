/** What a method or handler may return to stream its result, on either side (no runtime-specific imports). */

/** An async iterable (an `async function*`'s result) or a ReadableStream. */
export function isStreamable(value: unknown): value is AsyncIterable<unknown> | ReadableStream<unknown> {
  if (typeof value !== 'object' || value === null) return false;
  if (typeof ReadableStream !== 'undefined' && value instanceof ReadableStream) return true;
  return typeof (value as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function';
}

/** A streamable read as an iterator; for a ReadableStream, `return()` cancels it. */
export function iteratorOf(source: AsyncIterable<unknown> | ReadableStream<unknown>): AsyncIterator<unknown> {
  if (typeof ReadableStream === 'undefined' || !(source instanceof ReadableStream)) return (source as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  const reader = source.getReader();
  return {
    next: () => reader.read() as Promise<IteratorResult<unknown>>,
    return: async () => {
      await reader.cancel();
      return { done: true, value: undefined };
    },
  };
}
