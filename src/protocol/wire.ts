/**
 * Constants fixed by the wire protocol (docs/protocol.md): both ends must
 * agree on them, so none is configurable. Tuning defaults are in limits.ts.
 */

export const PROTOCOL_VERSION = 1;

/**
 * The protocol versions this release speaks, newest first. A release that
 * adds a version keeps the previous one for at least one more release, so a
 * deploy never strands tabs that loaded the old client.
 */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [PROTOCOL_VERSION];

/** The next version, reserved: it has no format of its own yet, so an end that lists it speaks v1's frames on it (tests of negotiation do). */
export const RESERVED_PROTOCOL_VERSION = 2;

/** The subprotocol of protocol v1 (forever), and the prefix of the one carrying the token. */
export const SUBPROTOCOL = 'meshgate';
export const TOKEN_SUBPROTOCOL_PREFIX = 'meshgate.token.';

/** The subprotocol naming a version: `meshgate` for v1, `meshgate.v{n}` after. */
export function subprotocolOf(version: number): string {
  return version === 1 ? SUBPROTOCOL : `${SUBPROTOCOL}.v${version}`;
}

/** The version a subprotocol names, or undefined (the token, another protocol, `meshgate.v1`, `meshgate.v0`). */
export function versionOf(subprotocol: string): number | undefined {
  if (subprotocol === SUBPROTOCOL) return 1;
  const match = /^meshgate\.v([2-9]|[1-9][0-9]{1,3})$/.exec(subprotocol);
  return match ? Number(match[1]) : undefined;
}

/** Checks a list of versions an end is configured to speak: a typo must fail loudly, not strand every client. */
export function checkedVersions(versions: readonly number[], who: string): readonly number[] {
  const speakable = [...SUPPORTED_PROTOCOL_VERSIONS, RESERVED_PROTOCOL_VERSION];
  if (versions.length === 0 || versions.some((v) => !speakable.includes(v)) || new Set(versions).size !== versions.length) {
    throw new RangeError(`meshgate: ${who} must list distinct protocol versions among ${speakable.join(', ')} (${RESERVED_PROTOCOL_VERSION} is reserved), got [${versions.join(', ')}].`);
  }
  return [...versions].sort((a, b) => b - a);
}

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
