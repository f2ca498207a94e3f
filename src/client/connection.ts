/**
 * The client's connection logic as a pure state machine: `step(connection, event)`
 * returns the next connection and the effects to carry out, in order. It does
 * no I/O and reads no clock; MeshClient owns the sockets, timers and promises
 * and only carries out the effects.
 *
 * `TABLE` below is the whole machine: a row per phase, a cell per event it
 * acts on; an event without a cell is ignored. Before the table is consulted,
 * an event naming a socket or attempt that is not the current one is dropped,
 * so a replaced socket's late close, frame or deadline never touches the new
 * connection. Every way out of an attempt or a connection (retry, superseded,
 * login required, closed) goes through `leave`, which releases the sockets,
 * timers and calls in one fixed order. How each close code is handled is one
 * row of `CLOSE_RULES`.
 *
 * connect()'s promise is not an effect: it settles whenever the phase is
 * neither `authorizing` nor `opening` (see `attempting`).
 */
import { LOGIN_REQUIRED_CODES, WS_CLOSE_NORMAL, WS_CLOSE_SUPERSEDED, WS_CLOSE_TOKEN_EXPIRED, WS_CLOSE_TOO_MANY_CONNECTIONS, WS_CLOSE_UNSUPPORTED_PROTOCOL } from '../protocol/close-codes.js';
import { ProtocolError, TooManyConnectionsError, UnsupportedProtocolError } from '../protocol/errors.js';
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

// ── the table ────────────────────────────────────────────────────────────────

type EventOf<T extends ConnectionEvent['type']> = Extract<ConnectionEvent, { type: T }>;
type Row = { [T in ConnectionEvent['type']]?: (c: Connection, e: EventOf<T>, rules: CloseRules) => Step };

const TABLE: { readonly [P in Phase['name']]: Row } = {
  idle: { connect: start, reconnect: start, disconnect: close },
  authorizing: {
    connect: stay, reconnect: stay, disconnect: close,
    credentialsReady: (c, e) => ({ state: { ...c, phase: { name: 'opening', socket: e.attempt }, failedRefreshes: 0 }, effects: [{ type: 'openSocket', socket: e.attempt, token: e.token }] }),
    credentialsFailed: credentialsFailed,
  },
  opening: {
    connect: stay, disconnect: close,
    reconnect: (c) => startAttempt(c, closeCurrent(c, 'Replaced')),
    socketUnavailable: (c, e) => leave(c, { name: 'backingOff' }, 'forget', [report({ kind: 'error', error: e.error })]),
    opened: (c, e) => ({ state: c, effects: [{ type: 'startHeartbeat', socket: e.socket }] }),
    status: connected,
    superseded: (c) => leave(c, { name: 'superseded' }, { code: WS_CLOSE_NORMAL, reason: 'Superseded' }),
    closed: closedByServer,
    dead: dead,
  },
  connected: {
    connect: stay, disconnect: close,
    // The connected socket stays open until the new one is connected: the gateway then moves calls in flight.
    reconnect: (c) => startAttempt({ ...c, retired: currentSocket(c) }, retireCurrent(c)),
    status: (c) => ({ state: c, effects: [report({ kind: 'error', error: new ProtocolError('connection_status repeated on the same socket; ignored.', 'bad_frame') })] }),
    superseded: (c) => leave(c, { name: 'superseded' }, { code: WS_CLOSE_NORMAL, reason: 'Superseded' }),
    closed: closedByServer,
    dead: dead,
  },
  backingOff: {
    connect: retryNow, reconnect: retryNow, disconnect: close,
    retryDue: start,
    networkReturned: (c, e) => (e.hidden ? stay(c) : retryNow(c)),
  },
  superseded: { connect: start, reconnect: start, disconnect: close },
  loginRequired: { connect: start, reconnect: start, disconnect: close },
  updateRequired: { connect: start, reconnect: start, disconnect: close },
  closed: {},
};

/** The one entry point: the next connection and what to do, in order. `rules` is for tests. */
export function step(c: Connection, event: ConnectionEvent, rules: CloseRules = CLOSE_RULES): Step {
  const id = 'socket' in event ? event.socket : 'attempt' in event ? event.attempt : undefined;
  if (id !== undefined && id !== idOf(c.phase)) return stay(c);
  const handler = TABLE[c.phase.name][event.type] as ((c: Connection, e: ConnectionEvent, rules: CloseRules) => Step) | undefined;
  return handler ? handler(c, event, rules) : stay(c);
}

