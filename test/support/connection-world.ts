/**
 * The connection core driven directly: random events go through `step`, the
 * effects are carried out on a model of the world (which sockets are live,
 * whether a retry timer is set), and every step is checked against the
 * properties the table must keep.
 */
import fc from 'fast-check';
import { expect } from 'vitest';
import {
  currentSocket, initialConnection, step, type Connection, type ConnectionEvent, type Effect, type Phase, type SocketId,
} from '../../src/client/connection.js';

/** Which socket or attempt an event names: the current one, the one kept by reconnect(), or one long gone. */
type Target = 'current' | 'retired' | 'stale';

export type CoreAction =
  | { e: 'connect' | 'reconnect' | 'disconnect' | 'retryDue' }
  | { e: 'networkReturned'; hidden: boolean }
  | { e: 'credentialsReady' | 'opened' | 'superseded' | 'socketUnavailable'; to: Target }
  | { e: 'credentialsFailed'; to: Target; kind: 'refresh' | 'login' | 'other' }
  | { e: 'status'; to: Target; subscriptionRequired: boolean }
  | { e: 'closed'; to: Target; code: number }
  | { e: 'dead'; to: Target };

const target = fc.constantFrom<Target>('current', 'current', 'current', 'current', 'retired', 'stale');

export const coreAction: fc.Arbitrary<CoreAction> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ e: fc.constantFrom('connect' as const, 'reconnect' as const, 'retryDue' as const) }) },
  fc.record({ e: fc.constant('disconnect' as const) }),
  fc.record({ e: fc.constant('networkReturned' as const), hidden: fc.boolean() }),
  { weight: 3, arbitrary: fc.record({ e: fc.constantFrom('credentialsReady' as const, 'opened' as const, 'superseded' as const, 'socketUnavailable' as const), to: target }) },
  { weight: 2, arbitrary: fc.record({ e: fc.constant('credentialsFailed' as const), to: target, kind: fc.constantFrom('refresh' as const, 'login' as const, 'other' as const) }) },
  { weight: 3, arbitrary: fc.record({ e: fc.constant('status' as const), to: target, subscriptionRequired: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ e: fc.constant('closed' as const), to: target, code: fc.constantFrom(1000, 1006, 1008, 1011, 4400, 4401, 4403, 4409) }) },
  fc.record({ e: fc.constant('dead' as const), to: target }),
);

function idOf(phase: Phase): SocketId | undefined {
  return phase.name === 'authorizing' ? phase.attempt : currentSocket({ phase } as Connection);
}

/** What the effects have done to the world so far. */
export class World {
  connection: Connection;
  readonly live = new Set<SocketId>();
  readonly opened = new Set<SocketId>();
  retryPending = false;
  readonly reached = new Set<string>();

  constructor(canRefresh: boolean) {
    this.connection = initialConnection({ canRefresh });
  }

  event(a: CoreAction): ConnectionEvent {
    const c = this.connection;
    const id = !('to' in a) ? 0 : a.to === 'current' ? idOf(c.phase) ?? 0 : a.to === 'retired' ? c.retired ?? 0 : Math.max(0, c.nextId - 3);
    const status = { type: 'connection_status' as const, subscriptionRequired: false, instanceName: 'a.t', sub: 'a', protocol: 1 };
    switch (a.e) {
      case 'networkReturned': return { type: 'networkReturned', hidden: a.hidden };
      case 'credentialsReady': return { type: 'credentialsReady', attempt: id, token: 't' };
      case 'credentialsFailed':
        return { type: 'credentialsFailed', attempt: id, failure: a.kind === 'login' ? { kind: 'login', reason: 'r' } : { kind: a.kind, error: new Error('x') } };
      case 'opened': case 'superseded': return { type: a.e, socket: id };
      case 'socketUnavailable': return { type: 'socketUnavailable', socket: id, error: new Error('x') };
      case 'status': return { type: 'status', socket: id, status: { ...status, subscriptionRequired: a.subscriptionRequired } };
      case 'closed': return { type: 'closed', socket: id, code: a.code, reason: '' };
      case 'dead': return { type: 'dead', socket: id, reason: 'Heartbeat timeout' };
      default: return { type: a.e };
    }
  }

