/**
 * Delivery guarantees on real workerd: every call settles, a resent call runs
 * at most once, calls to a client follow it to its new socket, storms leave
 * one socket, and calls are dispatched in the order sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshClient, OutcomeUnknownError, type MeshClientOptions } from '../src/client/index.js';
import { encodeValue, decodeValue } from '../src/protocol/codec.js';
import { callFrame, closeFrame, resultOf, startTestMesh, useTestMesh, RawSocket, type TestMesh } from './support/mesh.js';
import { waitFor } from './support/network.js';

type Counter = {
  slowCount(key: string, ms: number): number;
  runs(key: string): number;
  append(key: string, n: number): number;
  list(key: string): number[];
  callClient(instance: string, method: string, args: unknown[], options?: { ownChain?: boolean; timeoutMs?: number }): { ok: boolean; value?: unknown; error?: Error };
};

const GRACE_MS = 600;
let mesh: TestMesh;

beforeAll(async () => {
  mesh = await startTestMesh({ graceMs: GRACE_MS });
});
afterAll(() => mesh?.dispose());

/** A connected client from meshgate/testing, and its network's controls. */
async function connectedClient(sub: string, extra: Partial<MeshClientOptions> = {}) {
  const client: MeshClient = await mesh.testing.client({ sub, reconnectMinDelayMs: 30, reconnectMaxDelayMs: 100, ...extra });
  return { client, network: { drop: () => mesh.testing.drop(client), cut: () => mesh.testing.cutNetwork(client) } };
}

describe('client → mesh across a dropped socket', () => {
  it('a call in flight when the socket dies resolves after a reconnect inside the grace period, and runs once', async () => {
    const { client, network } = await connectedClient('inflight');
    const counter = client.node<Counter>('COUNTER', 'inflight');
    const call = counter.slowCount('k1', 300);
    await waitFor(async () => (await counter.runs('k1')) === 1, 'the method to start'); // ~50 ms in
    network.drop();
    await waitFor(() => client.state === 'reconnecting', 'the drop to be noticed');
    expect(await call).toBe(1);
    expect(await counter.runs('k1')).toBe(1);
  });

  it('with the reconnect after the grace period, the call rejects as outcome-unknown within its deadline', async () => {
    const { client, network } = await connectedClient('lost', { callTimeoutMs: 10_000 });
    const instance = client.instanceName!;
    const started = Date.now();
    const counter = client.node<Counter>('COUNTER', 'lost');
    const call = counter.slowCount('k2', 300).catch((e: unknown) => e);
    await waitFor(async () => (await counter.runs('k2')) === 1, 'the method to start');
    const cut = network.cut();
    // Past its grace period (not polled for: on a loaded machine a poll can miss the short period itself).
    await mesh.testing.waitForGatewayState(instance, 'disconnected', 8000);
    cut.restore();
    const error = await call;
    expect(error).toBeInstanceOf(OutcomeUnknownError);
    expect((error as Error).name).toBe('OutcomeUnknownError');
    expect(Date.now() - started).toBeLessThan(10_000);
    // It did run once on the server: "unknown" was the honest answer.
    expect(await counter.runs('k2')).toBe(1);
  }, 20_000); // a grace period and a reconnect: slow on a loaded machine
});

describe('mesh → client across supersession', () => {
  it('a call forwarded to a socket that is then superseded by the same client resolves from the new socket; the handler runs once', async () => {
    let runs = 0;
    const { client: callee } = await connectedClient('callee', {
      handlers: {
        async slowNote(k: string) {
          runs++;
          await new Promise((r) => setTimeout(r, 300));
          return `noted ${k}`;
        },
      },
    });
    const { client: caller } = await connectedClient('caller');
    const result = caller.node<Counter>('COUNTER', 'notes').callClient(callee.instanceName!, 'slowNote', ['n1'], { ownChain: true });
    await waitFor(() => runs === 1, 'the handler to start');
    await callee.reconnect(); // the new socket supersedes the old one at the gateway
    expect(await result).toEqual({ ok: true, value: 'noted n1' });
    expect(runs).toBe(1);
    const state = await mesh.state(callee.instanceName!);
    expect(state.open).toBe(1);
    expect(callee.state).toBe('connected');
  });
});

