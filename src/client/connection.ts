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
 * row of `CLOSE_RULES` (connection-model.ts, with the types the machine works on).
 *
 * connect()'s promise is not an effect: it settles whenever the phase is
 * neither `authorizing` nor `opening` (see `attempting`).
 */
import { WS_CLOSE_NORMAL } from '../protocol/close-codes.js';
import { ProtocolError } from '../protocol/errors.js';
import { CLOSE_RULES, FAILURES_BEFORE_REPORT, type CloseRules, type Connection, type ConnectionEvent, type Effect, type Phase, type Problem, type SocketId, type Step, type Stopped } from './connection-model.js';

export * from './connection-model.js';

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
