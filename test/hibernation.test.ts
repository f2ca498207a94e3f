/**
 * Hibernation on real workerd: after every kind of work, the gateway and the
 * nodes leave memory as soon as a raw hibernatable-socket Durable Object does
 * (seen from outside: workerd closes an object's SQLite file when it evicts
 * it), everything still works afterwards, and a resend across an eviction in
 * a long grace period gets its real answer. The scenarios run side by side
 * in one mesh, so the whole suite waits for one eviction, not one each.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { encodeValue } from '../src/protocol/codec.js';
import { callFrame, callOver, closeFrame, RawSocket, resultOf, sendCall, useTestMesh, type TestMesh } from './support/mesh.js';
// @ts-expect-error plain ESM helper shared with the benchmark
import { EvictionWatcher } from '../scripts/eviction.mjs';

const GRACE_MS = 2_000;
/** How long after its last activity a raw socket DO leaves memory on local workerd: 10 s, plus polling and load. */
const RAW_EVICTION_BOUND_MS = 10_500;
/** How much later than the raw socket DO of the same run a meshgate object may leave (polling, a loaded machine). */
const SLACK_MS = 500;

const suite = useTestMesh({
  graceMs: GRACE_MS,
  entry: new URL('./fixtures/hibernation-worker.ts', import.meta.url),
  durableObjects: {
    GATEWAY: 'HibernationGateway', RAW: 'RawSocketDO', TOPIC: { className: 'HibernationTopicDO', useSQLite: true }, LEDGER: { className: 'LedgerDO', useSQLite: true },
  },
});

interface Watcher {
  isInMemory(id: string): boolean;
  evicted(id: string, timeoutMs?: number): Promise<number>;
}

interface Client {
  sock: RawSocket;
  instance: string;
  status: Record<string, unknown>;
}

async function idOf(mesh: TestMesh, binding: string, name: string): Promise<string> {
  const namespace = await mesh.mf.getDurableObjectNamespace(binding);
  return namespace.idFromName(name).toString();
}

async function connect(mesh: TestMesh, sub: string, answer?: (method: string, args: unknown) => unknown): Promise<Client> {
  const instance = `${sub}.tab1`;
  const sock = new RawSocket(mesh.wsUrl(instance), await mesh.token(sub));
  suite.sockets.push(sock);
  if (answer) {
    sock.ws.on('message', (data) => {
      const text = data.toString();
      if (!text.startsWith('{')) return; // a heartbeat
      const frame = JSON.parse(text) as { type: string; id: string; method: string; args: string };
      if (frame.type === 'incoming_call') {
        sock.send({ type: 'incoming_call_response', id: frame.id, ok: true, result: encodeValue(answer(frame.method, frame.args)) });
      }
    });
  }
  const status = await sock.ofType('connection_status');
  return { sock, instance, status };
}

/** What one scenario left behind: the objects that must leave memory, and when its last activity was. */
interface Scenario {
  name: string;
  objects: Array<{ label: string; id: string }>;
  lastActivity: number;
}

async function gatewayId(mesh: TestMesh, client: Client): Promise<{ label: string; id: string }> {
  return { label: `gateway ${client.instance}`, id: await idOf(mesh, 'GATEWAY', client.instance) };
}

async function nodeId(mesh: TestMesh, binding: string, name: string): Promise<{ label: string; id: string }> {
  return { label: `${binding} ${name}`, id: await idOf(mesh, binding, name) };
}

/** Sends 20 increments to one node at once, as separate frames in one write or as one batch message; checks each ran once, and returns the node. */
async function twentyIncrements(mesh: TestMesh, client: Client, binding: string, instance: string, send: 'together' | 'batch'): Promise<{ label: string; id: string }> {
  const frames = Array.from({ length: 20 }, (_, n) => callFrame(`${instance}-${n}`, { binding, instance }, 'increment', [1]));
  if (send === 'batch') client.sock.send(frames);
  else client.sock.sendTogether(frames);
  const results = await Promise.all(frames.map((frame) => resultOf(client.sock, frame.id)));
  expect([...results].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, n) => n + 1));
  return nodeId(mesh, binding, instance);
}

