/**
 * Every map in the gateway and the client has a bound, and each test here
 * hits one (docs/limits.md lists them). The gateway's limits are set small
 * through env bindings the fixture's TestGateway reads; the client's through
 * MeshClient options with FakeSocket and fake timers.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { MeshClient } from '../src/client/index.js';
import type { SocketClass } from '../src/client/socket.js';
import { decodeValue, encodeValue } from '../src/protocol/codec.js';
import { LimitExceededError, UnknownBindingError } from '../src/protocol/errors.js';
import { DEFAULTS } from '../src/protocol/limits.js';
import { FakeSocket } from './support/fake-socket.js';
import { RawSocket, callOver, callResponse, closeFrame, sendCall, startTestMesh, waitFor, withTestMesh, type TestMesh } from './support/mesh.js';

const LIMITS = {
  MAX_FRAME_BYTES: 4096,
  MAX_IN_FLIGHT: 4,
  MAX_PENDING_CLIENT_CALLS: 2,
  REMEMBERED_CALL_IDS: 3,
  REMEMBERED_ANSWER_BYTES: 2000,
  MAX_CACHED_STUBS: 4,
};

let mesh: TestMesh;
const sockets: RawSocket[] = [];
const clients: MeshClient[] = [];

beforeAll(async () => {
  mesh = await startTestMesh({
    graceMs: 2000,
    env: { ...Object.fromEntries(Object.entries(LIMITS).map(([k, v]) => [k, String(v)])), NODE_BINDINGS: 'COUNTER' },
  });
});

afterAll(async () => {
  for (const c of clients) c.disconnect();
  for (const sock of sockets) sock.ws.terminate();
  await mesh?.dispose();
});

// ── helpers ───────────────────────────────────────────────────────────────────

type Memory = { running: number; answered: number; answeredSize: number; waiting: number; stubs: number };
const memory = async (instance: string) => ((await mesh.state(instance)) as unknown as { memory: Memory }).memory;
const counter = (instance: string) => ({ binding: 'COUNTER', instance });

async function connect(instance: string) {
  const sock = new RawSocket(mesh.wsUrl(instance), await mesh.token(instance.split('.')[0]!));
  sockets.push(sock);
  const status = await sock.ofType('connection_status');
  return { sock, status };
}

/** Sends a call frame with a chosen id (so a test can resend it). */
function callWithId(sock: RawSocket, id: string, to: { binding: string; instance?: string }, method: string, args: unknown[]) {
  sock.send({ type: 'call', id, to, method, args: encodeValue(args) });
}

/** Waits for the `n`-th (1-based) call_response to `id` and decodes it. */
async function nthResponse(sock: RawSocket, id: string, n: number) {
  const all = () => sock.frames.filter((f) => f.type === 'call_response' && f.id === id);
  await waitFor(() => all().length >= n, `response #${n} to ${id}`);
  const frame = all()[n - 1]!;
  return frame.ok ? { ok: true, value: decodeValue(frame.result as string) } : { ok: false, error: decodeValue(frame.error as string) as any };
}

// ── frame size ────────────────────────────────────────────────────────────────

describe('maxFrameBytes', () => {
  /** A call frame padded (through its `state`) to exactly `length` characters. */
  function frameOfLength(id: string, length: number, pad = 'x', instance = 'size'): string {
    const base = JSON.stringify({ type: 'call', id, to: counter(instance), method: 'increment', args: encodeValue([1]), state: { pad: '' } });
    return base.replace('"pad":""', `"pad":"${pad.repeat(length - base.length)}"`);
  }

  it('a frame of exactly the limit is served; one character more closes the socket with 1009', async () => {
    const { sock } = await connect('big.f1');
    const exact = frameOfLength('at-limit', LIMITS.MAX_FRAME_BYTES);
    expect(exact).toHaveLength(LIMITS.MAX_FRAME_BYTES);
    sock.send(exact);
    expect(await callResponse(sock, 'at-limit')).toMatchObject({ ok: true, value: 1 });

    sock.send(frameOfLength('over-limit', LIMITS.MAX_FRAME_BYTES + 1));
    expect(await closeFrame(sock)).toEqual({ code: 1009, reason: `Frame too large (limit ${LIMITS.MAX_FRAME_BYTES})` });
    expect(sock.frames.some((f) => f.id === 'over-limit')).toBe(false); // never acted on

    // The gateway is fine: the next connection is inside the grace period and is served.
    const again = await connect('big.f1');
    expect(again.status.subscriptionRequired).toBe(false);
    expect(await callOver(again.sock, counter('size'), 'increment', [1])).toMatchObject({ ok: true, value: 2 });
    expect(await mesh.state('big.f1')).toMatchObject({ open: 1, alarm: null });
  });

  it('the limit counts UTF-16 code units, not bytes: 2-byte characters up to the limit pass', async () => {
    const { sock } = await connect('big.f2');
    const frame = frameOfLength('utf', LIMITS.MAX_FRAME_BYTES, 'é', 'size-utf');
    expect(Buffer.byteLength(frame)).toBeGreaterThan(LIMITS.MAX_FRAME_BYTES);
    sock.send(frame);
    expect(await callResponse(sock, 'utf')).toMatchObject({ ok: true });
  });
});

