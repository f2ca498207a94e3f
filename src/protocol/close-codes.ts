/**
 * WebSocket close codes meshgate uses. The 44xx codes mirror the HTTP status
 * a browser cannot read from a failed upgrade, so the client can act on them.
 */

/** Another connection took over this client identity (parallel to HTTP 409). */
export const WS_CLOSE_SUPERSEDED = 4409;
/** The access token expired: refresh it and reconnect. */
export const WS_CLOSE_TOKEN_EXPIRED = 4401;
/** No access token was offered: the user must log in. */
export const WS_CLOSE_NO_TOKEN = 4400;
/** The token is invalid or does not grant this identity: the user must log in. */
export const WS_CLOSE_FORBIDDEN = 4403;
/**
 * Too many connections (parallel to HTTP 429): the user has too many live
 * identities (tabs, devices), or this identity too many sockets still closing.
 * The client backs off and retries.
 */
export const WS_CLOSE_TOO_MANY_CONNECTIONS = 4429;
/** The client did not offer a subprotocol this server speaks (parallel to HTTP 426): update the client. */
export const WS_CLOSE_UNSUPPORTED_PROTOCOL = 4426;
/** A frame exceeded the size limit. */
export const WS_CLOSE_TOO_LARGE = 1009;
/** The socket sent frames faster than its rate limit allows (standard "policy violation"): the client backs off and reconnects. */
export const WS_CLOSE_RATE_LIMITED = 1008;
/** The gateway hit an internal error. */
export const WS_CLOSE_INTERNAL = 1011;
/** A normal close, e.g. `disconnect()` on the client. */
export const WS_CLOSE_NORMAL = 1000;

export const SUPERSEDED_REASON = 'Superseded by new connection';

/** Close codes after which the client must not reconnect without a new login. */
export const LOGIN_REQUIRED_CODES: readonly number[] = [WS_CLOSE_NO_TOKEN, WS_CLOSE_FORBIDDEN];