describe('storms', () => {
  it('50 simultaneous upgrades for one identity, 20 rounds: one open socket, 49 closes with 4409, then a call is served', async () => {
    const instance = 'storm.tab';
    const token = await mesh.token('storm');
    for (let round = 0; round < 20; round++) {
      const sockets = Array.from({ length: 50 }, () => new RawSocket(mesh.wsUrl(instance), token));
      await Promise.all(sockets.map((s) => s.opened));
      // The last upgrade accepted survives; every other socket gets a 4409 close frame.
      const codes = await Promise.all(sockets.map((s) => closeFrame(s, 300).then((c) => c.code, () => 'open')));
      expect(codes.filter((c) => c === 'open')).toHaveLength(1);
      expect(codes.filter((c) => c === 4409)).toHaveLength(49);
      const survivor = sockets[codes.indexOf('open')]!;
      // connection_status is the first frame every socket saw.
      for (const s of sockets) if (s.frames.length > 0) expect(s.frames[0]!.type).toBe('connection_status');
      survivor.send({ type: 'call', id: `r${round}`, to: { binding: 'COUNTER', instance: 'storm' }, method: 'append', args: encodeValue(['storm', round]) });
      const answer = await survivor.next((f) => f.id === `r${round}`);
      expect(decodeValue(answer.result as string)).toBe(round);
      const state = await mesh.state(instance);
      expect(state.open).toBe(1);
      expect({ round, alarm: state.alarm, in: state.alarm ? state.alarm - Date.now() : 0 }).toEqual({ round, alarm: null, in: 0 });
      for (const s of sockets) s.ws.terminate();
    }
  }, 120_000);
});

