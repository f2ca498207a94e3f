/**
 * Random schedules against one MeshClient over FakeSocket and fake timers, in
 * three parts: `FakeGateway` (what the server thinks of each socket), `act`
 * (one schedule action, as a gateway or the app would do it) and
 * `checkInvariants` (what must hold after every action).
 */
import { expect, vi } from 'vitest';
import { MeshClient, type ConnectionState } from '../../src/client/index.js';
import { decodeValue, encodeValue } from '../../src/protocol/codec.js';
import {
  CallTimeoutError, ClientClosedError, LimitExceededError, LoginRequiredError, OutcomeUnknownError, ProtocolError, SupersededError,
} from '../../src/protocol/errors.js';
import { FakeSocket } from './fake-socket.js';

export type Action =
  | { k: 'call'; timeoutMs: number | undefined }
  | { k: 'open'; subscriptionRequired: boolean }
  | { k: 'refuse'; code: number }
  | { k: 'drop'; code: number }
  | { k: 'answer'; pick: number; how: 'ok' | 'error' | 'expired' | 'stale' | 'twice' }
  | { k: 'incoming'; again: boolean }
  | { k: 'foreignSupersede' }
  | { k: 'lateClose' }
  | { k: 'pong' }
  | { k: 'garbage'; text: string }
  | { k: 'reconnect' }
  | { k: 'connect' }
  | { k: 'disconnect' }
  | { k: 'advance'; ms: number };

export const CALL_TIMEOUT_MS = 3000;
const TOKEN = `e30.${Buffer.from(JSON.stringify({ sub: 'alice' })).toString('base64url')}.sig`;
const SUPERSEDED = 'Superseded by new connection';

