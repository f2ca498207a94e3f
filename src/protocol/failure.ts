/** The failed result of a call, as both directions of the wire carry it: the error through the codec. */
import { encodeError } from './codec.js';

export function failure(error: unknown): { ok: false; error: string } {
  return { ok: false, error: encodeError(error) };
}
