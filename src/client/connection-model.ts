/**
 * What the connection state machine (connection.ts) works on: its phases,
 * the events it is fed, the effects it asks for, and how each close code is
 * handled. Types and tables only; the transitions live in connection.ts.
 */
import { LOGIN_REQUIRED_CODES, WS_CLOSE_SUPERSEDED, WS_CLOSE_TOKEN_EXPIRED, WS_CLOSE_TOO_MANY_CONNECTIONS, WS_CLOSE_UNSUPPORTED_PROTOCOL } from '../protocol/close-codes.js';
import { TooManyConnectionsError, UnsupportedProtocolError } from '../protocol/errors.js';
import type { ConnectionStatusFrame } from '../protocol/frames.js';

/** Numbers each attempt; an attempt's socket has the attempt's number. */
export type SocketId = number;

export type Phase =
  | { name: 'idle' }
  /** getting a token (and the instance name) for attempt `attempt` */
  | { name: 'authorizing'; attempt: SocketId }
  /** the socket exists; the gateway's connection_status has not come yet */
  | { name: 'opening'; socket: SocketId }
  | { name: 'connected'; socket: SocketId }
  /** waiting out the backoff before the next attempt */
  | { name: 'backingOff' }
  | { name: 'superseded' }
  | { name: 'loginRequired'; reason: string }
  /** the server speaks no version this client offers: only a reload (a newer client) helps */
  | { name: 'updateRequired'; reason: string }
  | { name: 'closed' };

/** The phases that stop the client until the app calls connect() (or never, for `closed`); calls fail at once in them. */
export type Stopped = Extract<Phase, { name: 'superseded' | 'loginRequired' | 'updateRequired' | 'closed' }>;

export interface Connection {
  readonly phase: Phase;
  /** the connected socket reconnect() keeps open until its replacement connects, so the gateway moves calls in flight */
  readonly retired: SocketId | undefined;
  readonly everConnected: boolean;
  /** attempts in a row that ended before the gateway's status: the third is reported */
  readonly failedAttempts: number;
  /** token refreshes in a row that failed for a transient reason: the third is reported */
  readonly failedRefreshes: number;
  /** backoff waits since the last connection: the next wait's exponent */
  readonly retries: number;
  /** close codes whose rule reports them, already reported since the last connection */
  readonly reportedCloses: readonly number[];
  /** whether a refresh source is configured (a 4401 without one means the user must log in) */
  readonly canRefresh: boolean;
  readonly nextId: SocketId;
}

export type CredentialsFailure =
  /** the refresh failed for a reason that may pass (network, 5xx): retried */
  | { kind: 'refresh'; error: Error }
  | { kind: 'login'; reason: string }
  | { kind: 'other'; error: unknown };

export type ConnectionEvent =
  | { type: 'connect' }
  | { type: 'reconnect' }
  | { type: 'disconnect' }
  | { type: 'retryDue' }
  /** online, focus or visibilitychange in a browser */
  | { type: 'networkReturned'; hidden: boolean }
  | { type: 'credentialsReady'; attempt: SocketId; token: string }
  | { type: 'credentialsFailed'; attempt: SocketId; failure: CredentialsFailure }
  /** the WebSocket constructor threw */
  | { type: 'socketUnavailable'; socket: SocketId; error: unknown }
  | { type: 'opened'; socket: SocketId }
  | { type: 'status'; socket: SocketId; status: ConnectionStatusFrame }
  | { type: 'superseded'; socket: SocketId }
  /** `failure` is what the socket's error event said, if anything */
  | { type: 'closed'; socket: SocketId; code: number; reason: string; failure?: string | undefined }
  /** no status by the handshake deadline, or no pong in time */
  | { type: 'dead'; socket: SocketId; reason: string };

export type Notice =
  | { name: 'connected'; subscriptionRequired: boolean; firstConnection: boolean }
  | { name: 'subscriptionRequired' }
  | { name: 'superseded' }
  | { name: 'loginRequired'; reason: string }
  | { name: 'updateRequired'; reason: string };

export type Problem =
  | { kind: 'refreshesFailing'; last: Error }
  | { kind: 'attemptsFailing'; last: string }
  | { kind: 'error'; error: unknown };

export type Effect =
  | { type: 'fetchCredentials'; attempt: SocketId }
  /** create the socket and start its handshake deadline */
  | { type: 'openSocket'; socket: SocketId; token: string }
  | { type: 'startHeartbeat'; socket: SocketId }
  /** stop watching it, close it, forget it */
  | { type: 'closeSocket'; socket: SocketId; code: number; reason: string }
  /** it closed (or never came to be): stop watching it, forget it */
  | { type: 'forgetSocket'; socket: SocketId }
  /** stop watching it; it stays open until a later closeSocket */
  | { type: 'retireSocket'; socket: SocketId }
  /** take the instance name, epoch and frame limit; the handshake deadline is met */
  | { type: 'adoptStatus'; status: ConnectionStatusFrame }
  | { type: 'flushCalls'; subscriptionRequired: boolean }
  | { type: 'failCalls'; because: Stopped }
  | { type: 'scheduleRetry'; retry: number }
  | { type: 'cancelRetry' }
  /** drop the token so the next attempt refreshes it */
  | { type: 'dropToken' }
  | { type: 'notify'; notice: Notice }
  | { type: 'report'; problem: Problem }
  /** remove browser listeners and the tab lock */
  | { type: 'dispose' };

export interface Step {
  readonly state: Connection;
  readonly effects: readonly Effect[];
}

/** What the client does when the current socket closes with a code. */
export interface CloseRule {
  then: 'retry' | 'superseded' | 'loginRequired' | 'updateRequired';
  /** the token expired: drop it; with no refresh configured the user must log in */
  dropToken?: true;
  /** reported through onError at the first such close since the last connection (and not counted as a failed attempt) */
  report?: (reason: string) => Error;
}

export type CloseRules = ReadonlyMap<number, CloseRule>;

/** Close codes with a rule of their own; any other code is retried with backoff. */
export const CLOSE_RULES: CloseRules = new Map<number, CloseRule>([
  [WS_CLOSE_SUPERSEDED, { then: 'superseded' }],
  ...LOGIN_REQUIRED_CODES.map((code): [number, CloseRule] => [code, { then: 'loginRequired' }]),
  [WS_CLOSE_TOKEN_EXPIRED, { then: 'retry', dropToken: true }],
  // Another tab or device must go first: keep retrying with backoff, and say why once.
  [WS_CLOSE_TOO_MANY_CONNECTIONS, { then: 'retry', report: (reason) => new TooManyConnectionsError(reason) }],
  // No retry can help: the page must load a client the server speaks.
  [WS_CLOSE_UNSUPPORTED_PROTOCOL, { then: 'updateRequired', report: (reason) => new UnsupportedProtocolError(reason) }],
]);

/** Failed attempts (or refreshes) in a row before the client reports them through onError; it keeps retrying. */
export const FAILURES_BEFORE_REPORT = 3;

export function initialConnection(options: { canRefresh: boolean }): Connection {
  return {
    phase: { name: 'idle' }, retired: undefined, everConnected: false, failedAttempts: 0, failedRefreshes: 0,
    retries: 0, reportedCloses: [], canRefresh: options.canRefresh, nextId: 1,
  };
}
