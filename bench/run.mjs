/**
 * `npm run bench`: meshgate on embedded workerd, every figure beside the
 * physical baseline measured in the same run — a raw Durable Object that
 * accepts hibernatable WebSockets and echoes (bench/worker.ts, RawEchoDO).
 *
 * Bounded: every loop has a count and a time limit, each scenario a time
 * budget, and the whole run stops scenarios that would pass ~4.5 minutes.
 * Writes bench/results/latest.json and prints a table.
 *
 * Transport: the clients do not offer permessage-deflate, so the figures are
 * the server's and not those of the Node `ws` client's zlib (which inflates
 * every compressed message asynchronously and caps one socket at ~7–12k
 * messages/s). The `*_deflate` scenarios repeat the round trip, the
 * throughput and the memory figures with compression negotiated, as browsers
 * and `ws` do by default.
 *
 * Baselines: the raw hibernatable echo DO, and for the call scenarios also
 * the "RPC-hop floor" — a raw socket DO that forwards each message over one
 * Workers RPC hop to another DO and back (what any gateway design pays).
 *
 * Environment knobs (all optional): BENCH_ONLY=roundtrip,throughput,...
 * BENCH_SCALE=0.5 (fewer samples, for a quick look), BENCH_FANOUT_CONCURRENCY=500
 * (Subscriptions.fanOut concurrency; default: the helper's own).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { stringify as encodeValue } from 'devalue';
import WebSocket from 'ws';
import { bundleWorker, startWorkerd } from '../scripts/workerd.mjs';
import {
  ROOT, RawWs, SECRET, bounded, cpuMs, loadClient, now, pool, ratio, round, rssBytes, sleep, summary, token, versions, within, workerdPids,
} from './lib.mjs';
import { costRows, measureCost } from './cost.mjs';

const RUN_BUDGET_MS = 270_000;
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : undefined;
const n = (count) => Math.max(1, Math.round(count * SCALE));
const FANOUT_CONCURRENCY = process.env.BENCH_FANOUT_CONCURRENCY ? Number(process.env.BENCH_FANOUT_CONCURRENCY) : undefined;

const runStarted = now();
const loadAtStart = os.loadavg().map((x) => round(x, 2));
const VERSIONS = versions();
const results = [];

const { MeshClient } = await loadClient();
const script = await bundleWorker(`${ROOT}bench/worker.ts`);

/** ~100-byte messages, as in the issue's reference figures. */
const PAYLOAD = 'x'.repeat(40); // a call frame of ~130 bytes, its answer ~90
const RAW_MESSAGE = 'x'.repeat(100);

/** `ws` classes for MeshClient, with or without permessage-deflate offered. */
const socketClass = (deflate) => class extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { perMessageDeflate: deflate });
  }
};
const PlainSocket = socketClass(false);
const DeflateSocket = socketClass(true);

// ── harness ───────────────────────────────────────────────────────────────────

async function startMesh() {
  const before = new Set(workerdPids());
  const { url, dispose } = await startWorkerd({
    script,
    durableObjects: {
      GATEWAY: 'BenchGateway', BENCH: 'BenchDO', BENCH_BURSTS: 'BenchBurstDO', TOPIC: { className: 'TopicDO', useSQLite: true }, RAW: 'RawEchoDO', HOP: 'RawHopDO', HOP_TARGET: 'RawHopTargetDO',
      IDENTITY_LIMITER: { className: 'IdentityLimiter', useSQLite: true },
    },
    services: { BENCH_WORKER: 'BenchWorker' },
    bindings: { JWT_SECRET: SECRET },
  });
  const pid = workerdPids().find((p) => !before.has(p));
  return { base: `ws://${url.host}`, pid, dispose };
}

const openClients = new Set();

async function connectClient(base, sub, options = {}) {
  const c = new MeshClient({
    url: base, accessToken: await token(sub), WebSocket: PlainSocket, reconnectMinDelayMs: 50, reconnectMaxDelayMs: 500, callTimeoutMs: 60_000, ...options,
  });
  openClients.add(c);
  await within(c.connect(), 10_000, `connect ${sub}`);
  if (c.state !== 'connected') throw new Error(`client ${sub} is ${c.state} after connect`);
  return c;
}

function disconnect(c) {
  c.disconnect();
  openClients.delete(c);
}

/** A socket to the raw echo DO (`kind` 'raw') or to the RPC-hop DO ('hop'). */
async function rawSocket(base, instance, { kind = 'raw', deflate = false } = {}) {
  const raw = new RawWs(`${base}/${kind}/${encodeURIComponent(instance)}`, undefined, { perMessageDeflate: deflate });
  await within(raw.opened, 10_000, `raw socket ${instance}`);
  return raw;
}

function record(entry) {
  results.push({ ...entry, versions: VERSIONS });
}

function timeLeft() {
  return RUN_BUDGET_MS - (now() - runStarted);
}