// ── queries ──────────────────────────────────────────────────────────────────

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'superseded' | 'disconnected';

/** The state the app sees (MeshClient.state, onStateChange); an attempt after a first connection is 'reconnecting'. */
export function publicState(c: Connection): ConnectionState {
  return attempting(c) && c.everConnected ? 'reconnecting' : PUBLIC_STATE[c.phase.name];
}

const PUBLIC_STATE: { readonly [P in Phase['name']]: ConnectionState } = {
  idle: 'disconnected', authorizing: 'connecting', opening: 'connecting', connected: 'connected',
  backingOff: 'reconnecting', superseded: 'superseded', loginRequired: 'disconnected', updateRequired: 'disconnected', closed: 'disconnected',
};

/** Whether an attempt is under way (connect() then returns its promise). */
export function attempting(c: Connection): boolean {
  return c.phase.name === 'authorizing' || c.phase.name === 'opening';
}

/** The socket whose frames count: the one opening or connected. */
export function currentSocket(c: Connection): SocketId | undefined {
  return c.phase.name === 'opening' || c.phase.name === 'connected' ? c.phase.socket : undefined;
}

/** Why a new call fails at once, or undefined when it may be queued or sent. */
export function refusal(c: Connection): Stopped | undefined {
  const { phase } = c;
  return phase.name === 'superseded' || phase.name === 'loginRequired' || phase.name === 'updateRequired' || phase.name === 'closed' ? phase : undefined;
}

// ── transitions ──────────────────────────────────────────────────────────────

function idOf(phase: Phase): SocketId | undefined {
  return phase.name === 'authorizing' ? phase.attempt : phase.name === 'opening' || phase.name === 'connected' ? phase.socket : undefined;
}

function stay(c: Connection): Step {
  return { state: c, effects: [] };
}

function report(problem: Problem): Effect {
  return { type: 'report', problem };
}

/** A new attempt, after `lead` (what the phase being left needs done first). */
function startAttempt(c: Connection, lead: Effect[] = []): Step {
  const attempt = c.nextId;
  return { state: { ...c, phase: { name: 'authorizing', attempt }, nextId: attempt + 1 }, effects: [...lead, { type: 'fetchCredentials', attempt }] };
}

function start(c: Connection): Step {
  return startAttempt(c);
}

function retryNow(c: Connection): Step {
  return startAttempt(c, [{ type: 'cancelRetry' }]);
}

function closeCurrent(c: Connection, reason: string): Effect[] {
  const socket = currentSocket(c);
  return socket === undefined ? [] : [{ type: 'closeSocket', socket, code: WS_CLOSE_NORMAL, reason }];
}

function retireCurrent(c: Connection): Effect[] {
  const socket = currentSocket(c);
  return socket === undefined ? [] : [{ type: 'retireSocket', socket }];
}

function close(c: Connection): Step {
  return leave(c, { name: 'closed' }, { code: WS_CLOSE_NORMAL, reason: 'Client disconnected' });
}

function credentialsFailed(c: Connection, e: EventOf<'credentialsFailed'>): Step {
  const { failure } = e;
  if (failure.kind === 'login') return leave({ ...c, failedRefreshes: 0 }, { name: 'loginRequired', reason: failure.reason }, 'forget');
  if (failure.kind === 'other') return leave(c, { name: 'backingOff' }, 'forget', [report({ kind: 'error', error: failure.error })]);
  const failedRefreshes = c.failedRefreshes + 1;
  const lead = failedRefreshes === FAILURES_BEFORE_REPORT ? [report({ kind: 'refreshesFailing', last: failure.error })] : [];
  return leave({ ...c, failedRefreshes }, { name: 'backingOff' }, 'forget', lead);
}

function connected(c: Connection, e: EventOf<'status'>): Step {
  const { status } = e;
  const effects: Effect[] = [];
  if (c.retired !== undefined) effects.push({ type: 'closeSocket', socket: c.retired, code: WS_CLOSE_NORMAL, reason: 'Replaced' });
  effects.push(
    { type: 'adoptStatus', status },
    { type: 'flushCalls', subscriptionRequired: status.subscriptionRequired },
    { type: 'notify', notice: { name: 'connected', subscriptionRequired: status.subscriptionRequired, firstConnection: !c.everConnected } },
  );
  if (status.subscriptionRequired) effects.push({ type: 'notify', notice: { name: 'subscriptionRequired' } });
  return {
    state: { ...c, phase: { name: 'connected', socket: e.socket }, retired: undefined, everConnected: true, failedAttempts: 0, retries: 0, reportedCloses: [] },
    effects,
  };
}

