/**
 * Constants fixed by the wire protocol (docs/protocol.md): both ends must
 * agree on them, so none is configurable. Tuning defaults are in limits.ts.
 */

export const PROTOCOL_VERSION = 1;

/** The subprotocol the server selects, and the prefix of the one carrying the token. */
export const SUBPROTOCOL = 'meshgate';
export const TOKEN_SUBPROTOCOL_PREFIX = 'meshgate.token.';

/** Heartbeat strings, answered by the runtime's auto-response without waking the gateway. */
export const HEARTBEAT_PING = 'meshgate:ping';
export const HEARTBEAT_PONG = 'meshgate:pong';

/** Deepest nesting of a call's `state` object. */
export const MAX_STATE_DEPTH = 32;

/**
 * The most one burst RPC carries each way, in UTF-16 code units: the calls'
 * arguments from the gateway, and each part of the results back. Far below
 * workerd's limit for one RPC message (32 MiB).
 */
export const MAX_BURST_PART_SIZE = 4 * 1024 * 1024;

/** Most arguments one call may carry: spreading more into a function overflows the stack (a list is one argument). */
export const MAX_ARGUMENTS = 1_024;