async function scenario(name, budgetMs, fn) {
  if (ONLY && !ONLY.has(name)) return;
  if (timeLeft() < budgetMs * 0.5) {
    record({ scenario: name, skipped: `run budget nearly used (${Math.round(timeLeft() / 1000)} s left)` });
    return;
  }
  const t = now();
  process.stdout.write(`· ${name} … `);
  try {
    await within(fn(), Math.min(budgetMs, Math.max(timeLeft(), 1_000)), name);
    process.stdout.write(`${((now() - t) / 1000).toFixed(1)} s\n`);
  } catch (error) {
    process.stdout.write(`failed: ${error.message}\n`);
    record({ scenario: name, error: String(error?.message ?? error) });
  }
}

// ── sequential latency and throughput helpers ────────────────────────────────

/** Latencies (ms) of `count` sequential round trips, at most `maxMs` in all. */
async function sequential(count, maxMs, roundTrip) {
  const samples = [];
  await bounded(count, maxMs, async () => {
    const t = now();
    await roundTrip();
    samples.push(now() - t);
  });
  return samples;
}

const rawSequential = (raw, count, maxMs) => sequential(count, maxMs, () => raw.request(RAW_MESSAGE));
const meshSequential = (stub, count, maxMs) => sequential(count, maxMs, () => stub.echo(PAYLOAD));

/** Echo messages per second with `inFlight` outstanding on one raw socket. */
function rawThroughput(raw, total, inFlight, maxMs) {
  return new Promise((resolve) => {
    const t = now();
    const end = t + maxMs;
    let sent = 0;
    let done = 0;
    raw.onText = () => {
      done++;
      if (sent < total && now() < end) {
        sent++;
        raw.send(RAW_MESSAGE);
      } else if (done === sent) {
        raw.onText = undefined;
        resolve({ perSecond: done / ((now() - t) / 1000), count: done });
      }
    };
    for (; sent < inFlight; sent++) raw.send(RAW_MESSAGE);
  });
}

/** Calls per second with `inFlight` outstanding from one client. */
async function meshThroughput(stub, total, inFlight, maxMs) {
  const t = now();
  const end = t + maxMs;
  let sent = 0;
  let done = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (sent < total && now() < end) {
      sent++;
      await stub.echo(PAYLOAD);
      done++;
    }
  }));
  return { perSecond: done / ((now() - t) / 1000), count: done };
}

// ── scenarios ─────────────────────────────────────────────────────────────────

const main = await startMesh();
const BASE = main.base;

function roundtripScenario(name, deflate) {
  return scenario(name, 60_000, async () => {
    const c = await connectClient(BASE, name, { WebSocket: deflate ? DeflateSocket : PlainSocket });
    const stub = c.node('BENCH', name);
    const raw = await rawSocket(BASE, name, { deflate });
    const hop = await rawSocket(BASE, name, { kind: 'hop', deflate });
    // Warm-up: JIT on both sides, DO instances created.
    await rawSequential(raw, n(500), 5_000);
    await rawSequential(hop, n(500), 5_000);
    await meshSequential(stub, n(500), 5_000);
    // Alternate blocks so drift (other load, GC) hits all sides alike.
    const rawSamples = [];
    const hopSamples = [];
    const meshSamples = [];
    const cpu = { raw: 0, hop: 0, mesh: 0 };
    const timed = async (side, samples, run) => {
      const c0 = cpuMs(main.pid);
      samples.push(...(await run()));
      cpu[side] += cpuMs(main.pid) - c0;
    };
    for (let block = 0; block < 5; block++) {
      await timed('raw', rawSamples, () => rawSequential(raw, n(500), 8_000));
      await timed('hop', hopSamples, () => rawSequential(hop, n(500), 8_000));
      await timed('mesh', meshSamples, () => meshSequential(stub, n(500), 8_000));
    }
    const m = { ...summary(meshSamples), workerdCpuUsPerCall: round((cpu.mesh * 1000) / meshSamples.length, 0) };
    const b = { ...summary(rawSamples), workerdCpuUsPerCall: round((cpu.raw * 1000) / rawSamples.length, 0) };
    const h = { ...summary(hopSamples), workerdCpuUsPerCall: round((cpu.hop * 1000) / hopSamples.length, 0) };
    record({
      scenario: name, unit: 'ms', deflate,
      what: 'sequential client → gateway → DO → client call (echo of a 40-character string)',
      measured: m, baseline: { name: 'raw hibernatable echo, 100-byte message', ...b },
      baselineHop: { name: 'RPC-hop floor: raw socket DO → one Workers RPC to another DO → back', ...h },
      ratio: { p50: ratio(m.p50, b.p50), p90: ratio(m.p90, b.p90), p99: ratio(m.p99, b.p99), p50VsHop: ratio(m.p50, h.p50) },
      samples: { measured: m.n, baseline: b.n, baselineHop: h.n }, target: 'p50 ≤ 1.5× raw',
    });
    raw.terminate();
    hop.terminate();
    disconnect(c);
  });
}