// ── in-flight calls per connection ────────────────────────────────────────────

describe('maxInFlightCalls', () => {
  it('a flood past the limit gets LimitExceededError for each extra call at once; none of them runs; memory stays at the limit', async () => {
    const { sock } = await connect('flood.t1');
    const helper = await connect('helper.t1');
    const held = Array.from({ length: LIMITS.MAX_IN_FLIGHT }, (_, i) => sendCall(sock, counter('flood'), 'hold', [`h${i}`]));
    await waitFor(async () => (await memory('flood.t1')).running === LIMITS.MAX_IN_FLIGHT, 'the held calls to run');

    const flood = Array.from({ length: 50 }, () => sendCall(sock, counter('flood'), 'increment', [1]));
    for (const id of flood) {
      const { ok, error } = await callResponse(sock, id);
      expect(ok).toBe(false);
      expect(error).toBeInstanceOf(LimitExceededError);
      expect(error).toMatchObject({ name: 'LimitExceededError', code: 'limit_exceeded', limit: 'maxInFlightCalls', max: LIMITS.MAX_IN_FLIGHT });
    }
    expect(await memory('flood.t1')).toMatchObject({ running: LIMITS.MAX_IN_FLIGHT });
    expect(sock.frames.filter((f) => held.includes(f.id as string))).toEqual([]); // the held ones are still running

    for (let i = 0; i < LIMITS.MAX_IN_FLIGHT; i++) expect(await callOver(helper.sock, counter('flood'), 'release', [`h${i}`])).toMatchObject({ ok: true, value: true });
    for (const [i, id] of held.entries()) expect(await callResponse(sock, id)).toMatchObject({ ok: true, value: `h${i}` });
    expect(await memory('flood.t1')).toMatchObject({ running: 0 });
    // none of the 50 refused increments ran
    expect(await callOver(sock, counter('flood'), 'increment', [1])).toMatchObject({ ok: true, value: 1 });
  });

  it('a refused call can be sent again with the same id once there is room (a refusal is not remembered)', async () => {
    const { sock } = await connect('flood.t2');
    const helper = await connect('helper.t2');
    const held = Array.from({ length: LIMITS.MAX_IN_FLIGHT }, (_, i) => sendCall(sock, counter('flood2'), 'hold', [`k${i}`]));
    await waitFor(async () => (await memory('flood.t2')).running === LIMITS.MAX_IN_FLIGHT, 'the held calls to run');
    callWithId(sock, 'again', counter('flood2'), 'increment', [5]);
    expect((await nthResponse(sock, 'again', 1)).error).toBeInstanceOf(LimitExceededError);

    for (let i = 0; i < LIMITS.MAX_IN_FLIGHT; i++) await callOver(helper.sock, counter('flood2'), 'release', [`k${i}`]);
    for (const id of held) await callResponse(sock, id);
    callWithId(sock, 'again', counter('flood2'), 'increment', [5]);
    expect(await nthResponse(sock, 'again', 2)).toEqual({ ok: true, value: 5 });
  });

  it('through MeshClient: the extra calls reject with LimitExceededError, the rest resolve, and nothing stays pending', async () => {
    const client = new MeshClient({
      url: mesh.url.origin, accessToken: await mesh.token('floodc'), WebSocket: WebSocket as unknown as SocketClass, browserEvents: false,
    });
    clients.push(client);
    await waitFor(() => client.state === 'connected', 'the client to connect');
    const stub = client.node<{ hold(key: string): string; increment(by: number): number }>('COUNTER', 'floodc');
    const held = Array.from({ length: LIMITS.MAX_IN_FLIGHT }, (_, i) => stub.hold(`c${i}`));
    const gateway = client.instanceName!;
    await waitFor(async () => (await memory(gateway)).running === LIMITS.MAX_IN_FLIGHT, 'the held calls to run');

    const extra = await Promise.allSettled(Array.from({ length: 20 }, () => stub.increment(1)));
    expect(extra.every((r) => r.status === 'rejected' && r.reason instanceof LimitExceededError && r.reason.limit === 'maxInFlightCalls')).toBe(true);
    expect(client.pendingCalls).toBe(LIMITS.MAX_IN_FLIGHT);

    const helper = await connect('helper.t3');
    for (let i = 0; i < LIMITS.MAX_IN_FLIGHT; i++) await callOver(helper.sock, counter('floodc'), 'release', [`c${i}`]);
    expect(await Promise.all(held)).toEqual(['c0', 'c1', 'c2', 'c3']);
    expect(client.pendingCalls).toBe(0);
    expect(await stub.increment(1)).toBe(1);
  });
});