describe('bursts', () => {
  // Calls sent as one batch message are read in one turn, so all after the first are read while it
  // runs (frames in separate messages may each find the one before answered already, on a loaded
  // machine); the 50 ms window keeps a burst whole if workerd runs a timer between two reads.
  const bursty = useTestMesh({ env: { BURST_WINDOW_MS: '50' } });
  it('calls to one Worker that arrive together share one RPC, and a slow one holds up none of the others', async () => {
    const socket = new RawSocket(bursty.mesh.wsUrl('burst.t'), await bursty.mesh.token('burst'));
    await socket.ofType('connection_status');
    const call = (id: string, method: string, args: unknown[] = []) => socket.send(callFrame(id, { binding: 'ECHO_WORKER' }, method, args));
    // One synchronous loop: the frames reach the gateway together.
    call('first', 'slowShout', ['a', 1500]);
    call('slow', 'slowShout', ['b', 1500]);
    for (let n = 0; n < 10; n++) call(`fast${n}`, 'shout', [`f${n}`]);
    const fast = await Promise.all(Array.from({ length: 10 }, (_, n) => resultOf(socket, `fast${n}`)));
    expect(fast).toEqual(Array.from({ length: 10 }, (_, n) => `F${n}!`));
    // Both slow calls are still running: nothing waited for them.
    expect(socket.frames.some((f) => f.id === 'first' || f.id === 'slow')).toBe(false);
    expect(await resultOf(socket, 'slow')).toBe('B!');
    call('b', 'batches', []);
    const batches = (await resultOf(socket, 'b')) as number[];
    expect(batches.some((size) => size >= 2)).toBe(true);
    socket.close();
  });

  it('a node of an earlier meshgate version, whose burst entry answers undefined, has each call run once', async () => {
    const socket = new RawSocket(bursty.mesh.wsUrl('legacy.t'), await bursty.mesh.token('legacy'));
    await socket.ofType('connection_status');
    const call = (id: string, method: string, args: unknown[] = []) => callFrame(id, { binding: 'LEGACY_WORKER' }, method, args);
    socket.send(Array.from({ length: 10 }, (_, n) => call(`c${n}`, 'count', [`k${n}`])));
    const answers = await Promise.all(Array.from({ length: 10 }, (_, n) => resultOf(socket, `c${n}`)));
    expect(answers).toEqual(Array(10).fill(1));
    socket.send(call('r', 'report', []));
    const report = (await resultOf(socket, 'r')) as { runs: Record<string, number>; batches: number[] };
    expect(report.batches.some((size) => size >= 2)).toBe(true);
    expect(report.runs).toEqual(Object.fromEntries(Array.from({ length: 10 }, (_, n) => [`k${n}`, 1])));
    socket.close();
  });

  it('results of one burst too large together for one RPC message (workerd: 32 MiB) go back in parts: 12 calls with 4 MB results each are all answered', async () => {
    const socket = new RawSocket(bursty.mesh.wsUrl('large.t'), await bursty.mesh.token('large'));
    await socket.ofType('connection_status');
    const call = (id: string, method: string, args: unknown[] = []) => callFrame(id, { binding: 'ECHO_WORKER' }, method, args);
    socket.send(Array.from({ length: 12 }, (_, n) => call(`out${n}`, 'big', [4_000_000])));
    const results = await Promise.all(Array.from({ length: 12 }, (_, n) => resultOf(socket, `out${n}`, 20_000)));
    expect(results.map((r) => (typeof r === 'string' ? r.length : String(r)))).toEqual(Array(12).fill(4_000_000));
    socket.close();
  }, 60_000);

  // A Durable Object gets one RPC per call unless its class accepts bursts: calls inside one RPC
  // share one event, and its input gate cannot keep their storage operations apart.
  for (const binding of ['COUNTER', 'COUNTER_SQL']) {
    it(`calls to a Durable Object (${binding === 'COUNTER' ? 'key-value' : 'SQLite'} storage) that arrive together each get their own RPC by default, so its input gate holds: 20 read-modify-writes lose no update`, async () => {
      const socket = new RawSocket(bursty.mesh.wsUrl(`gate.${binding}`), await bursty.mesh.token('gate'));
      await socket.ofType('connection_status');
      const call = (id: string, method: string) => callFrame(id, { binding, instance: 'gate' }, method);
      socket.send(call('learn', 'storageIncrement')); // the gateway learns what it can about the class
      await socket.next((f) => f.id === 'learn');
      socket.send(Array.from({ length: 20 }, (_, n) => call(`g${n}`, 'storageIncrement')));
      const answers = await Promise.all(Array.from({ length: 20 }, (_, n) => resultOf(socket, `g${n}`)));
      // Each call saw the previous one's write, in the order sent.
      expect(answers).toEqual(Array.from({ length: 20 }, (_, n) => n + 2));
      socket.send(call('b', 'batches'));
      expect(await resultOf(socket, 'b')).toEqual([]);
      socket.close();
    });
  }

  it('calls to a Durable Object whose class accepts bursts share one RPC once the gateway has learned so, and keep their order', async () => {
    const socket = new RawSocket(bursty.mesh.wsUrl('bursts.t'), await bursty.mesh.token('bursts'));
    await socket.ofType('connection_status');
    const call = (id: string, method: string, args: unknown[] = []) => callFrame(id, { binding: 'COUNTER_BURSTS', instance: 'bursts' }, method, args);
    socket.send(call('learn', 'echo', [1]));
    // What the node tells its gateway stays between them.
    expect(await socket.next((f) => f.id === 'learn')).not.toHaveProperty('acceptsBursts');
    socket.send(Array.from({ length: 20 }, (_, n) => call(`a${n}`, 'append', ['seq', n])));
    const answers = await Promise.all(Array.from({ length: 20 }, (_, n) => resultOf(socket, `a${n}`)));
    expect(answers).toEqual(Array.from({ length: 20 }, (_, n) => n));
    socket.send(call('list', 'list', ['seq']));
    expect(await resultOf(socket, 'list')).toEqual(Array.from({ length: 20 }, (_, n) => n));
    socket.send(call('b', 'batches', []));
    const batches = (await resultOf(socket, 'b')) as string[][];
    expect(batches.some(([outcome, ...methods]) => outcome === 'ran' && methods.length >= 2)).toBe(true);
    socket.close();
  });

  it('when the class stops accepting bursts (a new deployment), a gateway that still sends one gets it back unrun and sends the calls one by one', async () => {
    const socket = new RawSocket(bursty.mesh.wsUrl('bursts.off'), await bursty.mesh.token('bursts'));
    await socket.ofType('connection_status');
    const call = (id: string, method: string, args: unknown[] = []) => callFrame(id, { binding: 'COUNTER_BURSTS', instance: 'bursts-off' }, method, args);
    socket.send(call('learn', 'echo', [1]));
    await socket.next((f) => f.id === 'learn');
    socket.send({ ...call('off', 'acceptBursts', [false]), to: { binding: 'COUNTER_BURSTS', instance: 'switch' } });
    await socket.next((f) => f.id === 'off');
    try {
      socket.send(Array.from({ length: 10 }, (_, n) => call(`a${n}`, 'append', ['seq', n])));
      const answers = await Promise.all(Array.from({ length: 10 }, (_, n) => resultOf(socket, `a${n}`)));
      expect(answers).toEqual(Array.from({ length: 10 }, (_, n) => n));
      socket.send(call('list', 'list', ['seq']));
      expect(await resultOf(socket, 'list')).toEqual(Array.from({ length: 10 }, (_, n) => n));
      socket.send(call('b', 'batches', []));
      const batches = (await resultOf(socket, 'b')) as string[][];
      expect(batches.length).toBeGreaterThan(0);
      expect(batches.every(([outcome]) => outcome === 'refused')).toBe(true);
    } finally {
      socket.send({ ...call('on', 'acceptBursts', [true]), to: { binding: 'COUNTER_BURSTS', instance: 'switch' } });
      await socket.next((f) => f.id === 'on');
      socket.close();
    }
  });

  describe('one RPC carrying a burst, straight to the node', () => {
    type Burst = { burst(binding: string, instance: string, calls: Array<[string, unknown[]]>): { accepted: boolean; arrived: Array<[number, unknown]> } };
    const burstFrom = async (name: string) => (await connectedClient(name)).client.node<Burst & { list(key: string): number[] }>('COUNTER', `${name}-sender`);

    it('a Durable Object that does not accept bursts runs none of it and answers false', async () => {
      const sender = await burstFrom('refused');
      const { accepted, arrived } = await sender.burst('COUNTER', 'refused-target', [['append', ['r', 0]], ['append', ['r', 1]]]);
      expect(accepted).toBe(false);
      expect(arrived).toEqual([]);
      const target = (await connectedClient('refused-check')).client.node<{ list(key: string): number[] }>('COUNTER', 'refused-target');
      expect(await target.list('r')).toEqual([]);
    });

    it('in one that does, the calls run concurrently: a hold released by a later call of the same burst completes, and fast calls are not held up', async () => {
      const sender = await burstFrom('hold');
      const { accepted, arrived } = await sender.burst('COUNTER_BURSTS', 'hold-target', [
        ['hold', ['k', 60_000]], ['append', ['b', 0]], ['append', ['b', 1]], ['append', ['b', 2]], ['release', ['k']],
      ]);
      expect(accepted).toBe(true);
      expect(arrived.map(([index]) => index)).toEqual([1, 2, 3, 4, 0]);
      expect(arrived.map(([, value]) => value)).toEqual([0, 1, 2, true, 'k']);
    });

    it('a call that throws answers with its error and the rest still run', async () => {
      const sender = await burstFrom('throws');
      const { arrived } = await sender.burst('COUNTER_BURSTS', 'throws-target', [['append', ['t', 0]], ['fail', []], ['append', ['t', 1]]]);
      expect(arrived.map(([index]) => index).sort()).toEqual([0, 1, 2]);
      expect(arrived.find(([index]) => index === 1)![1]).toBeInstanceOf(RangeError);
      expect(arrived.find(([index]) => index === 2)![1]).toBe(1);
    });
  });
});