function throughputScenario(name, deflate) {
  return scenario(name, 60_000, async () => {
    const c = await connectClient(BASE, name, { WebSocket: deflate ? DeflateSocket : PlainSocket });
    const stub = c.node('BENCH', name);
    const workerStub = c.node('BENCH_WORKER');
    const burstStub = c.node('BENCH_BURSTS', name);
    const raw = await rawSocket(BASE, name, { deflate });
    const hop = await rawSocket(BASE, name, { kind: 'hop', deflate });
    const IN_FLIGHT = 64;
    await rawThroughput(raw, n(3_000), IN_FLIGHT, 1_500);
    await rawThroughput(hop, n(3_000), IN_FLIGHT, 1_500);
    await meshThroughput(stub, n(3_000), IN_FLIGHT, 1_500);
    await meshThroughput(workerStub, n(3_000), IN_FLIGHT, 1_500);
    await meshThroughput(burstStub, n(3_000), IN_FLIGHT, 1_500);
    const burstRuns = [];
    const rawRuns = [];
    const hopRuns = [];
    const meshRuns = [];
    const workerRuns = [];
    const cpu = { raw: 0, hop: 0, mesh: 0, worker: 0, bursts: 0 };
    const timed = async (side, runs, run) => {
      const c0 = cpuMs(main.pid);
      runs.push(await run());
      cpu[side] += cpuMs(main.pid) - c0;
    };
    const runMs = deflate ? 2_000 : 3_000; // with deflate the Node client's inflate is the bottleneck: fewer messages fit
    for (let r = 0; r < 3; r++) {
      await timed('raw', rawRuns, () => rawThroughput(raw, n(20_000), IN_FLIGHT, runMs));
      await timed('hop', hopRuns, () => rawThroughput(hop, n(10_000), IN_FLIGHT, runMs));
      await timed('mesh', meshRuns, () => meshThroughput(stub, n(10_000), IN_FLIGHT, runMs));
      await timed('worker', workerRuns, () => meshThroughput(workerStub, n(10_000), IN_FLIGHT, runMs));
      await timed('bursts', burstRuns, () => meshThroughput(burstStub, n(10_000), IN_FLIGHT, runMs));
    }
    const median = (runs) => Math.round(runs.map((x) => x.perSecond).sort((a, b) => a - b)[Math.floor(runs.length / 2)]);
    const runsOf = (runs) => runs.map((x) => Math.round(x.perSecond));
    const count = (runs) => runs.reduce((sum, x) => sum + x.count, 0);
    const cpuPerCall = (side, runs) => round((cpu[side] * 1000) / count(runs), 0);
    const m = median(meshRuns);
    const b = median(rawRuns);
    const h = median(hopRuns);
    record({
      scenario: name, unit: 'per second', deflate,
      what: `calls/s with ${IN_FLIGHT} in flight from one client (median of ${meshRuns.length} runs)`,
      measured: {
        perSecond: m, runs: runsOf(meshRuns), workerdCpuUsPerCall: cpuPerCall('mesh', meshRuns),
        // The same calls to a MeshWorker, and to a Durable Object that accepts bursts: a burst shares one RPC there.
        toWorker: { perSecond: median(workerRuns), runs: runsOf(workerRuns), workerdCpuUsPerCall: cpuPerCall('worker', workerRuns) },
        toBurstDO: { perSecond: median(burstRuns), runs: runsOf(burstRuns), workerdCpuUsPerCall: cpuPerCall('bursts', burstRuns) },
      },
      baseline: { name: `raw echo messages/s with ${IN_FLIGHT} in flight`, perSecond: b, runs: runsOf(rawRuns), workerdCpuUsPerCall: cpuPerCall('raw', rawRuns) },
      baselineHop: { name: `RPC-hop floor messages/s with ${IN_FLIGHT} in flight`, perSecond: h, runs: runsOf(hopRuns), workerdCpuUsPerCall: cpuPerCall('hop', hopRuns) },
      ratio: { perSecond: ratio(m, b), perSecondVsHop: ratio(m, h), toWorker: ratio(median(workerRuns), b), toBurstDO: ratio(median(burstRuns), b) },
      samples: { measured: count(meshRuns), baseline: count(rawRuns), baselineHop: count(hopRuns) }, target: '≥ 0.5× raw',
    });
    raw.terminate();
    hop.terminate();
    disconnect(c);
  });
}

await roundtripScenario('roundtrip', false);
await throughputScenario('throughput', false);

await scenario('to_client', 40_000, async () => {
  let arrivals = [];
  const c = await connectClient(BASE, 'tc', {
    handlers: { ping: (i) => { arrivals.push(now()); return i; } },
  });
  const stub = c.node('BENCH', 'tc');
  const raw = await rawSocket(BASE, 'tc');
  // Raw baseline: a ping-pong over one socket, timed between arrivals at the client.
  const rawPingPong = (count, maxMs) => new Promise((resolve) => {
    const times = [];
    const end = now() + maxMs;
    raw.onText = () => {
      times.push(now());
      if (times.length < count && now() < end) raw.send(RAW_MESSAGE);
      else {
        raw.onText = undefined;
        resolve(times);
      }
    };
    raw.send(RAW_MESSAGE);
  });
  const gaps = (times) => times.slice(1).map((t, i) => t - times[i]);
  await rawPingPong(n(300), 3_000);
  await stub.callClientLoop(c.instanceName, n(300));
  const rawSamples = [];
  const meshSamples = [];
  for (let block = 0; block < 3; block++) {
    rawSamples.push(...gaps(await rawPingPong(n(600), 5_000)));
    arrivals = [];
    await stub.callClientLoop(c.instanceName, n(600));
    meshSamples.push(...gaps(arrivals));
  }
  const m = summary(meshSamples);
  const b = summary(rawSamples);
  record({
    scenario: 'to_client', unit: 'ms', what: 'DO → gateway → client → gateway → DO call round trip (gap between consecutive sequential calls at the client)',
    measured: m, baseline: { name: 'raw echo ping-pong, gap between arrivals', ...b },
    ratio: { p50: ratio(m.p50, b.p50), p99: ratio(m.p99, b.p99) },
    samples: { measured: m.n, baseline: b.n },
  });
  raw.terminate();
  disconnect(c);
});

