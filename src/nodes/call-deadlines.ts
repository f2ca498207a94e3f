/**
 * The node's side of a call's deadline: past it, the caller is answered
 * OutcomeUnknownError while the method keeps running (workerd cannot cancel
 * a pending RPC, so a method that never ends would keep the caller in memory
 * too), and the method's signal is aborted.
 *
 * A Durable Object keeps the deadlines of all the calls it serves on one
 * timer (Deadlines, up to NODE_DEADLINE_SLACK_MS late), so an async method
 * costs no setTimeout and clearTimeout of its own. A Worker gets a new
 * instance per request, so each of its calls has its own exact timer.
 */
import { Deadlines } from '../gateway/deadlines.js';
import { OutcomeUnknownError } from '../protocol/errors.js';
import type { CallContext } from './envelope.js';
import { signalOf } from './signals.js';

/** How late a Durable Object may answer past a call's deadline, and how long its deadline timer may outlive the last call. */
export const NODE_DEADLINE_SLACK_MS = 100;

/** The deadlines of one Durable Object's running calls. */
export function nodeDeadlines(): Deadlines<object> {
  return new Deadlines<object>({ slackMs: NODE_DEADLINE_SLACK_MS });
}

function lateError(method: string, deadlineMs: number, context: CallContext): OutcomeUnknownError {
  const error = new OutcomeUnknownError(method, new Error(`the caller stopped waiting after ${deadlineMs} ms`));
  signalOf(context).abort(error); // nobody waits for the method any more: tell it
  return error;
}

/** The method's result, or past the caller's deadline an OutcomeUnknownError; `deadlines`: the object's shared timer (else one of its own). */
export async function withinDeadline(running: unknown, method: string, deadlineMs: number, context: CallContext, deadlines?: Deadlines<object>): Promise<unknown> {
  if (!(running instanceof Promise)) return running;
  let late!: (error: unknown) => void;
  const expired = new Promise<never>((_, reject) => (late = reject));
  const key = {};
  let timer: ReturnType<typeof setTimeout> | undefined;
  if (deadlines) deadlines.add(key, deadlineMs, () => late(lateError(method, deadlineMs, context)));
  else timer = setTimeout(() => late(lateError(method, deadlineMs, context)), deadlineMs);
  try {
    return await Promise.race([running, expired]);
  } finally {
    if (deadlines) deadlines.delete(key);
    else clearTimeout(timer);
  }
}
