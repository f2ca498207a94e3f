/**
 * Typed errors that cross the wire. Each keeps its `name` and its own
 * properties through the codec, and is revived as an instance of the same
 * class on the other side (see `codec.ts`), so `instanceof` works end to end.
 */

type Props = Record<string, unknown>;

/**
 * A short description of a value that may come from the wire, for a message:
 * strings and other primitives as themselves (cut to `max`), anything else by
 * its kind. Never String() of an object: that runs its toString() or join(),
 * which on a shared-reference value can take minutes.
 */
export function describeUntrusted(value: unknown, max = 200): string {
  if (typeof value === 'string') return value.slice(0, max);
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return String(value).slice(0, max);
  return Array.isArray(value) ? 'an array' : typeof value === 'function' ? 'a function' : 'an object';
}

export class MeshError extends Error {
  /** A stable, machine-readable code for `switch` statements and logs. */
  code: string;
  constructor(message: string, code = 'mesh_error', options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A call to a client failed because the client is gone (no socket, grace period over). Definitive: safe to drop the subscriber. */
export class ClientDisconnectedError extends MeshError {
  clientInstanceName: string;
  constructor(clientInstanceName: string, message?: string) {
    super(message ?? `Client "${clientInstanceName}" is not connected and did not reconnect within the grace period; drop it or retry after it reconnects.`, 'client_disconnected');
    this.clientInstanceName = clientInstanceName;
  }
}

/** A connected client did not answer in time. Not a disconnect: the client may be slow, keep it subscribed. */
export class ClientTimeoutError extends MeshError {
  clientInstanceName: string;
  timeoutMs: number;
  constructor(clientInstanceName: string, timeoutMs: number) {
    super(`Client "${clientInstanceName}" did not answer within ${timeoutMs} ms. It is not known to be gone (slow, or reconnecting inside its grace period): keep it, retry, or raise clientResponseTimeoutMs.`, 'client_timeout');
    this.clientInstanceName = clientInstanceName;
    this.timeoutMs = timeoutMs;
  }
}

/** A call from the client passed its deadline without an answer. */
export class CallTimeoutError extends MeshError {
  method: string;
  timeoutMs: number;
  /** false: the call never left the client (it was not connected all that time), so it ran nowhere; absent on the wire otherwise */
  declare sent?: false;
  /** `notSent`: why the call never left (the client's last connection problem, or that it was not connected) */
  constructor(method: string, timeoutMs: number, notSent?: string) {
    super(notSent === undefined
      ? `Call to "${method}" got no answer within ${timeoutMs} ms; raise the call timeout or check the target.`
      : `Call to "${method}" was never sent in ${timeoutMs} ms, so it ran nowhere: ${notSent}`, 'call_timeout');
    this.method = method;
    this.timeoutMs = timeoutMs;
    // Not enumerable: it is about this client's call, and must not travel with the error if a handler rethrows it into the mesh.
    if (notSent !== undefined) Object.defineProperty(this, 'sent', { value: false, enumerable: false });
  }
}

/** The call was sent, the connection dropped, and the gateway's memory of it is gone: it may or may not have run. */
export class OutcomeUnknownError extends MeshError {
  method: string;
  /** With a `cause`: the RPC into the mesh failed mid-call (the node reset, the network between them broke). */
  constructor(method: string, cause?: unknown) {
    super(cause === undefined
      ? `Call to "${method}" was in flight when the connection dropped and the gateway's memory of it is gone (grace period over, or the gateway restarted); it may or may not have run. Check the target's state before retrying.`
      : `Call to "${method}" failed inside the mesh (${describeUntrusted(cause instanceof Error ? cause.message : cause)}); it may or may not have run. Check the target's state before retrying.`,
    'outcome_unknown', cause === undefined ? undefined : { cause });
    this.method = method;
  }
}

/** The method does not exist or is not marked callable with `@mesh()`. */
export class MethodNotExposedError extends MeshError {
  method: string;
  constructor(method: string, where = 'the target') {
    super(`"${describeUntrusted(method, 100)}" is not a callable method on ${where}; mark it with @mesh() (server) or add it to the handlers object (client).`, 'method_not_exposed');
    this.method = describeUntrusted(method, 100);
  }
}

/** The call named a binding that is not a mesh node. */
export class UnknownBindingError extends MeshError {
  binding: string;
  constructor(binding: string, detail = 'it is not a Durable Object or Worker binding of this mesh') {
    super(`Binding "${describeUntrusted(binding, 100)}" cannot be called: ${detail}.`, 'unknown_binding');
    this.binding = describeUntrusted(binding, 100);
  }
}

/** A hook or policy refused the call. */
export class ForbiddenError extends MeshError {
  constructor(message: string) {
    super(message, 'forbidden');
  }
}

/** One reason a value failed its schema: where in the value (keys and indexes), and what is wrong. */
export interface ValidationIssue {
  path: Array<string | number>;
  message: string;
}

/** How much of a schema's complaint travels: issues derive from hostile input, so their count and size are capped. */
export const VALIDATION_ISSUE_BOUNDS = { maxIssues: 10, maxMessage: 200, maxPathSegments: 8, maxSegment: 40 } as const;

/**
 * A value failed the schema of a checked method: its arguments (checked
 * before the method runs) or a result. `issues` lists the first few problems,
 * each with its path (for arguments, starting at the argument's index);
 * `issueCount` says how many the schema found.
 */
export class ValidationError extends MeshError {
  method: string;
  /** 'arguments', or 'result' (a node's own answer, or a client handler's answer checked by the node) */
  what: 'arguments' | 'result';
  issues: ValidationIssue[];
  issueCount: number;
  constructor(method: string, what: 'arguments' | 'result', issues: ValidationIssue[], issueCount = issues.length) {
    const first = issues[0];
    const where = first && first.path.length > 0 ? `at ${first.path.map((p) => `[${JSON.stringify(p)}]`).join('')}: ` : '';
    const more = issueCount > 1 ? ` (and ${issueCount - 1} more issue${issueCount > 2 ? 's' : ''})` : '';
    super(`The ${what === 'arguments' ? 'arguments of' : 'result of'} "${describeUntrusted(method, 100)}" failed ${what === 'arguments' ? 'its' : 'its result'} schema: ${where}${first?.message ?? 'invalid'}${more}. `
      + (what === 'arguments' ? 'Fix the values passed to the call.' : 'The answering side sent a value its caller does not accept.'), 'validation_failed');
    this.method = describeUntrusted(method, 100);
    this.what = what;
    this.issues = issues;
    this.issueCount = issueCount;
  }
}

/** A frame broke the wire protocol; `code` says how. */
export class ProtocolError extends MeshError {
  constructor(message: string, code = 'bad_frame') {
    super(message, code);
  }
}

/** A limit was hit (queue, in-flight calls, …); `limit` names it. */
export class LimitExceededError extends MeshError {
  limit: string;
  max: number;
  constructor(limit: string, max: number, advice: string) {
    super(`Limit "${limit}" of ${max} reached; ${advice}`, 'limit_exceeded');
    this.limit = limit;
    this.max = max;
  }
}

/** The access token expired mid-connection; the client refreshes and reconnects. */
export class TokenExpiredError extends MeshError {
  constructor() {
    super('The access token expired; the client will refresh it and reconnect.', 'token_expired');
  }
}

/** The client was closed with `disconnect()` or disposed before the call settled. */
export class ClientClosedError extends MeshError {
  constructor(message = 'The client was disconnected by the application before this call settled; create or connect a client to call again.') {
    super(message, 'client_closed');
  }
}

/** Another process took over this client identity; this client stopped. */
export class SupersededError extends MeshError {
  constructor() {
    super('Another connection took over this client identity (same instance name); this client stopped. Call connect() to take it back.', 'superseded');
  }
}

/** The server refused the token: the user must log in again. */
export class LoginRequiredError extends MeshError {
  /** why, without the "Login required: " prefix (what onLoginRequired receives) */
  readonly reason: string;

  constructor(reason: string) {
    super(`Login required: ${reason}`, 'login_required');
    this.reason = reason;
  }
}

/** The server refused the connection as one too many (close 4429; the reason says which limit). The client keeps retrying with backoff. */
export class TooManyConnectionsError extends MeshError {
  readonly reason: string;

  constructor(reason: string) {
    super(`Connection refused: ${reason}. The client keeps retrying with backoff.`, 'too_many_connections');
    this.reason = reason;
  }
}

/** The server speaks none of the protocol versions this client offers (close 4426): reload the page (or update the app) to get a client it speaks. */
export class UnsupportedProtocolError extends MeshError {
  readonly reason: string;

  constructor(reason: string) {
    super(`meshgate: the server no longer speaks the protocol version this client offers (${reason}); reload the page to update the client.`, 'unsupported_protocol');
    this.reason = reason;
  }
}

/**
 * The caller cancelled the call (its AbortSignal aborted, or it broke out of
 * a stream's `for await`). The call may have run in part: the node saw its
 * `this.mesh.signal` abort, and a stream's producer was stopped.
 */
export class CancelledError extends MeshError {
  method: string;
  constructor(method: string, cause?: unknown) {
    super(`Call to "${describeUntrusted(method, 100)}" was cancelled by the caller; it may have run in part. Call again to start over.`, 'cancelled', cause === undefined ? undefined : { cause });
    this.method = describeUntrusted(method, 100);
  }
}

/**
 * A stream's chunks can no longer be delivered: the connection dropped and
 * the gateway's memory of the stream is gone (the grace period ran out, the
 * gateway restarted, the node reset). Chunks received so far are intact;
 * call again to start a new stream.
 */
export class StreamInterruptedError extends MeshError {
  method: string;
  constructor(method: string, cause?: unknown) {
    super(`The stream from "${describeUntrusted(method, 100)}" was interrupted (the connection dropped past the grace period, or the gateway or node restarted); the chunks received so far are intact. Call again to start a new stream.`,
      'stream_interrupted', cause === undefined ? undefined : { cause });
    this.method = describeUntrusted(method, 100);
  }
}

const builtins: Array<new (message?: string) => Error> = [
  Error, TypeError, RangeError, SyntaxError, ReferenceError, EvalError, URIError,
];
const registry = new Map<string, { prototype: Error }>(builtins.map((c) => [c.name, c]));
for (const c of [
  MeshError, ClientDisconnectedError, ClientTimeoutError, CallTimeoutError, OutcomeUnknownError,
  MethodNotExposedError, UnknownBindingError, ForbiddenError, ProtocolError, LimitExceededError,
  TokenExpiredError, ClientClosedError, SupersededError, LoginRequiredError, TooManyConnectionsError,
  UnsupportedProtocolError, ValidationError, CancelledError, StreamInterruptedError,
]) registry.set(c.name, c);

/** Lets an application's own error classes revive as themselves on the other side. */
export function registerErrorClass(ctor: { name: string; prototype: Error }): void {
  registry.set(ctor.name, ctor);
}

/** Keys a revived error's properties never set: its own parts travel in their own slots, and the rest would reach the prototype. */
const RESERVED_PROPS = new Set(['__proto__', 'constructor', 'prototype', 'name', 'message', 'stack', 'cause']);

/**
 * Rebuilds an error from its wire parts: the registered class by name, else a
 * plain Error with that name. The parts are untrusted: `name` and `message`
 * are used only when they are strings, nothing is coerced, and properties are
 * defined (never assigned, so no setter on a registered class runs).
 */
export function reviveError(name: unknown, message: unknown, cause: unknown, props: unknown): Error {
  const errorName = typeof name === 'string' && name.length > 0 ? name : 'Error';
  const error = new Error(typeof message === 'string' ? message : '', cause === undefined ? undefined : { cause });
  const ctor = registry.get(errorName);
  if (ctor) Object.setPrototypeOf(error, ctor.prototype);
  if (props !== null && typeof props === 'object') {
    for (const [key, value] of Object.entries(props)) {
      if (RESERVED_PROPS.has(key)) continue;
      Object.defineProperty(error, key, { value, enumerable: true, writable: true, configurable: true });
    }
  }
  Object.defineProperty(error, 'name', { value: errorName, enumerable: false, writable: true, configurable: true });
  return error;
}