/** Handles the after-eviction checks use. */
const after: Partial<Record<'call' | 'nodeToClient' | 'idle' | 'burst' | 'fan', Client>> = {};
let graceEndInstance = '';
let watcher: Watcher | undefined;
/** Started once workerd runs (it looks for workerd under this process). */
function watch(): Watcher {
  return (watcher ??= EvictionWatcher.forThisProcess() as Watcher);
}

const scenarios: Record<string, (mesh: TestMesh) => Promise<Scenario>> = {
  async 'raw socket DO (baseline)'(mesh) {
    const ws = new WebSocket(`ws://${mesh.url.host}/raw/baseline`);
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    const echoed = new Promise((resolve) => ws.once('message', resolve));
    ws.send('hello');
    expect(String(await echoed)).toBe('echo:hello');
    const lastActivity = Date.now();
    suite.sockets.push({ ws } as RawSocket);
    return { name: 'raw socket DO (baseline)', objects: [await nodeId(mesh, 'RAW', 'baseline')], lastActivity };
  },

  async 'idle after connect'(mesh) {
    const client = (after.idle = await connect(mesh, 'idle'));
    return { name: 'idle after connect', objects: [await gatewayId(mesh, client)], lastActivity: Date.now() };
  },

  async 'a client → node call'(mesh) {
    const client = (after.call = await connect(mesh, 'caller'));
    expect(await resultOf(client.sock, sendCall(client.sock, { binding: 'COUNTER', instance: 'hib-call' }, 'increment', [1]))).toBe(1);
    return { name: 'a client → node call', objects: [await gatewayId(mesh, client), await nodeId(mesh, 'COUNTER', 'hib-call')], lastActivity: Date.now() };
  },

  async 'a node → client call'(mesh) {
    const client = (after.nodeToClient = await connect(mesh, 'callee', (method) => `ran ${method}`));
    const result = await resultOf(client.sock, sendCall(client.sock, { binding: 'COUNTER', instance: 'hib-n2c' }, 'callClient', [client.instance, 'applyChange', [1]]));
    expect(result).toMatchObject({ ok: true, value: 'ran applyChange' });
    return { name: 'a node → client call', objects: [await gatewayId(mesh, client), await nodeId(mesh, 'COUNTER', 'hib-n2c')], lastActivity: Date.now() };
  },

  async 'a burst of calls'(mesh) {
    const client = (after.burst = await connect(mesh, 'burster'));
    // frames in one TCP write: read together, they go to the node as one burst RPC
    return { name: 'a burst of calls', objects: [await gatewayId(mesh, client), await twentyIncrements(mesh, client, 'COUNTER_BURSTS', 'hib-burst', 'together')], lastActivity: Date.now() };
  },

  async 'calls in flight to a default DO, answers held for a timer turn'(mesh) {
    const client = await connect(mesh, 'holder');
    // one batch message, so the socket takes batches; one RPC per call, and each answer but the last is held for the gateway's next timer turn (sockets.ts, sendSoon)
    return { name: 'calls in flight to a default DO, answers held for a timer turn', objects: [await gatewayId(mesh, client), await twentyIncrements(mesh, client, 'COUNTER', 'hib-held', 'batch')], lastActivity: Date.now() };
  },

  async 'a Subscriptions fan-out'(mesh) {
    const [first, second] = await Promise.all([connect(mesh, 'fan1', () => 'got it'), connect(mesh, 'fan2', () => 'got it')]);
    after.fan = first;
    const topic = { binding: 'TOPIC', instance: 'hib-topic' };
    for (const client of [first!, second!]) expect((await callOver(client.sock, topic, 'join', ['room'])).value).toBe(client.instance);
    expect(await resultOf(first!.sock, sendCall(first!.sock, topic, 'broadcast', ['room', 'news']))).toBe(2);
    return {
      name: 'a Subscriptions fan-out',
      objects: [await gatewayId(mesh, first!), await gatewayId(mesh, second!), await nodeId(mesh, 'TOPIC', 'hib-topic')],
      lastActivity: Date.now(),
    };
  },

  async 'a publish with history, and presence'(mesh) {
    const [first, second] = await Promise.all([connect(mesh, 'pub1', () => 'ok'), connect(mesh, 'pub2', () => 'ok')]);
    const topic = { binding: 'TOPIC', instance: 'hib-publish' };
    for (const client of [first!, second!]) expect((await callOver(client.sock, topic, 'enter', ['room'])).value).toMatchObject({ recovered: false, offset: 0 });
    expect(await resultOf(first!.sock, sendCall(first!.sock, topic, 'publish', ['room', 'news']))).toBe(2);
    return {
      name: 'a publish with history, and presence',
      objects: [await gatewayId(mesh, first!), await gatewayId(mesh, second!), await nodeId(mesh, 'TOPIC', 'hib-publish')],
      lastActivity: Date.now(),
    };
  },

  async 'the end of a grace period'(mesh) {
    const client = await connect(mesh, 'graceend');
    graceEndInstance = client.instance;
    client.sock.close(1000);
    await client.sock.closed;
    // The last activity is the grace alarm, GRACE_MS after the gateway saw the close (it cannot be seen from here without waking it).
    return { name: 'the end of a grace period', objects: [await gatewayId(mesh, client)], lastActivity: Date.now() + GRACE_MS };
  },

  async 'a call given up after callDeadlineMs'(mesh) {
    const client = await connect(mesh, 'deadline'); // this gateway gives calls up after 1 s
    const error = await resultOf(client.sock, sendCall(client.sock, { binding: 'LEDGER', instance: 'hib-deadline' }, 'hang'));
    expect(error).toMatchObject({ name: 'OutcomeUnknownError' });
    // The method never ends; the node answers the RPC at the deadline anyway, so neither object waits on it.
    return { name: 'a call given up after callDeadlineMs', objects: [await gatewayId(mesh, client), await nodeId(mesh, 'LEDGER', 'hib-deadline')], lastActivity: Date.now() };
  },

  async 'a mesh → client call that timed out'(mesh) {
    const client = await connect(mesh, 'silent'); // never answers incoming calls
    const result = await resultOf(client.sock, sendCall(client.sock, { binding: 'COUNTER', instance: 'hib-timeout' }, 'callClient', [client.instance, 'applyChange', [1], { timeoutMs: 1_000 }]));
    expect(result).toMatchObject({ ok: false, error: { name: 'ClientTimeoutError' } });
    return { name: 'a mesh → client call that timed out', objects: [await gatewayId(mesh, client), await nodeId(mesh, 'COUNTER', 'hib-timeout')], lastActivity: Date.now() };
  },
};

