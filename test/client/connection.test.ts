/**
 * The connection core on its own: one case table of (state, event) →
 * (state, effects), then random event sequences checked against the
 * properties every step must keep. No sockets, no timers.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CLOSE_RULES, initialConnection, publicState, refusal, step,
  type Connection, type ConnectionEvent, type Effect, type Phase,
} from '../../src/client/connection.js';
import { LoginRequiredError, ProtocolError, TooManyConnectionsError, UnsupportedProtocolError } from '../../src/protocol/errors.js';
import type { ConnectionStatusFrame } from '../../src/protocol/frames.js';

const base = initialConnection({ canRefresh: true });
/** A client that has connected before, whose next attempt is number 6; the current socket, where there is one, is 5. */
const at = (phase: Phase, extra: Partial<Connection> = {}): Connection => ({ ...base, everConnected: true, nextId: 6, ...extra, phase });

const idle: Phase = { name: 'idle' };
const authorizing: Phase = { name: 'authorizing', attempt: 5 };
const opening: Phase = { name: 'opening', socket: 5 };
const connected: Phase = { name: 'connected', socket: 5 };
const backingOff: Phase = { name: 'backingOff' };
const superseded: Phase = { name: 'superseded' };
const loginRequired: Phase = { name: 'loginRequired', reason: 'Token invalid' };
const closed: Phase = { name: 'closed' };

const status = (subscriptionRequired: boolean): ConnectionStatusFrame => ({ type: 'connection_status', subscriptionRequired, instanceName: 'alice.tab', sub: 'alice', protocol: 1, epoch: 'e1' });
const closedWith = (code: number, reason = '', socket = 5, failure?: string): ConnectionEvent => ({ type: 'closed', socket, code, reason, failure });
const refreshError = new Error('Token refresh answered 503');

const fetch6: Effect = { type: 'fetchCredentials', attempt: 6 };
const retry = (n: number): Effect => ({ type: 'scheduleRetry', retry: n });
const close = (socket: number, code: number, reason: string): Effect => ({ type: 'closeSocket', socket, code, reason });
const forget5: Effect = { type: 'forgetSocket', socket: 5 };
const fail = (because: Phase): Effect => ({ type: 'failCalls', because } as Effect);
const notify = (notice: Extract<Effect, { type: 'notify' }>['notice']): Effect => ({ type: 'notify', notice });

type Case = [name: string, given: Connection, event: ConnectionEvent, expected: Partial<Connection>, effects: Effect[]];