await scenario('supersede', 60_000, async () => {
  const driver = await connectClient(BASE, 'driver');
  const bench = driver.node('BENCH', 'sup');
  const gatewayUrl = (instance) => `${BASE}/gateway/GATEWAY/${encodeURIComponent(instance)}`;
  const closeAfterOpen = [];
  const closeAfterConnect = [];
  const followAfterConnect = [];
  const supersededFrameAfterOpen = [];
  const followAfterOpen = [];
  const connectToOpen = [];
  const rawConnect = [];
  const trials = n(60);
  const jwt = await token('sup');
  const protocols = ['meshgate', `meshgate.token.${jwt}`];
  await bounded(trials, 40_000, async (i) => {
    // Baseline: a plain upgrade to the raw DO.
    const t0raw = now();
    const r = await rawSocket(BASE, `sup-${i % 4}`);
    rawConnect.push(r.openedAt - t0raw);
    r.terminate();

    const instance = `sup.t${i}`;
    // The first socket, with a DO → client call in flight that it never answers.
    const first = new RawWs(gatewayUrl(instance), protocols, { perMessageDeflate: false });
    const frames = [];
    const firstFrame = (type) => new Promise((resolve) => frames.push({ type, resolve }));
    first.onText = (text) => {
      const frame = JSON.parse(text);
      for (const f of frames) if (f.type === frame.type && !f.done) { f.done = true; f.at = now(); f.resolve(frame); }
    };
    const status = firstFrame('connection_status');
    await within(first.opened, 5_000, 'first open');
    await within(status, 5_000, 'first status');
    const incoming = firstFrame('incoming_call');
    const superseded = firstFrame('superseded');
    const pendingCall = bench.callClientOnce(instance, i, 10_000);
    await within(incoming, 5_000, 'incoming call on the first socket');
    let supersededAt;
    void superseded.then(() => { supersededAt = now(); });
    const closed = new Promise((resolve) => { first.onCloseFrame = resolve; });

    // The second socket: open, then the call follows it here.
    const t0 = now();
    const second = new RawWs(gatewayUrl(instance), protocols, { perMessageDeflate: false });
    let followedAt;
    const followed = new Promise((resolve) => {
      second.onText = (text) => {
        const frame = JSON.parse(text);
        if (frame.type === 'incoming_call') {
          followedAt ??= now();
          second.send(JSON.stringify({ type: 'incoming_call_response', id: frame.id, ok: true, result: encodeValue(frame.args.length) }));
          resolve();
        }
      };
    });
    await within(second.opened, 5_000, 'second open');
    const close = await within(closed, 5_000, 'first socket close frame');
    await within(followed, 5_000, 'call delivered on the second socket');
    await within(pendingCall, 5_000, 'call answered from the second socket');
    if (close.code !== 4409) throw new Error(`first socket closed with ${close.code}, expected 4409`);
    connectToOpen.push(second.openedAt - t0);
    closeAfterOpen.push(close.at - second.openedAt);
    closeAfterConnect.push(close.at - t0);
    followAfterConnect.push(followedAt - t0);
    if (supersededAt !== undefined) supersededFrameAfterOpen.push(supersededAt - second.openedAt);
    followAfterOpen.push(followedAt - second.openedAt);
    first.terminate();
    second.terminate();
  });
  const close = summary(closeAfterOpen);
  const follow = summary(followAfterOpen);
  const open = summary(connectToOpen);
  const b = summary(rawConnect);
  record({
    scenario: 'supersede', unit: 'ms',
    what: 'a second socket for the same identity: from its open to the first socket\'s 4409 close frame, and to the first DO → client call delivered on it (a call in flight on the first socket follows)',
    measured: {
      closeAfterOpen: close, supersededFrameAfterOpen: summary(supersededFrameAfterOpen), followedCallAfterOpen: follow, connectToOpen: open,
      closeAfterConnect: summary(closeAfterConnect), followedCallAfterConnect: summary(followAfterConnect),
    },
    baseline: { name: 'raw DO upgrade, connect → open', ...b },
    ratio: { connectToOpen_p50: ratio(open.p50, b.p50), connectToOpen_p99: ratio(open.p99, b.p99) },
    samples: { measured: close.n, baseline: b.n },
    note: 'The gateway closes the old socket before it accepts the new one, so the 4409 close frame usually reaches the client before the new socket\'s open event (figures ≤ 0); the *AfterConnect figures count from the new socket\'s connect instead.',
  });
  disconnect(driver);
});