// ── mesh → client calls waiting ───────────────────────────────────────────────

describe('maxPendingClientCalls', () => {
  it('past the limit a call to the client fails at once with LimitExceededError; answering one makes room', async () => {
    const target = await connect('target.p1');
    const caller = await connect('caller.p1');
    const ids = [0, 1, 2].map((n) => sendCall(caller.sock, counter('pend'), 'callClient', ['target.p1', 'applyChange', [n]]));

    // exactly one of the three is refused (whichever reached the gateway last)
    const refused = await Promise.race(ids.map((id) => callResponse(caller.sock, id)));
    expect(refused.value.ok).toBe(false);
    expect(refused.value.error).toBeInstanceOf(LimitExceededError);
    expect(refused.value.error).toMatchObject({ limit: 'maxPendingClientCalls', max: LIMITS.MAX_PENDING_CLIENT_CALLS });
    await waitFor(() => target.sock.frames.filter((f) => f.type === 'incoming_call').length === 2, 'two incoming calls');
    expect(await memory('target.p1')).toMatchObject({ waiting: LIMITS.MAX_PENDING_CLIENT_CALLS });

    const incoming = target.sock.frames.filter((f) => f.type === 'incoming_call');
    target.sock.send({ type: 'incoming_call_response', id: incoming[0]!.id, ok: true, result: encodeValue('first') });
    await waitFor(async () => (await memory('target.p1')).waiting === 1, 'one waiting call');
    const fourth = sendCall(caller.sock, counter('pend'), 'callClient', ['target.p1', 'applyChange', [3]]);
    const next = await target.sock.next((f) => f.type === 'incoming_call' && !incoming.some((i) => i.id === f.id));
    expect(decodeValue(next.args as string)).toEqual([3]);
    for (const f of [incoming[1]!, next]) target.sock.send({ type: 'incoming_call_response', id: f.id, ok: true, result: encodeValue('ok') });
    expect((await callResponse(caller.sock, fourth)).value).toEqual({ ok: true, value: 'ok' });
    await waitFor(async () => (await memory('target.p1')).waiting === 0, 'no waiting calls');
  });
});

// ── remembered answers ────────────────────────────────────────────────────────

