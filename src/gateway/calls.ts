/** Helpers for client → mesh calls in the gateway. */
import { ForbiddenError, OutcomeUnknownError, UnknownBindingError } from '../protocol/errors.js';
import type { CallTarget } from '../protocol/frames.js';
import { MAX_BURST_PART_SIZE } from '../protocol/wire.js';

/** The longest the gateway waits for a node, whatever deadline the caller asked for. */
export const MAX_CALL_DEADLINE_MS = 15 * 60_000;

/** How long the gateway waits for a node: at least callDeadlineMs, and never before the caller's own deadline (plus a margin), capped at 15 minutes. */
export function nodeDeadlineMs(callDeadlineMs: number, callerTimeoutMs: number | undefined): number {
  if (callerTimeoutMs === undefined) return callDeadlineMs;
  return Math.min(Math.max(callDeadlineMs, callerTimeoutMs + 5_000), MAX_CALL_DEADLINE_MS);
}

/** Drops `__proto__` keys at every depth: state travels to nodes without the codec's guard. */
export function withoutProtoKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutProtoKeys);
  if (typeof value !== 'object' || value === null) return value;
  const clean: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) if (key !== '__proto__') clean[key] = withoutProtoKeys(inner);
  return clean;
}

/** The client's state, without the keys the application reserves for the server. */
export function clientState(state: Record<string, unknown> | undefined, reserved: readonly string[]): Record<string, unknown> {
  const clean: Record<string, unknown> = {};
  if (!state) return clean;
  for (const [key, value] of Object.entries(state)) {
    if (key === '__proto__' || reserved.includes(key)) continue;
    clean[key] = withoutProtoKeys(value);
  }
  return clean;
}

/**
 * An error from the RPC itself (not from the method: that comes back as a
 * result). Unless it means the call never left (no such node), the method
 * may or may not have run.
 */
export function rpcFailure(error: unknown, method: string): unknown {
  if (error instanceof UnknownBindingError || error instanceof ForbiddenError) return error;
  return new OutcomeUnknownError(method, error);
}

/** Splits calls, in order, into runs whose arguments fit one burst RPC (a call larger than that goes alone). */
export function chunksBySize<Call extends readonly [unknown, { args: string }, ...unknown[]]>(calls: Call[], maxSize = MAX_BURST_PART_SIZE): Call[][] {
  const chunks: Call[][] = [];
  let chunk: Call[] = [];
  let size = 0;
  for (const call of calls) {
    const callSize = call[1].args.length;
    if (chunk.length > 0 && size + callSize > maxSize) {
      chunks.push(chunk);
      chunk = [];
      size = 0;
    }
    chunk.push(call);
    size += callSize;
  }
  if (chunk.length > 0) chunks.push(chunk);
  return chunks;
}

export function stubKey(to: CallTarget): string {
  return `${to.binding}\u0000${to.instance ?? ''}`;
}