await scenario('reconnect', 40_000, async () => {
  const sockets = [];
  class TrackedSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { perMessageDeflate: false });
      this.on('error', () => {});
      sockets.push(this);
    }
  }
  const MIN_DELAY = 5;
  const c = await connectClient(BASE, 'rc', { WebSocket: TrackedSocket, reconnectMinDelayMs: MIN_DELAY, reconnectMaxDelayMs: 1_000 });
  const stub = c.node('BENCH', 'rc');
  await meshSequential(stub, 50, 2_000);
  const raw0 = await rawSocket(BASE, 'rc');
  await rawSequential(raw0, 50, 2_000);
  raw0.terminate();
  const meshSamples = [];
  const rawSamples = [];
  await bounded(n(60), 30_000, async (i) => {
    // meshgate: drop the TCP connection, call at once; the call waits for the automatic reconnect.
    const ws = sockets.at(-1);
    const t0 = now();
    ws.terminate();
    await within(stub.echo(PAYLOAD), 10_000, 'call after reconnect');
    meshSamples.push(now() - t0);
    if (c.state !== 'connected') throw new Error(`client is ${c.state}`);
    // baseline: drop a raw socket, open a new one, one echo.
    const before = await rawSocket(BASE, `rc-${i}`);
    const t1 = now();
    before.terminate();
    const after = await rawSocket(BASE, `rc-${i}`);
    await after.request(RAW_MESSAGE);
    rawSamples.push(now() - t1);
    after.terminate();
  });
  const m = summary(meshSamples);
  const b = summary(rawSamples);
  record({
    scenario: 'reconnect', unit: 'ms',
    what: `dropped socket (TCP terminated) → automatic reconnect inside the grace period → first call answered; backoff first delay ${MIN_DELAY / 2}–${MIN_DELAY} ms`,
    measured: m, baseline: { name: 'raw: drop, new upgrade, one echo (no backoff, no token)', ...b },
    ratio: { p50: ratio(m.p50, b.p50), p99: ratio(m.p99, b.p99) },
    samples: { measured: m.n, baseline: b.n },
  });
  disconnect(c);
});

await roundtripScenario('roundtrip_deflate', true);
await throughputScenario('throughput_deflate', true);

await main.dispose();

// ── 500 clients: memory, calls, fan-out ───────────────────────────────────────

const CLIENTS = n(500);
const FANOUT_ROUNDS = 5;
const rawFanout = {};

/** Waits for RSS to settle (two readings within 1%), bounded; returns bytes. */
async function settledRss(pid) {
  let last = rssBytes(pid);
  for (let i = 0; i < 10; i++) {
    await sleep(300);
    const next = rssBytes(pid);
    if (Math.abs(next - last) < last * 0.01) return next;
    last = next;
  }
  return last;
}

/**
 * Idle connections to the raw echo DO (one DO each, like one gateway each),
 * on a workerd of their own so the memory figures do not share an allocator.
 * Optionally then 10 sequential echoes on every socket, and the fan-out baseline.
 */
async function rawConnections({ deflate, calls, fanout }) {
  const mesh = await startMesh();
  const result = {};
  try {
    const warm = await rawSocket(mesh.base, 'warm', { deflate });
    await rawSequential(warm, 100, 2_000);
    const before = await settledRss(mesh.pid);
    const sockets = [];
    await pool(CLIENTS, 50, async (i) => {
      sockets[i] = await rawSocket(mesh.base, `m${i}`, { deflate });
    });
    const after = await settledRss(mesh.pid);
    Object.assign(result, { bytesPerConnection: Math.round((after - before) / CLIENTS), rssBefore: before, rssAfter: after });
    if (calls) {
      const latencies = [];
      const t = now();
      await Promise.all(sockets.map(async (s) => {
        for (let k = 0; k < 10; k++) {
          const t1 = now();
          await s.request(RAW_MESSAGE);
          latencies.push(now() - t1);
        }
      }));
      result.callsTotalMs = round(now() - t);
      result.callLatency = summary(latencies);
    }
    for (const s of sockets) s.terminate();

    // Fan-out baseline: one raw DO sends to N sockets, each acknowledges.
    for (const N of fanout ? [100, 500].map(n) : []) {
      const arrivals = new Map();
      const fans = [];
      await pool(N, 50, async (i) => {
        const s = await rawSocket(mesh.base, `fan${N}`);
        s.onText = (text) => {
          if (!text.startsWith('!f:')) return;
          arrivals.get(text.slice(3))?.push(now());
          s.send('!ack');
        };
        fans[i] = s;
      });
      const driverSock = await rawSocket(mesh.base, `fan${N}`);
      const perClient = [];
      const totals = [];
      for (let r = 0; r <= FANOUT_ROUNDS; r++) {
        arrivals.set(String(r), []);
        const t0 = now();
        const done = await within(driverSock.request(`!fan:${r}`), 10_000, 'raw fan-out');
        if (done === '!done:0') throw new Error('raw fan-out reached no socket');
        if (r === 0) continue; // warm-up
        totals.push(now() - t0);
        perClient.push(...arrivals.get(String(r)).map((at) => at - t0));
      }
      rawFanout[N] = { total: summary(totals), perClient: summary(perClient) };
      for (const s of [...fans, driverSock]) s.terminate();
    }
  } finally {
    await mesh.dispose();
  }
  return result;
}