const CASES: Case[] = [
  // starting an attempt
  ['idle: connect starts an attempt', at(idle), { type: 'connect' }, { phase: { name: 'authorizing', attempt: 6 }, nextId: 7 }, [fetch6]],
  ['idle: reconnect is a connect', at(idle), { type: 'reconnect' }, { phase: { name: 'authorizing', attempt: 6 }, nextId: 7 }, [fetch6]],
  ['authorizing: connect joins the attempt', at(authorizing), { type: 'connect' }, { phase: authorizing }, []],
  ['authorizing: reconnect joins the attempt (no socket to replace yet)', at(authorizing), { type: 'reconnect' }, { phase: authorizing }, []],
  ['opening: connect joins the attempt', at(opening), { type: 'connect' }, { phase: opening }, []],
  ['connected: connect does nothing', at(connected), { type: 'connect' }, { phase: connected }, []],
  ['backingOff: the timer starts the next attempt', at(backingOff), { type: 'retryDue' }, { phase: { name: 'authorizing', attempt: 6 }, nextId: 7 }, [fetch6]],
  ['backingOff: connect skips the wait', at(backingOff), { type: 'connect' }, { phase: { name: 'authorizing', attempt: 6 }, nextId: 7 }, [{ type: 'cancelRetry' }, fetch6]],
  ['backingOff: the network returning in a visible tab skips the wait', at(backingOff), { type: 'networkReturned', hidden: false }, { phase: { name: 'authorizing', attempt: 6 }, nextId: 7 }, [{ type: 'cancelRetry' }, fetch6]],
  ['backingOff: a hidden tab waits out the backoff', at(backingOff), { type: 'networkReturned', hidden: true }, { phase: backingOff }, []],
  ['connected: the network returning changes nothing', at(connected), { type: 'networkReturned', hidden: false }, { phase: connected }, []],
  ['superseded: only the app brings it back', at(superseded), { type: 'retryDue' }, { phase: superseded }, []],
  ['superseded: connect takes the identity back', at(superseded), { type: 'connect' }, { phase: { name: 'authorizing', attempt: 6 }, nextId: 7 }, [fetch6]],
  ['loginRequired: connect tries again', at(loginRequired), { type: 'connect' }, { phase: { name: 'authorizing', attempt: 6 }, nextId: 7 }, [fetch6]],

  // credentials
  ['authorizing: a token opens the socket', at(authorizing, { failedRefreshes: 2 }), { type: 'credentialsReady', attempt: 5, token: 't' }, { phase: opening, failedRefreshes: 0 }, [{ type: 'openSocket', socket: 5, token: 't' }]],
  ['authorizing: a token for an attempt given up is ignored', at(authorizing), { type: 'credentialsReady', attempt: 4, token: 't' }, { phase: authorizing }, []],
  ['authorizing: a transient refresh failure backs off', at(authorizing, { retries: 2 }), { type: 'credentialsFailed', attempt: 5, failure: { kind: 'refresh', error: refreshError } }, { phase: backingOff, failedRefreshes: 1, retries: 3 }, [retry(2)]],
  ['authorizing: the third transient refresh failure in a row is reported', at(authorizing, { failedRefreshes: 2 }), { type: 'credentialsFailed', attempt: 5, failure: { kind: 'refresh', error: refreshError } }, { phase: backingOff, failedRefreshes: 3, retries: 1 }, [{ type: 'report', problem: { kind: 'refreshesFailing', last: refreshError } }, retry(0)]],
  ['authorizing: an unexpected failure is reported and retried', at(authorizing), { type: 'credentialsFailed', attempt: 5, failure: { kind: 'other', error: refreshError } }, { phase: backingOff, retries: 1 }, [{ type: 'report', problem: { kind: 'error', error: refreshError } }, retry(0)]],
  ['authorizing: login required stops, closing the socket reconnect() kept', at(authorizing, { retired: 3 }), { type: 'credentialsFailed', attempt: 5, failure: { kind: 'login', reason: 'no sub' } }, { phase: { name: 'loginRequired', reason: 'no sub' }, retired: undefined }, [close(3, 1000, 'Login required'), fail({ name: 'loginRequired', reason: 'no sub' }), notify({ name: 'loginRequired', reason: 'no sub' })]],
  ['opening: a socket the runtime refused to build is reported and retried', at(opening), { type: 'socketUnavailable', socket: 5, error: refreshError }, { phase: backingOff, retries: 1 }, [{ type: 'report', problem: { kind: 'error', error: refreshError } }, forget5, retry(0)]],

  // the gateway's status
  ['opening: the socket opened, so its heartbeat starts', at(opening), { type: 'opened', socket: 5 }, { phase: opening }, [{ type: 'startHeartbeat', socket: 5 }]],
  ['opening: the first status connects; the socket reconnect() kept closes; calls flush; the app re-subscribes',
    at(opening, { everConnected: false, retired: 3, failedAttempts: 2, retries: 4, reportedCloses: [4429] }), { type: 'status', socket: 5, status: status(true) },
    { phase: connected, retired: undefined, everConnected: true, failedAttempts: 0, retries: 0, reportedCloses: [] },
    [close(3, 1000, 'Replaced'), { type: 'adoptStatus', status: status(true) }, { type: 'flushCalls', subscriptionRequired: true },
      notify({ name: 'connected', subscriptionRequired: true, firstConnection: true }), notify({ name: 'subscriptionRequired' })]],
  ['opening: a gateway that remembers this client asks for no re-subscription', at(opening), { type: 'status', socket: 5, status: status(false) }, { phase: connected },
    [{ type: 'adoptStatus', status: status(false) }, { type: 'flushCalls', subscriptionRequired: false }, notify({ name: 'connected', subscriptionRequired: false, firstConnection: false })]],
  ['connected: a repeated status is reported, never acted on', at(connected), { type: 'status', socket: 5, status: status(true) }, { phase: connected },
    [{ type: 'report', problem: { kind: 'error', error: new ProtocolError('connection_status repeated on the same socket; ignored.') } }]],

  // supersession
  ['connected: the in-band superseded frame stops at once', at(connected), { type: 'superseded', socket: 5 }, { phase: superseded }, [close(5, 1000, 'Superseded'), fail(superseded), notify({ name: 'superseded' })]],
  ['opening: superseded closes the socket reconnect() kept too', at(opening, { retired: 3 }), { type: 'superseded', socket: 5 }, { phase: superseded, retired: undefined }, [close(5, 1000, 'Superseded'), close(3, 1000, 'Superseded'), fail(superseded), notify({ name: 'superseded' })]],
  ['connected: 4409 on the current socket stops', at(connected), closedWith(4409), { phase: superseded }, [forget5, fail(superseded), notify({ name: 'superseded' })]],
  ['connected: a replaced socket\'s late 4409 changes nothing', at(connected), closedWith(4409, 'Superseded by new connection', 3), { phase: connected }, []],
  ['connected: a replaced socket\'s superseded frame changes nothing', at(connected), { type: 'superseded', socket: 3 }, { phase: connected }, []],

  // closes
  ['connected: a dropped socket backs off', at(connected, { retries: 1 }), closedWith(1006), { phase: backingOff, retries: 2 }, [forget5, retry(1)]],
  ['opening: a close before the status counts as a failed attempt', at(opening), closedWith(1006), { phase: backingOff, failedAttempts: 1, retries: 1 }, [forget5, retry(0)]],
  ['opening: the third failed attempt in a row is reported with how it ended', at(opening, { failedAttempts: 2 }), closedWith(1006, 'x', 5, 'Unexpected server response: 404'), { phase: backingOff, failedAttempts: 3, retries: 1 },
    [{ type: 'report', problem: { kind: 'attemptsFailing', last: 'closed with 1006 "x": Unexpected server response: 404' } }, forget5, retry(0)]],
  ['opening: the replacement failed, so the socket reconnect() kept closes', at(opening, { retired: 3 }), closedWith(1011), { phase: backingOff, retired: undefined, failedAttempts: 1, retries: 1 }, [forget5, close(3, 1000, 'Replacement failed'), retry(0)]],
  ['connected: 4403 means log in again', at(connected), closedWith(4403, 'Token invalid'), { phase: loginRequired }, [forget5, fail(loginRequired), notify({ name: 'loginRequired', reason: 'Token invalid' })]],
  ['opening: 4400 with no reason names the code', at(opening), closedWith(4400), { phase: { name: 'loginRequired', reason: 'closed with 4400' }, failedAttempts: 1 }, [forget5, fail({ name: 'loginRequired', reason: 'closed with 4400' }), notify({ name: 'loginRequired', reason: 'closed with 4400' })]],
  ['connected: 4401 drops the token and retries', at(connected), closedWith(4401, 'Token expired'), { phase: backingOff, retries: 1 }, [{ type: 'dropToken' }, forget5, retry(0)]],
  ['connected: 4401 with no refresh configured means log in again', at(connected, { canRefresh: false }), closedWith(4401), { phase: { name: 'loginRequired', reason: 'token expired and no refresh is configured' } },
    [{ type: 'dropToken' }, forget5, fail({ name: 'loginRequired', reason: 'token expired and no refresh is configured' }), notify({ name: 'loginRequired', reason: 'token expired and no refresh is configured' })]],

  ['opening: 4429 (one connection too many) is reported once, not counted as a failed attempt, and retried', at(opening, { failedAttempts: 2 }), closedWith(4429, 'Too many open tabs'), { phase: backingOff, failedAttempts: 2, retries: 1, reportedCloses: [4429] },
    [{ type: 'report', problem: { kind: 'error', error: new TooManyConnectionsError('Too many open tabs') } }, forget5, retry(0)]],
  ['opening: 4426 (no protocol version in common) stops with updateRequired, reported once, no retry', at(opening), closedWith(4426, 'Unsupported protocol'),
    { phase: { name: 'updateRequired', reason: 'Unsupported protocol' }, retries: 0, reportedCloses: [4426] },
    [{ type: 'report', problem: { kind: 'error', error: new UnsupportedProtocolError('Unsupported protocol') } }, forget5,
      fail({ name: 'updateRequired', reason: 'Unsupported protocol' }), notify({ name: 'updateRequired', reason: 'Unsupported protocol' })]],
  ['updateRequired: connect() tries again (after a rollback, say)', at({ name: 'updateRequired', reason: 'x' }), { type: 'connect' }, { phase: { name: 'authorizing', attempt: 6 }, nextId: 7 }, [fetch6]],
  ['opening: a second 4429 in the same run is not reported again', at(opening, { reportedCloses: [4429] }), closedWith(4429, 'Too many open tabs'), { phase: backingOff, retries: 1, reportedCloses: [4429] }, [forget5, retry(0)]],

  // liveness
  ['connected: no pong in time drops the socket and backs off', at(connected), { type: 'dead', socket: 5, reason: 'Heartbeat timeout' }, { phase: backingOff, failedAttempts: 0, retries: 1 }, [close(5, 4000, 'Heartbeat timeout'), retry(0)]],
  ['opening: a handshake past its deadline is a failed attempt', at(opening, { failedAttempts: 2 }), { type: 'dead', socket: 5, reason: 'Handshake timeout' }, { phase: backingOff, failedAttempts: 3, retries: 1 },
    [{ type: 'report', problem: { kind: 'attemptsFailing', last: 'handshake timeout' } }, close(5, 4000, 'Handshake timeout'), retry(0)]],
  ['backingOff: a dead socket\'s late deadline changes nothing', at(backingOff), { type: 'dead', socket: 5, reason: 'Heartbeat timeout' }, { phase: backingOff }, []],

  // reconnect()
  ['connected: reconnect keeps the socket open until the new one connects', at(connected), { type: 'reconnect' }, { phase: { name: 'authorizing', attempt: 6 }, nextId: 7, retired: 5 }, [{ type: 'retireSocket', socket: 5 }, fetch6]],
  ['opening: reconnect closes the socket still opening (one kept socket at most)', at(opening, { retired: 3 }), { type: 'reconnect' }, { phase: { name: 'authorizing', attempt: 6 }, nextId: 7, retired: 3 }, [close(5, 1000, 'Replaced'), fetch6]],

  // disconnect()
  ['connected: disconnect closes everything and fails calls', at(connected), { type: 'disconnect' }, { phase: closed }, [close(5, 1000, 'Client disconnected'), fail(closed), { type: 'dispose' }]],
  ['opening: disconnect closes the kept socket too', at(opening, { retired: 3 }), { type: 'disconnect' }, { phase: closed, retired: undefined }, [close(5, 1000, 'Client disconnected'), close(3, 1000, 'Client disconnected'), fail(closed), { type: 'dispose' }]],
  ['backingOff: disconnect cancels the timer', at(backingOff), { type: 'disconnect' }, { phase: closed }, [{ type: 'cancelRetry' }, fail(closed), { type: 'dispose' }]],
  ['authorizing: disconnect leaves the token fetch to be ignored', at(authorizing), { type: 'disconnect' }, { phase: closed }, [fail(closed), { type: 'dispose' }]],
  ['superseded: disconnect still fails calls and disposes', at(superseded), { type: 'disconnect' }, { phase: closed }, [fail(closed), { type: 'dispose' }]],
  ['closed: nothing brings it back', at(closed), { type: 'connect' }, { phase: closed }, []],
  ['closed: a late token is ignored', at(closed), { type: 'credentialsReady', attempt: 5, token: 't' }, { phase: closed }, []],
  ['closed: a second disconnect does nothing', at(closed), { type: 'disconnect' }, { phase: closed }, []],
];