describe('sequential calls beside a long-running one', () => {
  // A burst window far longer than a local round trip: a call made to wait for it shows.
  const WINDOW_MS = 1000;
  const slowWindow = useTestMesh({ env: { BURST_WINDOW_MS: String(WINDOW_MS) } });
  it('only a call sent while the call before it runs waits for the burst window; calls sent one after another go at once, and pipelined ones still share bursts', async () => {
    const socket = new RawSocket(slowWindow.mesh.wsUrl('beside.t'), await slowWindow.mesh.token('beside'));
    await socket.ofType('connection_status');
    const waiting = { binding: 'COUNTER', instance: 'beside-wait' };
    const counter = { binding: 'COUNTER', instance: 'beside-count' };
    // Sent as batches, so the gateway may hold this client's answers to send them together.
    socket.send([callFrame('long', waiting, 'hold', ['long', 30_000])]);
    const roundTrips: number[] = [];
    for (let n = 0; n < 6; n++) {
      const started = performance.now();
      socket.send([callFrame(`s${n}`, counter, 'append', ['seq', n])]);
      expect(await resultOf(socket, `s${n}`, 5_000)).toBe(n);
      roundTrips.push(performance.now() - started);
    }
    // The first was sent while the long call, the one before it, ran: it waited for the window.
    expect(roundTrips[0]).toBeGreaterThanOrEqual(WINDOW_MS - 50);
    // The others each found the call before them answered.
    expect(roundTrips.slice(1).filter((ms) => ms >= WINDOW_MS / 2), roundTrips.map(Math.round).join(', ')).toEqual([]);
    // Ten in flight at once, to a Worker: they still go as one burst (one RPC).
    socket.send(Array.from({ length: 10 }, (_, n) => callFrame(`p${n}`, { binding: 'ECHO_WORKER' }, 'shout', [`p${n}`])));
    expect(await Promise.all(Array.from({ length: 10 }, (_, n) => resultOf(socket, `p${n}`, 5_000)))).toEqual(Array.from({ length: 10 }, (_, n) => `P${n}!`));
    socket.send([callFrame('b', { binding: 'ECHO_WORKER' }, 'batches', [])]);
    expect(((await resultOf(socket, 'b', 5_000)) as number[]).some((size) => size >= 9)).toBe(true);
    socket.send([callFrame('free', waiting, 'release', ['long'])]);
    expect(await resultOf(socket, 'long', 5_000)).toBe('long');
    socket.close();
  }, 30_000);
});

describe('ordering', () => {
  it('calls sent on one connection are dispatched in the order sent, resends included', async () => {
    const { client, network } = await connectedClient('order');
    const counter = client.node<Counter>('COUNTER', 'order');
    const calls = Array.from({ length: 60 }, (_, n) => {
      if (n === 30) network.drop(); // half go out, the connection dies, the rest queue
      return counter.append('seq', n);
    });
    expect(await Promise.all(calls)).toEqual(Array.from({ length: 60 }, (_, n) => n));
    expect(await counter.list('seq')).toEqual(Array.from({ length: 60 }, (_, n) => n));
  });
});