describe('rememberedCallIds and rememberedAnswerBytes', () => {
  it('a resent id is answered from memory until more than the limit of newer answers push it out; then it runs again', async () => {
    let { sock } = await connect('mem.r1');
    callWithId(sock, 'r-0', counter('mem'), 'slowCount', ['key0', 0]);
    expect(await nthResponse(sock, 'r-0', 1)).toEqual({ ok: true, value: 1 });
    ({ sock } = await connect('mem.r1')); // a resend comes on the next socket
    callWithId(sock, 'r-0', counter('mem'), 'slowCount', ['key0', 0]);
    expect(await nthResponse(sock, 'r-0', 1)).toEqual({ ok: true, value: 1 }); // remembered: did not run
    expect(await callOver(sock, counter('mem'), 'runs', ['key0'])).toMatchObject({ value: 1 });

    // runs() above was answer #2; two more push r-0 out of a memory of 3
    for (const id of ['r-1', 'r-2']) {
      callWithId(sock, id, counter('mem'), 'slowCount', [id, 0]);
      await nthResponse(sock, id, 1);
    }
    expect(await memory('mem.r1')).toMatchObject({ answered: LIMITS.REMEMBERED_CALL_IDS });
    ({ sock } = await connect('mem.r1'));
    callWithId(sock, 'r-0', counter('mem'), 'slowCount', ['key0', 0]);
    expect(await nthResponse(sock, 'r-0', 1)).toEqual({ ok: true, value: 2 }); // forgotten: ran again
    callWithId(sock, 'r-2', counter('mem'), 'slowCount', ['r-2', 0]);
    expect(await nthResponse(sock, 'r-2', 1)).toEqual({ ok: true, value: 1 }); // still remembered
    expect(await memory('mem.r1')).toMatchObject({ answered: LIMITS.REMEMBERED_CALL_IDS });
  });

  it('the remembered answers are bounded in total size too, counted in UTF-8 bytes; the newest is always kept', async () => {
    let { sock } = await connect('mem.r2');
    for (const id of ['s-1', 's-2', 's-3']) {
      callWithId(sock, id, counter('mem2'), 'echo', ['x'.repeat(700)]);
      await nthResponse(sock, id, 1);
    }
    const after = await memory('mem.r2');
    expect(after.answered).toBe(2); // 3 × ~740 > 2000
    expect(after.answeredSize).toBeLessThanOrEqual(LIMITS.REMEMBERED_ANSWER_BYTES);
    expect(after.answeredSize).toBeGreaterThan(1400);

    // 400 × 'é' is 400 UTF-16 units but 800 bytes: two such answers (~850 bytes) fit in 2000, three do not (counted in units, three would)
    for (const id of ['u-1', 'u-2', 'u-3']) {
      callWithId(sock, id, counter('mem2'), 'echo', ['é'.repeat(400)]);
      await nthResponse(sock, id, 1);
    }
    const utf8 = await memory('mem.r2');
    expect(utf8.answered).toBe(2);
    expect(utf8.answeredSize).toBeGreaterThan(1600);

    callWithId(sock, 's-big', counter('mem2'), 'echo', ['y'.repeat(3000)]);
    await nthResponse(sock, 's-big', 1);
    const big = await memory('mem.r2');
    expect(big.answered).toBe(1);
    expect(big.answeredSize).toBeGreaterThan(LIMITS.REMEMBERED_ANSWER_BYTES);
    ({ sock } = await connect('mem.r2'));
    callWithId(sock, 's-big', counter('mem2'), 'echo', ['y'.repeat(3000)]);
    expect(await nthResponse(sock, 's-big', 1)).toEqual({ ok: true, value: 'y'.repeat(3000) });
  });
});

// ── stub cache ────────────────────────────────────────────────────────────────

describe('maxCachedStubs', () => {
  it('calls to more targets than the cache holds keep working; the cache stays at its bound', async () => {
    const { sock } = await connect('stubs.t1');
    for (let i = 0; i < 10; i++) expect(await callOver(sock, counter(`stub-${i}`), 'increment', [1])).toMatchObject({ ok: true, value: 1 });
    expect(await memory('stubs.t1')).toMatchObject({ stubs: LIMITS.MAX_CACHED_STUBS });
    // stub-0 was evicted first: it is resolved again and reaches the same Durable Object
    expect(await callOver(sock, counter('stub-0'), 'increment', [1])).toMatchObject({ ok: true, value: 2 });
    expect(await memory('stubs.t1')).toMatchObject({ stubs: LIMITS.MAX_CACHED_STUBS });
  });
});

// ── nodeBindings ──────────────────────────────────────────────────────────────

describe('nodeBindings', () => {
  it('a mesh node that is not in the gateway\'s nodeBindings is refused with UnknownBindingError', async () => {
    const { sock } = await connect('nodes.t1');
    const { ok, error } = await callOver(sock, { binding: 'ECHO_WORKER' }, 'shout', ['hi']);
    expect(ok).toBe(false);
    expect(error).toBeInstanceOf(UnknownBindingError);
    expect(error.binding).toBe('ECHO_WORKER');
    expect(error.message).toContain('nodeBindings');
    expect(await callOver(sock, counter('nodes'), 'increment', [1])).toMatchObject({ ok: true, value: 1 });
  });
});