/** The same with meshgate clients (one gateway DO each), then calls and fan-out through the mesh. */
async function meshConnections({ deflate, calls, fanout }) {
  const mesh = await startMesh();
  const clients = [];
  const result = {};
  try {
    const fanArrivals = new Map();
    const handlers = { notify: (r) => { fanArrivals.get(r)?.push(now()); return r; } };
    const WebSocketClass = deflate ? DeflateSocket : PlainSocket;
    const warm = await connectClient(mesh.base, 'warm', { handlers, WebSocket: WebSocketClass });
    await meshSequential(warm.node('BENCH', 'shared'), 100, 2_000);
    const before = await settledRss(mesh.pid);
    await pool(CLIENTS, 50, async (i) => {
      clients[i] = await connectClient(mesh.base, `c${i}`, { handlers, WebSocket: WebSocketClass });
    });
    const after = await settledRss(mesh.pid);
    Object.assign(result, { bytesPerConnection: Math.round((after - before) / CLIENTS), rssBefore: before, rssAfter: after });
    if (calls) {
      const latencies = [];
      const t = now();
      await Promise.all(clients.map(async (c) => {
        const stub = c.node('BENCH', 'shared');
        for (let k = 0; k < 10; k++) {
          const t1 = now();
          await stub.echo(PAYLOAD);
          latencies.push(now() - t1);
        }
      }));
      result.callsTotalMs = round(now() - t);
      result.callLatency = summary(latencies);
    }

    // Fan-out: one DO calls N subscribed clients through their gateways.
    if (fanout) {
      const driver = await connectClient(mesh.base, 'fandriver');
      const topic = driver.node('TOPIC', 'fan');
      for (const N of [100, 500].map(n)) {
        const name = `fan${N}`;
        await topic.clear(name);
        await Promise.all(clients.slice(0, N).map((c) => c.node('TOPIC', 'fan').join(name)));
        // The same rounds as a call (all answers awaited) and as a notification (none awaited).
        for (const [kind, publish, offset] of [['fanout', 'broadcast', 0], ['notify', 'announce', 50]]) {
          const perClient = [];
          const totals = [];
          for (let r = 0; r <= FANOUT_ROUNDS; r++) {
            const key = N * 100 + offset + r;
            fanArrivals.set(key, []);
            const t0 = now();
            const outcome = await within(topic[publish](name, key, FANOUT_CONCURRENCY), 30_000, `${kind} to ${N}`);
            const total = now() - t0;
            if (outcome.delivered !== N) throw new Error(`${kind} delivered ${outcome.delivered} of ${N}`);
            // Every client must have the call before the next round (a notification's publish returns first).
            for (let i = 0; i < 2_000 && fanArrivals.get(key).length < N; i++) await sleep(5);
            if (fanArrivals.get(key).length < N) throw new Error(`${kind}: ${fanArrivals.get(key).length} of ${N} clients got the call`);
            if (r === 0) continue; // warm-up
            totals.push(total);
            perClient.push(...fanArrivals.get(key).map((at) => at - t0));
          }
          (result[kind] ??= {})[N] = { total: summary(totals), perClient: summary(perClient) };
        }
      }
    }
  } finally {
    for (const c of [...openClients]) disconnect(c);
    await mesh.dispose();
  }
  return result;
}

function recordClients(name, deflate, m, b) {
  record({
    scenario: name, unit: 'bytes / ms', deflate,
    what: `${CLIENTS} idle connected clients: workerd RSS growth per connection${m.callLatency ? `; then all ${CLIENTS} make 10 sequential calls each (to one shared DO)` : ''}`,
    measured: { bytesPerConnection: m.bytesPerConnection, rssBefore: m.rssBefore, rssAfter: m.rssAfter, callsTotalMs: m.callsTotalMs ?? null, callLatency: m.callLatency ?? null },
    baseline: {
      name: `${CLIENTS} raw hibernatable sockets, one raw echo DO each (separate workerd)${b.callLatency ? '; then 10 sequential echoes each' : ''}`,
      bytesPerConnection: b.bytesPerConnection ?? null, rssBefore: b.rssBefore ?? null, rssAfter: b.rssAfter ?? null,
      callsTotalMs: b.callsTotalMs ?? null, callLatency: b.callLatency ?? null,
    },
    ratio: {
      bytesPerConnection: ratio(m.bytesPerConnection, b.bytesPerConnection),
      callsTotalMs: ratio(m.callsTotalMs, b.callsTotalMs), p99: ratio(m.callLatency?.p99, b.callLatency?.p99),
    },
    samples: { measured: m.callLatency?.n ?? 0, baseline: b.callLatency?.n ?? 0, connections: CLIENTS },
    note: 'workerd (Miniflare) keeps every Durable Object instance resident; most of each figure is the DO instance itself, not the socket.',
  });
}