/** Per object: how long after its scenario's last activity it left memory. */
async function evictionDelays(scenario: Scenario): Promise<Array<{ label: string; ms: number }>> {
  return Promise.all(scenario.objects.map(async ({ label, id }) => {
    expect(watch().isInMemory(id), `${label} is in memory after its work`).toBe(true);
    return { label, ms: (await watch().evicted(id, 40_000)) - scenario.lastActivity };
  }));
}

async function storageOf(mesh: TestMesh, instance: string): Promise<{ keys: string[]; chars: number; text: string }> {
  const namespace = await mesh.mf.getDurableObjectNamespace('GATEWAY');
  return (await (await namespace.get(namespace.idFromName(instance)).fetch('http://gateway/__storage')).json()) as { keys: string[]; chars: number; text: string };
}

describe.concurrent('eviction', () => {
  it('every scenario leaves the gateway and its nodes as soon as a raw socket DO leaves memory', async ({ expect }) => {
    const { mesh } = suite;
    const done = await Promise.all(Object.values(scenarios).map((run) => run(mesh)));
    const delays = await Promise.all(done.map(async (scenario) => ({ scenario: scenario.name, objects: await evictionDelays(scenario) })));
    const raw = delays[0]!.objects[0]!.ms;
    console.log(`eviction after last activity (ms): ${delays.map((d) => `${d.scenario}: ${d.objects.map((o) => `${o.label} ${o.ms}`).join(', ')}`).join('; ')}`);
    expect(raw).toBeGreaterThan(5_000); // the baseline really hibernated, it did not just fail to start
    const bound = Math.max(RAW_EVICTION_BOUND_MS, raw + SLACK_MS);
    for (const { scenario, objects } of delays) {
      for (const { label, ms } of objects) expect(ms, `${scenario}: ${label} left memory ${ms} ms after its last activity (raw socket DO: ${raw} ms)`).toBeLessThanOrEqual(bound);
    }
  }, 60_000);

  it('a resend across an eviction in a 30 s grace period gets the real answer, and the call ran once', async ({ expect }) => {
    const { mesh } = suite;
    const first = await connect(mesh, 'long-grace-eo');
    const epoch = first.status.epoch;
    // Runs are counted in the node's storage: the node is evicted too while we wait.
    const to = { binding: 'LEDGER', instance: 'hib-exactly-once' };
    const inFlight = callFrame('eo-1', to, 'slowRun', ['eo', 1_500]);
    first.sock.send(inFlight);
    // Frames are read in order: once this answer is back, the slow call is running in the node.
    expect((await callOver(first.sock, to, 'runs', ['eo'])).value).toBe(1);
    first.sock.ws.terminate(); // dropped while the call runs: its answer arrives in the grace period

    const gateway = await idOf(mesh, 'GATEWAY', first.instance);
    await expect.poll(() => watch().isInMemory(gateway), { timeout: 5_000 }).toBe(true);
    await watch().evicted(gateway, 40_000); // the gateway's memory is gone; the grace period (30 s) is not over

    const second = await connect(mesh, 'long-grace-eo');
    expect(second.status).toMatchObject({ subscriptionRequired: false, epoch });
    second.sock.send({ ...inFlight, resentFrom: epoch });
    expect(await resultOf(second.sock, 'eo-1')).toBe(1);
    expect((await callOver(second.sock, to, 'runs', ['eo'])).value).toBe(1);
    // Restored and deleted at the reconnect: the steady state stores nothing again.
    expect((await storageOf(mesh, second.instance)).keys).toEqual([]);
  }, 60_000);

  it('an answer larger than one stored value (100 000 characters) survives the eviction in parts', async ({ expect }) => {
    const { mesh } = suite;
    const first = await connect(mesh, 'long-grace-big');
    const to = { binding: 'LEDGER', instance: 'hib-big' };
    const big = callFrame('big-1', to, 'bigRun', ['big', 100_000]);
    const answer = `1:${'x'.repeat(100_000)}`;
    first.sock.send(big);
    expect(await resultOf(first.sock, 'big-1')).toBe(answer);
    first.sock.ws.terminate(); // the answer was sent; say it was lost with the socket
    const gateway = await idOf(mesh, 'GATEWAY', first.instance);
    await watch().evicted(gateway, 40_000);
    // Reading storage wakes a fresh gateway; it restores nothing until a client reconnects.
    const stored = await storageOf(mesh, first.instance);
    expect(stored.keys.length).toBe(5); // the header and 4 parts of ≤ 32 Ki characters (the answer frame is ~100 K)

    const second = await connect(mesh, 'long-grace-big');
    expect(second.status.epoch).toBe(first.status.epoch);
    second.sock.send({ ...big, resentFrom: first.status.epoch });
    expect(await resultOf(second.sock, 'big-1')).toBe(answer);
    expect((await callOver(second.sock, to, 'runs', ['big'])).value).toBe(1);
  }, 60_000);

  it('a grace period that ends after an eviction deletes what the drop stored', async ({ expect }) => {
    const { mesh } = suite;
    const client = await connect(mesh, 'mid-grace');
    expect((await callOver(client.sock, { binding: 'ECHO_WORKER' }, 'shout', ['kept'])).ok).toBe(true);
    client.sock.ws.terminate();
    const gateway = await idOf(mesh, 'GATEWAY', client.instance);
    await expect.poll(() => watch().isInMemory(gateway), { timeout: 5_000 }).toBe(true);
    await watch().evicted(gateway, 40_000);
    // A fresh gateway runs the grace alarm (12 s after the drop): it reads what was stored and deletes it.
    await expect.poll(async () => (await mesh.state(client.instance)).alarm, { timeout: 10_000, interval: 500 }).toBeNull();
    expect((await storageOf(mesh, client.instance)).keys).toEqual([]);
    expect((await connect(mesh, 'mid-grace')).status.subscriptionRequired).toBe(true);
  }, 60_000);

  it('stores the grace memory only during a grace period: written at the drop (answers the client may still ask for), deleted at the reconnect', async ({ expect }) => {
    const { mesh } = suite;
    const first = await connect(mesh, 'long-grace-cost');
    // A call whose client gave up long before the drop (timeoutMs 1): its answer is not stored.
    expect((await callOver(first.sock, { binding: 'ECHO_WORKER' }, 'shout', ['given up'], { timeoutMs: 1 })).ok).toBe(true);
    for (let n = 0; n < 5; n++) expect((await callOver(first.sock, { binding: 'ECHO_WORKER' }, 'shout', [`answer ${n}`])).ok).toBe(true);
    expect((await storageOf(mesh, first.instance)).keys).toEqual([]);
    first.sock.ws.terminate();
    await expect.poll(async () => (await mesh.state(first.instance)).alarm, { timeout: 5_000 }).not.toBeNull();
    const stored = await storageOf(mesh, first.instance);
    console.log(`grace memory for 5 remembered answers: ${stored.keys.length} keys, ${stored.chars} characters`);
    expect(stored.keys).toEqual(['meshgate:grace:0', 'meshgate:grace:header']);
    for (let n = 0; n < 5; n++) expect(stored.text).toContain(`ANSWER ${n}!`);
    expect(stored.text).not.toContain('GIVEN UP!');
    await connect(mesh, 'long-grace-cost');
    expect((await storageOf(mesh, first.instance)).keys).toEqual([]);
  }, 30_000);
});