/**
 * An attempt that ended before the gateway's status. Browsers hide why an
 * upgrade failed, so the third in a row is reported once, with what to check.
 */
function attemptFailed(c: Connection, how: string): { c: Connection; lead: Effect[] } {
  if (c.phase.name !== 'opening') return { c, lead: [] };
  const failedAttempts = c.failedAttempts + 1;
  return { c: { ...c, failedAttempts }, lead: failedAttempts === FAILURES_BEFORE_REPORT ? [report({ kind: 'attemptsFailing', last: how })] : [] };
}

function closedByServer(c0: Connection, e: EventOf<'closed'>, rules: CloseRules): Step {
  const rule = rules.get(e.code) ?? { then: 'retry' };
  // A close whose rule reports it says why itself: it does not count towards "attempts failing".
  const failed = rule.report ? { c: c0, lead: [] } : attemptFailed(c0, `closed with ${e.code}${e.reason ? ` "${e.reason}"` : ''}${e.failure ? `: ${e.failure}` : ''}`);
  let c = failed.c;
  const lead = failed.lead;
  if (rule.report && !c.reportedCloses.includes(e.code)) {
    lead.push(report({ kind: 'error', error: rule.report(e.reason) }));
    c = { ...c, reportedCloses: [...c.reportedCloses, e.code] };
  }
  if (rule.dropToken) lead.push({ type: 'dropToken' });
  if (rule.then === 'superseded') return leave(c, { name: 'superseded' }, 'forget', lead);
  if (rule.then === 'loginRequired') return leave(c, { name: 'loginRequired', reason: e.reason || `closed with ${e.code}` }, 'forget', lead);
  if (rule.then === 'updateRequired') return leave(c, { name: 'updateRequired', reason: e.reason || `closed with ${e.code}` }, 'forget', lead);
  if (rule.dropToken && !c.canRefresh) return leave(c, { name: 'loginRequired', reason: 'token expired and no refresh is configured' }, 'forget', lead);
  return leave(c, { name: 'backingOff' }, 'forget', lead);
}

function dead(c0: Connection, e: EventOf<'dead'>): Step {
  const { c, lead } = attemptFailed(c0, e.reason.toLowerCase());
  return leave(c, { name: 'backingOff' }, { code: 4000, reason: e.reason }, lead);
}

/** Why a socket kept by reconnect() is closed, by where the client goes instead of to its replacement. */
const RETIRED_CLOSE_REASON = { backingOff: 'Replacement failed', superseded: 'Superseded', loginRequired: 'Login required', updateRequired: 'Update required', closed: 'Client disconnected' } as const;

/**
 * The one way out of an attempt or a connection: after `lead`, release the
 * current socket (close it with `current`, or forget one already gone), close
 * a socket kept by reconnect() (the gateway must see the client gone, or it
 * would keep calling it), stop the backoff timer, then either schedule the
 * next attempt or fail every unsettled call and tell the app.
 */
function leave(c: Connection, next: { name: 'backingOff' } | Stopped, current: 'forget' | { code: number; reason: string }, lead: Effect[] = []): Step {
  const effects = [...lead];
  const socket = currentSocket(c);
  if (socket !== undefined) effects.push(current === 'forget' ? { type: 'forgetSocket', socket } : { type: 'closeSocket', socket, ...current });
  if (c.retired !== undefined) effects.push({ type: 'closeSocket', socket: c.retired, code: WS_CLOSE_NORMAL, reason: RETIRED_CLOSE_REASON[next.name] });
  if (c.phase.name === 'backingOff') effects.push({ type: 'cancelRetry' });
  const left: Connection = { ...c, phase: next, retired: undefined };
  if (next.name === 'backingOff') {
    effects.push({ type: 'scheduleRetry', retry: c.retries });
    return { state: { ...left, retries: c.retries + 1 }, effects };
  }
  effects.push({ type: 'failCalls', because: next });
  if (next.name === 'superseded') effects.push({ type: 'notify', notice: { name: 'superseded' } });
  if (next.name === 'loginRequired') effects.push({ type: 'notify', notice: { name: 'loginRequired', reason: next.reason } });
  if (next.name === 'updateRequired') effects.push({ type: 'notify', notice: { name: 'updateRequired', reason: next.reason } });
  if (next.name === 'closed') effects.push({ type: 'dispose' });
  return { state: left, effects };
}