describe('the connection core, case by case', () => {
  it.each(CASES)('%s', (_name, given, event, expected, effects) => {
    const result = step(given, event);
    expect(result.state).toEqual({ ...given, ...expected });
    expect(result.effects).toEqual(effects);
  });

  it('a close code without a rule of its own is retried', () => {
    for (const code of [1000, 1001, 1006, 1008, 1009, 1011, 4000, 4999]) {
      expect(CLOSE_RULES.has(code)).toBe(false);
      expect(step(at(connected), closedWith(code)).state.phase).toEqual(backingOff);
    }
  });

  it('a close rule with a report reports its first close since the last connection only', () => {
    const rules = new Map(CLOSE_RULES).set(4999, { then: 'retry', report: (reason) => new Error(`too many: ${reason}`) });
    const first = step(at(opening), closedWith(4999, 'cap 3'), rules);
    expect(first.effects).toEqual([{ type: 'report', problem: { kind: 'error', error: new Error('too many: cap 3') } }, forget5, retry(0)]);
    expect(first.state.reportedCloses).toEqual([4999]);
    const again = step({ ...first.state, phase: opening }, closedWith(4999, 'cap 3'), rules);
    expect(again.effects).toEqual([forget5, retry(1)]);
    const afterConnecting = step(step({ ...again.state, phase: opening }, { type: 'status', socket: 5, status: status(false) }, rules).state, closedWith(4999, 'cap 3'), rules);
    expect(afterConnecting.effects[0]).toMatchObject({ type: 'report' });
  });

  it('the state the app sees, and whether a call may wait', () => {
    const fresh = { ...at(idle), everConnected: false };
    const seen = [idle, authorizing, opening, connected, backingOff, superseded, loginRequired, closed].map((phase) => [
      phase.name, publicState({ ...fresh, phase }), publicState(at(phase)), refusal(at(phase))?.name ?? 'may wait',
    ]);
    expect(seen).toEqual([
      ['idle', 'disconnected', 'disconnected', 'may wait'],
      ['authorizing', 'connecting', 'reconnecting', 'may wait'],
      ['opening', 'connecting', 'reconnecting', 'may wait'],
      ['connected', 'connected', 'connected', 'may wait'],
      ['backingOff', 'reconnecting', 'reconnecting', 'may wait'],
      ['superseded', 'superseded', 'superseded', 'superseded'],
      ['loginRequired', 'disconnected', 'disconnected', 'loginRequired'],
      ['closed', 'disconnected', 'disconnected', 'closed'],
    ]);
    expect(new LoginRequiredError((refusal(at(loginRequired)) as { reason: string }).reason).message).toBe('Login required: Token invalid');
  });
});