/** Lets the client's awaited promises run. */
export async function flush(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** The server side: each socket is waiting for its upgrade, open, or closed / superseded by the server. */
export class FakeGateway {
  readonly #server = new Map<FakeSocket, 'pending' | 'open' | 'gone'>();
  /** superseded sockets whose 4409 close has not arrived yet (it may never, within a schedule) */
  readonly lateCloses: FakeSocket[] = [];
  readonly answeredIds = new Set<string>();

  model(s: FakeSocket): 'pending' | 'open' | 'gone' {
    return this.#server.get(s) ?? 'pending';
  }

  last(): FakeSocket | undefined {
    return FakeSocket.instances.at(-1);
  }

  /** The newest socket, if it is still waiting for its upgrade. */
  lastPending(): FakeSocket | undefined {
    const s = this.last();
    return s && s.readyState === 0 && this.model(s) === 'pending' ? s : undefined;
  }

  lastOpen(): FakeSocket | undefined {
    const s = this.last();
    return s && this.model(s) === 'open' && s.readyState === 1 ? s : undefined;
  }

  /** Accepts a socket as the gateway does: every other open socket of the identity is superseded. */
  accept(s: FakeSocket, subscriptionRequired: boolean): void {
    this.supersedeOpen(s);
    this.#server.set(s, 'open');
    s.serverOpen(subscriptionRequired);
  }

  close(s: FakeSocket, code: number, reason: string): void {
    this.#server.set(s, 'gone');
    s.serverClose(code, reason);
  }

  supersedeOpen(except?: FakeSocket): void {
    for (const s of FakeSocket.instances) {
      if (s === except || this.model(s) !== 'open') continue;
      this.#server.set(s, 'gone');
      s.serverSend({ type: 'superseded', reason: SUPERSEDED });
      this.lateCloses.push(s);
    }
  }

  unansweredCalls(s: FakeSocket): Array<Record<string, unknown>> {
    return s.frames().filter((f) => f.type === 'call' && !this.answeredIds.has(f.id as string));
  }

  /** Sockets neither side has closed. */
  live(): FakeSocket[] {
    return FakeSocket.instances.filter((s) => s.closedWith === undefined && s.readyState < 2 && this.model(s) !== 'gone');
  }
}

interface CallRecord { arg: number; deadline: number; settledAt?: number; outcome?: 'ok' | 'rejected'; value?: unknown; error?: unknown; expectError?: boolean }

/** One client under a schedule, and what it has been seen doing. */
export class ScheduleRun {
  readonly gateway = new FakeGateway();
  readonly calls: CallRecord[] = [];
  readonly handlerRuns = new Map<string, number>();
  readonly reported: unknown[] = [];
  readonly incomingIds: string[] = [];
  readonly seen = { connected: 0, superseded: 0, loginRequired: 0 };
  state = 'disconnected' as ConnectionState;
  /** sockets created when the client stopped (superseded / login required / disconnect()) */
  stoppedSockets: number | undefined;
  closedForGood = false;
  nextArg = 0;
  nextIncoming = 0;
  readonly client: MeshClient;

  constructor() {
    FakeSocket.reset();
    this.client = new MeshClient({
      url: 'ws://mesh.test', accessToken: TOKEN, refresh: async () => TOKEN, instanceName: 'alice.tab', WebSocket: FakeSocket, browserEvents: false,
      callTimeoutMs: CALL_TIMEOUT_MS, reconnectMinDelayMs: 100, reconnectMaxDelayMs: 1000, heartbeatIntervalMs: 5000, heartbeatTimeoutMs: 2000,
      handlers: { apply: (n: number) => { const id = this.client.incomingContext!.id; this.handlerRuns.set(id, (this.handlerRuns.get(id) ?? 0) + 1); return typeof n === 'number' ? n + 1 : null; } }, // hostile garbage may pass anything (a null-prototype object makes `n + 1` throw)
      onStateChange: (next) => {
        this.state = next;
        if (next === 'connected') this.seen.connected++;
        if (next === 'superseded') this.seen.superseded++;
        if ((next === 'superseded' || next === 'disconnected') && this.stoppedSockets === undefined) this.stoppedSockets = FakeSocket.instances.length;
        if (next === 'connecting' || next === 'reconnecting' || next === 'connected') this.stoppedSockets = undefined;
      },
      onError: (error) => void this.reported.push(error),
      onLoginRequired: () => void this.seen.loginRequired++,
    });
  }

  /** Stopped for a reason (superseded, login required, disconnect()): no socket and no reconnect by itself. */
  get stopped(): boolean {
    return this.closedForGood || this.state === 'superseded' || (this.state === 'disconnected' && this.stoppedSockets !== undefined);
  }

  startCall(arg: number, timeoutMs: number | undefined): Promise<unknown> {
    const record: CallRecord = { arg, deadline: Date.now() + (timeoutMs ?? CALL_TIMEOUT_MS) };
    this.calls.push(record);
    const call = this.client.call({ binding: 'COUNTER', instance: 'c' }, 'double', [arg], timeoutMs);
    call.then(
      (value) => Object.assign(record, { outcome: 'ok', value, settledAt: Date.now() }),
      (error) => Object.assign(record, { outcome: 'rejected', error, settledAt: Date.now() }),
    );
    return call;
  }
}

/** Carries out one action, as the gateway, the network or the app would. */
export async function act(run: ScheduleRun, a: Action): Promise<void> {
  const { gateway, client } = run;
  switch (a.k) {
    case 'call':
      void run.startCall(run.nextArg++, a.timeoutMs).catch(() => undefined);
      return;
    case 'open': {
      const s = gateway.lastPending();
      if (s) gateway.accept(s, a.subscriptionRequired);
      return;
    }
    case 'refuse': {
      const s = gateway.lastPending();
      if (s) gateway.close(s, a.code, 'refused');
      return;
    }
    case 'drop': {
      const s = gateway.lastOpen();
      if (s) gateway.close(s, a.code, 'dropped');
      return;
    }
    case 'answer':
      return answer(run, a);
    case 'incoming': {
      const s = gateway.lastOpen();
      if (!s) return;
      const id = a.again && run.incomingIds.length > 0 ? run.incomingIds[run.nextIncoming % run.incomingIds.length]! : `in-${run.nextIncoming}`;
      if (!run.incomingIds.includes(id)) run.incomingIds.push(id);
      run.nextIncoming++;
      const origin = { kind: 'node', binding: 'DOC', instance: 'd' };
      s.serverSend({ type: 'incoming_call', id, method: 'apply', args: encodeValue([1]), origin, chain: [origin] });
      return;
    }
    case 'foreignSupersede':
      return gateway.supersedeOpen();
    case 'lateClose': {
      const s = gateway.lateCloses.shift();
      if (s && s.readyState !== 3) s.serverClose(4409, SUPERSEDED);
      return;
    }
    case 'pong':
      return gateway.lastOpen()?.serverSend('meshgate:pong');
    case 'garbage':
      return gateway.lastOpen()?.serverSend(a.text);
    case 'reconnect':
      run.stoppedSockets = undefined;
      client.reconnect().catch(() => undefined);
      return;
    case 'connect':
      run.stoppedSockets = undefined;
      client.connect().catch(() => undefined);
      return;
    case 'disconnect':
      run.closedForGood = true;
      client.disconnect();
      return;
    case 'advance':
      await vi.advanceTimersByTimeAsync(a.ms);
  }
}

function answer(run: ScheduleRun, a: Extract<Action, { k: 'answer' }>): void {
  const { gateway } = run;
  const pool = a.how === 'stale' ? FakeSocket.instances.slice(0, -1) : [gateway.lastOpen()].filter((s): s is FakeSocket => s !== undefined);
  const s = pool[a.pick % Math.max(pool.length, 1)];
  if (!s) return;
  const open = gateway.unansweredCalls(s);
  const f = open[a.pick % Math.max(open.length, 1)];
  if (!f) return;
  const arg = (decodeValue(f.args as string) as number[])[0]!;
  const id = f.id as string;
  if (a.how === 'expired') {
    // As the gateway does: the call did not run, and the socket closes with 4401 right after; the call is resent after the reconnect.
    s.serverSend({ type: 'call_response', id, ok: false, error: encodeValue(Object.assign(new Error('The access token expired'), { name: 'TokenExpiredError' })), retryAfterReconnect: true });
    if (gateway.model(s) === 'open') gateway.close(s, 4401, 'Token expired');
    return;
  }
  gateway.answeredIds.add(id);
  const frame = a.how === 'error'
    ? { type: 'call_response', id, ok: false, error: encodeValue(Object.assign(new Error(`refused ${arg}`), { code: 'E_TEST' })) }
    : { type: 'call_response', id, ok: true, result: encodeValue(arg * 2) };
  if (a.how === 'error') run.calls.find((c) => c.arg === arg)!.expectError = true;
  s.serverSend(frame);
  if (a.how === 'twice') s.serverSend(frame);
}

const TYPED_ERRORS = [CallTimeoutError, OutcomeUnknownError, SupersededError, ClientClosedError, LoginRequiredError, LimitExceededError];

/** What must hold after every action. */
export function checkInvariants(run: ScheduleRun, after: string): void {
  const { gateway, state } = run;
  const live = gateway.live();
  expect(live.length, `live sockets after ${after}`).toBeLessThanOrEqual(2);
  if (state === 'connected') expect(live, `connected: only the newest socket is live, after ${after}`).toEqual([gateway.last()]);
  if (run.stopped) expect(live, `no live socket in ${state}${run.closedForGood ? ' (disconnect())' : ''}, after ${after}`).toEqual([]);
  if (run.stoppedSockets !== undefined && (state === 'superseded' || state === 'disconnected')) {
    expect(FakeSocket.instances.length, `no new socket while ${state}, after ${after}`).toBe(run.stoppedSockets);
  }
  for (const s of FakeSocket.instances) {
    const ids = s.frames().filter((f) => f.type === 'call').map((f) => f.id);
    expect(new Set(ids).size, `a call sent twice on one socket, after ${after}`).toBe(ids.length);
  }
  const now = Date.now();
  for (const c of run.calls) {
    if (now >= c.deadline) expect(c.outcome, `call ${c.arg} unsettled past its deadline, after ${after}`).toBeDefined();
    if (c.settledAt !== undefined) expect(c.settledAt).toBeLessThanOrEqual(c.deadline);
    if (c.outcome === 'ok') expect(c.value).toBe(c.arg * 2);
    if (c.outcome === 'rejected') {
      const e = c.error as Error & { code?: string };
      const typed = TYPED_ERRORS.some((t) => e instanceof t);
      expect(typed || (c.expectError && e.message === `refused ${c.arg}` && e.code === 'E_TEST'), `call ${c.arg} rejected with ${e?.name}: ${e?.message}`).toBe(true);
    }
  }
  for (const [id, runs] of run.handlerRuns) expect(runs, `incoming ${id} ran twice`).toBe(1);
  for (const e of run.reported) {
    expect(e instanceof ProtocolError || (e instanceof Error && /^(Gateway reported|meshgate: 3 connection attempts)/.test(e.message)), `reported ${String(e)}`).toBe(true);
  }
}

/**
 * Unless it stopped for a reason, the client is connected again within a few
 * backoff waits once the gateway accepts, and a new call goes through.
 */
export async function expectHeals(run: ScheduleRun): Promise<void> {
  const { gateway } = run;
  for (let i = 0; i < 10 && run.state !== 'connected'; i++) {
    const s = gateway.lastPending();
    if (s) gateway.accept(s, false);
    else await vi.advanceTimersByTimeAsync(1000); // the longest backoff wait
    await flush();
  }
  expect(run.state, 'the client reconnects once the gateway accepts').toBe('connected');
  const call = run.client.call({ binding: 'COUNTER', instance: 'c' }, 'double', [-1]);
  await flush();
  const last = gateway.last()!;
  const frame = gateway.unansweredCalls(last).find((f) => (decodeValue(f.args as string) as number[])[0] === -1);
  expect(frame, 'the new call goes out on the newest socket').toBeDefined();
  last.serverSend({ type: 'call_response', id: frame!.id, ok: true, result: encodeValue(-2) });
  expect(await call).toBe(-2);
  checkInvariants(run, 'the liveness check');
}