  /** Steps the core once, carries out the effects on the model and checks every property. */
  apply(a: CoreAction): void {
    const before = this.connection;
    const event = this.event(a);
    if (event.type === 'retryDue') {
      if (!this.retryPending) return; // a timer only fires when one is set
      this.retryPending = false;
    }
    const frozen = structuredClone(before);
    const result = step(deepFreeze(frozen), event);
    expect(step(structuredClone(before), event), 'step is a function of its inputs').toEqual(result);
    const { state, effects } = result;
    this.connection = state;
    this.reached.add(`${before.phase.name} → ${state.phase.name}`);
    const where = `${before.phase.name} + ${JSON.stringify(event)} → ${state.phase.name}`;
    if (before.phase.name === 'closed') expect(effects, `closed is final: ${where}`).toEqual([]);
    for (const effect of effects) this.#carryOut(effect, where);
    this.#check(before, state, effects, where);
  }

  #carryOut(effect: Effect, where: string): void {
    switch (effect.type) {
      case 'openSocket':
        expect(this.opened.has(effect.socket), `a socket id opened twice: ${where}`).toBe(false);
        this.opened.add(effect.socket);
        this.live.add(effect.socket);
        return;
      case 'closeSocket':
      case 'forgetSocket':
        expect(this.live.has(effect.socket), `${effect.type} of a socket not live: ${where}`).toBe(true);
        this.live.delete(effect.socket);
        return;
      case 'retireSocket':
      case 'startHeartbeat':
        expect(this.live.has(effect.socket), `${effect.type} of a socket not live: ${where}`).toBe(true);
        return;
      case 'scheduleRetry':
        expect(this.retryPending, `two retry timers: ${where}`).toBe(false);
        this.retryPending = true;
        return;
      case 'cancelRetry':
        this.retryPending = false;
    }
  }

  #check(before: Connection, after: Connection, effects: readonly Effect[], where: string): void {
    const entered = before.phase.name !== after.phase.name ? after.phase.name : undefined;
    const count = (type: Effect['type']) => effects.filter((e) => e.type === type).length;
    const current = currentSocket(after);
    // Sockets: only the current one and the one kept by reconnect() are live.
    expect([...this.live].every((s) => s === current || s === after.retired), `a socket left behind: ${where}`).toBe(true);
    if (current !== undefined) expect(this.live.has(current), `the current socket is not live: ${where}`).toBe(true);
    if (after.retired !== undefined) {
      expect(['authorizing', 'opening'], `a kept socket outside an attempt: ${where}`).toContain(after.phase.name);
      expect(this.live.has(after.retired), `the kept socket is not live: ${where}`).toBe(true);
    }
    // Timers: one retry timer, set exactly while backing off.
    expect(this.retryPending, `retry timer vs phase: ${where}`).toBe(after.phase.name === 'backingOff');
    // Calls fail, and the app hears of a stop, exactly when the client stops.
    const stops = entered === 'superseded' || entered === 'loginRequired' || entered === 'closed';
    expect(count('failCalls'), `failCalls: ${where}`).toBe(stops ? 1 : 0);
    if (stops) expect(effects.find((e) => e.type === 'failCalls')).toEqual({ type: 'failCalls', because: after.phase });
    const notices = effects.flatMap((e) => (e.type === 'notify' ? [e.notice.name] : []));
    expect(notices.includes('connected'), `notify connected: ${where}`).toBe(entered === 'connected');
    expect(notices.includes('superseded'), `notify superseded: ${where}`).toBe(entered === 'superseded');
    expect(notices.includes('loginRequired'), `notify loginRequired: ${where}`).toBe(entered === 'loginRequired');
    // An attempt starts with a token fetch, and only then.
    const fetches = effects.filter((e) => e.type === 'fetchCredentials');
    const startedAttempt = after.phase.name === 'authorizing' && idOf(after.phase) !== idOf(before.phase);
    expect(fetches, `fetchCredentials: ${where}`).toEqual(startedAttempt ? [{ type: 'fetchCredentials', attempt: idOf(after.phase) }] : []);
    expect(count('dispose'), `dispose: ${where}`).toBe(entered === 'closed' ? 1 : 0);
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