// ── durations and rates that are not numbers ──────────────────────────────────────────

describe('misconfigured durations and rates', () => {
  // What Number(env.X) gives for a typo: NaN. Calls must fail loudly, not wait forever.
  async function connectTo(broken: TestMesh) {
    const sock = new RawSocket(broken.wsUrl('nan.t1'), await broken.token('nan'));
    sockets.push(sock);
    await sock.ofType('connection_status');
    return sock;
  }

  it('a NaN callDeadlineMs fails each client call with a RangeError naming the field', async () => {
    await withTestMesh({ env: { CALL_DEADLINE_MS: 'sixty' } }, async (broken) => {
      const { ok, error } = await callOver(await connectTo(broken), counter('nan'), 'increment', [1]);
      expect(ok).toBe(false);
      expect(error).toBeInstanceOf(RangeError);
      expect(error.message).toBe('Gateway misconfigured: config.callDeadlineMs must be a positive number of milliseconds, got NaN.');
    });
  });

  /** A socket to a gateway that refuses every upgrade: closed with 1011 and `reason`, before any frame. */
  async function refusedWith(broken: TestMesh, reason: string): Promise<void> {
    const sock = new RawSocket(broken.wsUrl('nan.t1'), await broken.token('nan'));
    sockets.push(sock);
    expect(await sock.closed).toMatchObject({ code: 1011, reason });
    expect(sock.frames).toEqual([]);
  }

  it('a rate out of range refuses every socket with 1011, naming the field, before any frame', async () => {
    await withTestMesh({ env: { BYTES_PER_SECOND: 'fast' } }, async (broken) => {
      await refusedWith(broken, 'Gateway misconfigured: config.bytesPerSecond must be a number from 1 to 2^53, got NaN; 1e12 lifts it');
      // A MeshClient keeps retrying, and onError says the server's reason and where the problem is.
      const errors: unknown[] = [];
      const client = new MeshClient({ url: broken.url.origin, accessToken: await broken.token('nan'), WebSocket: WebSocket as unknown as SocketClass, onError: (error) => void errors.push(error) });
      clients.push(client);
      void client.connect().catch(() => undefined);
      await waitFor(() => errors.length > 0, 'onError about the misconfigured gateway', 20_000);
      expect(String((errors[0] as Error).message)).toMatch(/closed with 1011 "Gateway misconfigured: config\.bytesPerSecond .*The server closed with 1011, a problem on its side/);
      client.disconnect();
    });
  });

  it('a config getter that throws refuses every socket with 1011 and its message, not a failed upgrade', async () => {
    await withTestMesh({ env: { CONFIG_THROWS: 'env.FRAME_BURST is not a number' } }, async (broken) => {
      await refusedWith(broken, 'Gateway misconfigured: reading config threw: env.FRAME_BURST is not a number');
    });
  });

  it('a NaN clientResponseTimeoutMs fails each call to the client the same way', async () => {
    await withTestMesh({ env: { CLIENT_TIMEOUT_MS: 'thirty' } }, async (broken) => {
      const sock = await connectTo(broken);
      const { ok, value } = await callOver(sock, counter('nan'), 'callClient', ['nan.t1', 'anything', [], { ownChain: true }]);
      expect(ok).toBe(true);
      expect(value.ok).toBe(false);
      expect(value.error).toBeInstanceOf(RangeError);
      expect(value.error.message).toBe('Gateway misconfigured: config.clientResponseTimeoutMs must be a positive number of milliseconds, got NaN.');
      expect(sock.frames.some((f) => f.type === 'incoming_call')).toBe(false);
    });
  });
});

describe('mesh.client() options', () => {
  it('a timeoutMs that is not a positive number is refused at once with a RangeError', async () => {
    const { sock } = await connect('opts.t1');
    for (const timeoutMs of [Number.NaN, 0, -5, Number.POSITIVE_INFINITY]) {
      const { ok, error } = await callOver(sock, counter('opts'), 'callClient', ['opts.t1', 'anything', [], { ownChain: true, timeoutMs }]);
      expect(ok).toBe(false);
      expect(error).toBeInstanceOf(RangeError);
      expect(error.message).toBe(`mesh.client(): timeoutMs must be a positive number of milliseconds, got ${timeoutMs}.`);
    }
  });
});

// ── the client's maps ─────────────────────────────────────────────────────────

describe('client bounds (FakeSocket, fake timers)', () => {
  const TOKEN = `e30.${Buffer.from(JSON.stringify({ sub: 'alice' })).toString('base64url')}.sig`;
  const origin = { kind: 'node', binding: 'DOC', instance: 'd' };

  afterEach(() => {
    vi.useRealTimers();
  });

  async function settle() {
    for (let i = 0; i < 20; i++) await Promise.resolve();
  }

  async function connectedClient(handlers: Record<string, (...args: any[]) => unknown>, extra: Record<string, unknown>) {
    vi.useFakeTimers();
    FakeSocket.reset();
    const client = new MeshClient({ url: 'ws://mesh.test', accessToken: TOKEN, instanceName: 'alice.tab', WebSocket: FakeSocket, browserEvents: false, handlers, ...extra });
    await settle();
    const socket = FakeSocket.last;
    socket.serverOpen();
    const deliver = (id: string, n = 1) => socket.serverSend({ type: 'incoming_call', id, method: 'apply', args: encodeValue([n]), origin, chain: [origin] });
    const answers = (id: string) => socket.frames().filter((f) => f.type === 'incoming_call_response' && f.id === id);
    return { client, socket, deliver, answers };
  }

  it('rememberedCallIds: a redelivered incoming call is answered from memory until newer answers push it out', async () => {
    const runs = new Map<string, number>();
    let current: () => string | undefined = () => undefined;
    const { client, deliver, answers } = await connectedClient({
      apply: (n: number) => {
        const id = current()!;
        runs.set(id, (runs.get(id) ?? 0) + 1);
        return n * 10;
      },
    }, { rememberedCallIds: 2 });
    current = () => client.incomingContext?.id;
    for (const id of ['i1', 'i2', 'i3']) deliver(id);
    await settle();
    deliver('i3'); // remembered
    await settle();
    expect(runs.get('i3')).toBe(1);
    expect(answers('i3')).toHaveLength(2);
    expect(answers('i3')[1]).toEqual(answers('i3')[0]);
    deliver('i1'); // forgotten: with a memory of 2, i2 and i3 pushed it out
    await settle();
    expect(runs.get('i1')).toBe(2);
    expect(answers('i1').map((a) => decodeValue(a.result as string))).toEqual([10, 10]);
    client.disconnect();
  });

  it('maxConcurrentIncomingCalls: past the limit an incoming call is answered LimitExceededError at once; when one finishes there is room again', async () => {
    const release = new Map<string, () => void>();
    let current: () => string | undefined = () => undefined;
    const { client, deliver, answers } = await connectedClient({
      apply: (n: number) => {
        const id = current()!;
        return new Promise((resolve) => release.set(id, () => resolve(n)));
      },
    }, { maxConcurrentIncomingCalls: 2 });
    current = () => client.incomingContext?.id;
    deliver('a');
    deliver('b');
    deliver('a'); // a redelivery of a running call is not a new one
    deliver('c');
    await settle();
    expect([...release.keys()]).toEqual(['a', 'b']);
    const refused = answers('c');
    expect(refused).toHaveLength(1);
    const error = decodeValue(refused[0]!.error as string) as LimitExceededError;
    expect(error).toBeInstanceOf(LimitExceededError);
    expect(error).toMatchObject({ limit: 'maxConcurrentIncomingCalls', max: 2 });

    release.get('a')!();
    await settle();
    expect(answers('a')).toHaveLength(1);
    deliver('c'); // the refusal was not remembered: now it runs
    await settle();
    expect([...release.keys()]).toEqual(['a', 'b', 'c']);
    release.get('b')!();
    release.get('c')!();
    await settle();
    expect(decodeValue(answers('c').at(-1)!.result as string)).toBe(1);
    client.disconnect();
  });

  it('the defaults are the documented ones', () => {
    expect(DEFAULTS).toMatchObject({
      maxFrameBytes: 1024 * 1024, maxInFlightCalls: 256, maxPendingClientCalls: 256, rememberedCallIds: 1000, rememberedAnswerBytes: 4 * 1024 * 1024,
      maxCallIdLength: 128, maxStateDepth: 32, maxCachedStubs: 64, maxQueuedCalls: 100, maxConcurrentIncomingCalls: 256,
    });
  });
});