describe('after eviction', () => {
  it('a call on a socket whose gateway was evicted', async () => {
    const client = after.call!;
    expect((await callOver(client.sock, { binding: 'COUNTER', instance: 'hib-call' }, 'increment', [1])).ok).toBe(true);
  });

  it('a node → client call to an evicted gateway', async () => {
    const client = after.nodeToClient!;
    const result = await resultOf(client.sock, sendCall(client.sock, { binding: 'COUNTER', instance: 'hib-n2c' }, 'callClient', [client.instance, 'applyChange', [2]]));
    expect(result).toMatchObject({ ok: true, value: 'ran applyChange' });
  });

  it('supersession: 4409 for the old socket, subscriptionRequired: false for the new one', async () => {
    const old = after.idle!;
    const replacement = await connect(suite.mesh, 'idle');
    expect(replacement.status.subscriptionRequired).toBe(false);
    expect(await old.sock.ofType('superseded')).toMatchObject({ type: 'superseded' });
    expect((await closeFrame(old.sock)).code).toBe(4409);
  });

  it('a drop starts the grace period, and a reconnect inside it needs no resubscribe', async () => {
    const client = after.burst!;
    client.sock.ws.terminate();
    await expect.poll(async () => (await suite.mesh.state(client.instance)).alarm, { timeout: 5_000 }).not.toBeNull();
    expect((await connect(suite.mesh, 'burster')).status.subscriptionRequired).toBe(false);
  });

  it('a heartbeat is answered without waking the gateway', async () => {
    const client = after.fan!;
    const gateway = await idOf(suite.mesh, 'GATEWAY', client.instance);
    expect(watch().isInMemory(gateway)).toBe(false);
    client.sock.send('meshgate:ping');
    expect(await client.sock.next((f) => f.type === '__text' && f.text === 'meshgate:pong')).toBeTruthy();
    expect(watch().isInMemory(gateway)).toBe(false);
  });

  it('the grace period that ended left nothing in storage', async () => {
    expect(await storageOf(suite.mesh, graceEndInstance)).toMatchObject({ keys: [], chars: 0 });
  });
});