await scenario('clients', 150_000, async () => {
  const b = await rawConnections({ deflate: false, calls: true, fanout: true });
  const m = await meshConnections({ deflate: false, calls: true, fanout: true });
  recordClients('clients', false, m, b);
  for (const N of [100, 500].map(n)) {
    const fm = m.fanout[N];
    const fb = rawFanout[N];
    record({
      scenario: `fanout_${N}`, unit: 'ms',
      what: `one DO calls ${N} subscribed clients (Subscriptions.fanOut, concurrency ${FANOUT_CONCURRENCY ?? 'default (64)'}) — total: trigger → all ${N} answered; per client: trigger → call received`,
      measured: fm, baseline: fb ? { name: `one raw DO sends to ${N} sockets, each acknowledges`, ...fb } : null,
      ratio: fb ? { total_p50: ratio(fm.total.p50, fb.total.p50), perClient_p50: ratio(fm.perClient.p50, fb.perClient.p50), perClient_p99: ratio(fm.perClient.p99, fb.perClient.p99) } : null,
      samples: { measured: fm.perClient.n, baseline: fb?.perClient.n ?? 0, rounds: FANOUT_ROUNDS },
    });
    const nm = m.notify[N];
    record({
      scenario: `notify_${N}`, unit: 'ms',
      what: `one DO notifies ${N} subscribed clients (Subscriptions.notify: answers not awaited) — total: trigger → publish returned (every gateway has the call); per client: trigger → call received`,
      measured: nm, baseline: fb ? { name: `one raw DO sends to ${N} sockets, each acknowledges`, ...fb } : null,
      ratio: fb ? { total_p50: ratio(nm.total.p50, fb.total.p50), perClient_p50: ratio(nm.perClient.p50, fb.perClient.p50), perClient_p99: ratio(nm.perClient.p99, fb.perClient.p99) } : null,
      samples: { measured: nm.perClient.n, baseline: fb?.perClient.n ?? 0, rounds: FANOUT_ROUNDS },
    });
  }
});

await scenario('clients_deflate', 90_000, async () => {
  const b = await rawConnections({ deflate: true, calls: false, fanout: false });
  const m = await meshConnections({ deflate: true, calls: false, fanout: false });
  recordClients('clients_deflate', true, m, b);
});

for (const c of [...openClients]) disconnect(c);

// Its own mesh, after the others: it waits for evictions, which work elsewhere would delay.
await scenario('cost', 60_000, async () => record(await measureCost({ script, MeshClient, WebSocket: PlainSocket })));

// ── output ────────────────────────────────────────────────────────────────────

const machine = {
  cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, memoryGiB: round(os.totalmem() / 2 ** 30, 1), platform: `${os.platform()} ${os.release()}`,
  // Other work on the machine skews every figure: the 1/5/15-minute load averages at the start and the end of the run.
  loadAverage: { start: loadAtStart, end: os.loadavg().map((x) => round(x, 2)) },
};
const output = { generatedAt: new Date().toISOString(), durationSeconds: round((now() - runStarted) / 1000, 1), machine, versions: VERSIONS, scenarios: results };
mkdirSync(`${ROOT}bench/results`, { recursive: true });
writeFileSync(`${ROOT}bench/results/latest.json`, `${JSON.stringify(output, null, 2)}\n`);

const rows = [];
const fmt = (x) => (x === null || x === undefined ? '—' : typeof x === 'number' ? (Math.abs(x) >= 1000 ? Math.round(x).toLocaleString('en-US') : String(round(x, 2))) : String(x));
const times = (r) => (r === null || r === undefined ? '—' : `${r}×`);
const row = (scenarioName, metric, measured, baseline, r, count, hop = null) =>
  rows.push([scenarioName, metric, fmt(measured), fmt(baseline), times(r), fmt(hop), fmt(count)]);
for (const s of results) {
  if (s.error || s.skipped) {
    rows.push([s.scenario, s.error ? `ERROR: ${s.error}` : `skipped: ${s.skipped}`, '', '', '', '', '']);
    continue;
  }
  const { measured: m, baseline: b } = s;
  switch (s.scenario) {
    case 'roundtrip':
    case 'roundtrip_deflate':
      for (const p of ['p50', 'p90', 'p99']) row(s.scenario, `${p} ms`, m[p], b[p], ratio(m[p], b[p]), p === 'p50' ? m.n : null, s.baselineHop[p]);
      row(s.scenario, 'workerd CPU µs / call', m.workerdCpuUsPerCall, b.workerdCpuUsPerCall, ratio(m.workerdCpuUsPerCall, b.workerdCpuUsPerCall), null, s.baselineHop.workerdCpuUsPerCall);
      break;
    case 'to_client':
    case 'reconnect':
      for (const p of ['p50', 'p90', 'p99']) row(s.scenario, `${p} ms`, m[p], b[p], ratio(m[p], b[p]), p === 'p50' ? m.n : null);
      break;
    case 'throughput':
    case 'throughput_deflate':
      row(s.scenario, 'per second, 64 in flight (to a DO)', m.perSecond, b.perSecond, s.ratio.perSecond, s.samples.measured, s.baselineHop.perSecond);
      row(s.scenario, 'workerd CPU µs / call (to a DO)', m.workerdCpuUsPerCall, b.workerdCpuUsPerCall, ratio(m.workerdCpuUsPerCall, b.workerdCpuUsPerCall), null, s.baselineHop.workerdCpuUsPerCall);
      row(s.scenario, 'per second, 64 in flight (DO with bursts)', m.toBurstDO.perSecond, b.perSecond, ratio(m.toBurstDO.perSecond, b.perSecond), null, s.baselineHop.perSecond);
      row(s.scenario, 'workerd CPU µs / call (DO with bursts)', m.toBurstDO.workerdCpuUsPerCall, b.workerdCpuUsPerCall, ratio(m.toBurstDO.workerdCpuUsPerCall, b.workerdCpuUsPerCall), null, s.baselineHop.workerdCpuUsPerCall);
      row(s.scenario, 'per second, 64 in flight (to a Worker)', m.toWorker.perSecond, b.perSecond, ratio(m.toWorker.perSecond, b.perSecond), null, s.baselineHop.perSecond);
      row(s.scenario, 'workerd CPU µs / call (to a Worker)', m.toWorker.workerdCpuUsPerCall, b.workerdCpuUsPerCall, ratio(m.toWorker.workerdCpuUsPerCall, b.workerdCpuUsPerCall), null, s.baselineHop.workerdCpuUsPerCall);
      break;
    case 'supersede':
      row(s.scenario, 'open → old 4409 close p50 ms', m.closeAfterOpen.p50, null, null, m.closeAfterOpen.n);
      row(s.scenario, 'open → old 4409 close p99 ms', m.closeAfterOpen.p99, null, null, null);
      row(s.scenario, 'open → call on new socket p50 ms', m.followedCallAfterOpen.p50, null, null, null);
      row(s.scenario, 'open → call on new socket p99 ms', m.followedCallAfterOpen.p99, null, null, null);
      row(s.scenario, 'connect → old 4409 close p50 ms', m.closeAfterConnect.p50, null, null, null);
      row(s.scenario, 'connect → call on new socket p50 ms', m.followedCallAfterConnect.p50, null, null, null);
      row(s.scenario, 'connect → open p50 ms', m.connectToOpen.p50, b.p50, s.ratio.connectToOpen_p50, null);
      row(s.scenario, 'connect → open p99 ms', m.connectToOpen.p99, b.p99, s.ratio.connectToOpen_p99, null);
      break;
    case 'clients':
    case 'clients_deflate':
      row(s.scenario, 'RSS bytes / idle connection', m.bytesPerConnection, b.bytesPerConnection, s.ratio.bytesPerConnection, s.samples.connections);
      if (m.callLatency) {
        row(s.scenario, `${s.samples.connections}×10 calls total ms`, m.callsTotalMs, b.callsTotalMs, s.ratio.callsTotalMs, m.callLatency.n);
        row(s.scenario, `${s.samples.connections}×10 calls p99 ms`, m.callLatency.p99, b.callLatency?.p99, s.ratio.p99, null);
      }
      break;
    case 'cost':
      for (const [metric, mesh, raw] of costRows(s)) row(s.scenario, metric, mesh, raw, ratio(mesh, raw), null);
      break;
    default:
      if (s.scenario.startsWith('fanout_')) {
        row(s.scenario, 'all answered p50 ms', m.total.p50, b?.total.p50, s.ratio?.total_p50, m.total.n);
        row(s.scenario, 'all answered p99 ms', m.total.p99, b?.total.p99, ratio(m.total.p99, b?.total.p99), null);
        row(s.scenario, 'per client p50 ms', m.perClient.p50, b?.perClient.p50, s.ratio?.perClient_p50, m.perClient.n);
        row(s.scenario, 'per client p99 ms', m.perClient.p99, b?.perClient.p99, s.ratio?.perClient_p99, null);
      }
      if (s.scenario.startsWith('notify_')) {
        row(s.scenario, 'publish returned p50 ms', m.total.p50, b?.total.p50, s.ratio?.total_p50, m.total.n);
        row(s.scenario, 'publish returned p99 ms', m.total.p99, b?.total.p99, ratio(m.total.p99, b?.total.p99), null);
        row(s.scenario, 'per client p50 ms', m.perClient.p50, b?.perClient.p50, s.ratio?.perClient_p50, m.perClient.n);
        row(s.scenario, 'per client p99 ms', m.perClient.p99, b?.perClient.p99, s.ratio?.perClient_p99, null);
      }
  }
}
const header = ['scenario', 'metric', 'meshgate', 'raw echo', 'ratio', 'RPC-hop floor', 'n'];
const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
const line = (cells) => cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
console.log(`\nmeshgate bench — node ${VERSIONS.node}, workerd ${VERSIONS.workerd}, ${VERSIONS.codec}, ${machine.cpus} × ${machine.cpuModel}`);
console.log(`(no permessage-deflate unless the scenario says _deflate; ratio = meshgate / raw echo; load average ${machine.loadAverage.start[0]} → ${machine.loadAverage.end[0]})`);
console.log(line(header));
console.log(widths.map((w) => '─'.repeat(w)).join('  '));
for (const r of rows) console.log(line(r));
console.log(`\n${output.durationSeconds} s; wrote bench/results/latest.json`);
process.exit(results.some((s) => s.error) ? 1 : 0);
