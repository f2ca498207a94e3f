/**
 * Many connected clients, each on a workerd of its side's own so the memory
 * figures do not share an allocator: RSS per idle connection, then calls from
 * all of them, then fan-out from one DO to N subscribed clients. The raw side
 * (one raw echo DO per socket, like one gateway per client) is measured first
 * and passed to the figures it is the baseline of.
 */
import { DeflateSocket, PlainSocket, RAW_MESSAGE, PAYLOAD } from '../harness.mjs';
import { meshSequential, rawSequential, settledRss } from '../measure.mjs';
import { now, pool, ratio, round, sleep, summary, within } from '../lib.mjs';

const FANOUT_ROUNDS = 5;
const CALLS_PER_CLIENT = 10;

/** `CALLS_PER_CLIENT` sequential round trips on every connection at once: total time and latencies. */
async function callsFromAll(connections, roundTrip) {
  const latencies = [];
  const t = now();
  await Promise.all(connections.map(async (connection) => {
    for (let k = 0; k < CALLS_PER_CLIENT; k++) {
      const t1 = now();
      await roundTrip(connection);
      latencies.push(now() - t1);
    }
  }));
  return { callsTotalMs: round(now() - t), callLatency: summary(latencies) };
}

/** RSS growth per connection while `open(i)` opens `count` of them, at most 50 at once. */
async function memoryPerConnection(pid, count, open) {
  const before = await settledRss(pid);
  await pool(count, 50, open);
  const after = await settledRss(pid);
  return { bytesPerConnection: Math.round((after - before) / count), rssBefore: before, rssAfter: after };
}

/** Idle connections to the raw echo DO; optionally then echoes on every socket, and the raw fan-out per N. */
async function rawConnections({ startMesh, n }, { deflate, calls, fanout }) {
  const mesh = await startMesh();
  const count = n(500);
  try {
    const warm = await mesh.rawSocket('warm', { deflate });
    await rawSequential(warm, 100, 2_000);
    const sockets = [];
    const result = await memoryPerConnection(mesh.pid, count, async (i) => {
      sockets[i] = await mesh.rawSocket(`m${i}`, { deflate });
    });
    if (calls) Object.assign(result, await callsFromAll(sockets, (s) => s.request(RAW_MESSAGE)));
    for (const s of sockets) s.terminate();

    // Fan-out baseline: one raw DO sends to N sockets, each acknowledges.
    if (fanout) result.fanout = {};
    for (const N of fanout ? [100, 500].map(n) : []) {
      const arrivals = new Map();
      const fans = [];
      await pool(N, 50, async (i) => {
        const s = await mesh.rawSocket(`fan${N}`);
        s.onText = (text) => {
          if (!text.startsWith('!f:')) return;
          arrivals.get(text.slice(3))?.push(now());
          s.send('!ack');
        };
        fans[i] = s;
      });
      const driverSock = await mesh.rawSocket(`fan${N}`);
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
      result.fanout[N] = { total: summary(totals), perClient: summary(perClient) };
      for (const s of [...fans, driverSock]) s.terminate();
    }
    return result;
  } finally {
    await mesh.dispose();
  }
}

/** The same with meshgate clients (one gateway DO each), then calls and fan-out through the mesh. */
async function meshConnections({ startMesh, n, fanoutConcurrency }, { deflate, calls, fanout }) {
  const mesh = await startMesh();
  const count = n(500);
  try {
    const fanArrivals = new Map();
    const handlers = { notify: (r) => { fanArrivals.get(r)?.push(now()); return r; } };
    const WebSocketClass = deflate ? DeflateSocket : PlainSocket;
    const warm = await mesh.connect('warm', { handlers, WebSocket: WebSocketClass });
    await meshSequential(warm.node('BENCH', 'shared'), 100, 2_000);
    const clients = [];
    const result = await memoryPerConnection(mesh.pid, count, async (i) => {
      clients[i] = await mesh.connect(`c${i}`, { handlers, WebSocket: WebSocketClass });
    });
    if (calls) Object.assign(result, await callsFromAll(clients.map((c) => c.node('BENCH', 'shared')), (stub) => stub.echo(PAYLOAD)));

    // Fan-out: one DO calls N subscribed clients through their gateways.
    if (fanout) {
      const driver = await mesh.connect('fandriver');
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
            const outcome = await within(topic[publish](name, key, fanoutConcurrency), 30_000, `${kind} to ${N}`);
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
    return result;
  } finally {
    await mesh.dispose();
  }
}

function clientsEntry(name, deflate, count, m, b) {
  return {
    scenario: name, unit: 'bytes / ms', deflate,
    what: `${count} idle connected clients: workerd RSS growth per connection${m.callLatency ? `; then all ${count} make 10 sequential calls each (to one shared DO)` : ''}`,
    measured: { bytesPerConnection: m.bytesPerConnection, rssBefore: m.rssBefore, rssAfter: m.rssAfter, callsTotalMs: m.callsTotalMs ?? null, callLatency: m.callLatency ?? null },
    baseline: {
      name: `${count} raw hibernatable sockets, one raw echo DO each (separate workerd)${b.callLatency ? '; then 10 sequential echoes each' : ''}`,
      bytesPerConnection: b.bytesPerConnection ?? null, rssBefore: b.rssBefore ?? null, rssAfter: b.rssAfter ?? null,
      callsTotalMs: b.callsTotalMs ?? null, callLatency: b.callLatency ?? null,
    },
    ratio: {
      bytesPerConnection: ratio(m.bytesPerConnection, b.bytesPerConnection),
      callsTotalMs: ratio(m.callsTotalMs, b.callsTotalMs), p99: ratio(m.callLatency?.p99, b.callLatency?.p99),
    },
    samples: { measured: m.callLatency?.n ?? 0, baseline: b.callLatency?.n ?? 0, connections: count },
    note: 'workerd (Miniflare) keeps every Durable Object instance resident; most of each figure is the DO instance itself, not the socket.',
  };
}

/** A fan-out entry (`fanout_N` or `notify_N`) beside the raw fan-out to the same N. */
function fanoutEntry(kind, N, what, measured, rawFanout) {
  return {
    scenario: `${kind}_${N}`, unit: 'ms', what,
    measured, baseline: rawFanout ? { name: `one raw DO sends to ${N} sockets, each acknowledges`, ...rawFanout } : null,
    ratio: rawFanout ? {
      total_p50: ratio(measured.total.p50, rawFanout.total.p50), perClient_p50: ratio(measured.perClient.p50, rawFanout.perClient.p50), perClient_p99: ratio(measured.perClient.p99, rawFanout.perClient.p99),
    } : null,
    samples: { measured: measured.perClient.n, baseline: rawFanout?.perClient.n ?? 0, rounds: FANOUT_ROUNDS },
  };
}

/** The `clients` entry, then `fanout_N` and `notify_N` for N = 100 and 500. */
export async function clients(ctx) {
  const b = await rawConnections(ctx, { deflate: false, calls: true, fanout: true });
  const m = await meshConnections(ctx, { deflate: false, calls: true, fanout: true });
  const concurrency = ctx.fanoutConcurrency ?? 'default (64)';
  return [clientsEntry('clients', false, ctx.n(500), m, b), ...[100, 500].map(ctx.n).flatMap((N) => [
    fanoutEntry('fanout', N, `one DO calls ${N} subscribed clients (Subscriptions.fanOut, concurrency ${concurrency}) — total: trigger → all ${N} answered; per client: trigger → call received`, m.fanout[N], b.fanout[N]),
    fanoutEntry('notify', N, `one DO notifies ${N} subscribed clients (Subscriptions.notify: answers not awaited) — total: trigger → publish returned (every gateway has the call); per client: trigger → call received`, m.notify[N], b.fanout[N]),
  ])];
}

/** Memory per idle connection with permessage-deflate negotiated. */
export async function clientsDeflate(ctx) {
  const b = await rawConnections(ctx, { deflate: true, calls: false, fanout: false });
  const m = await meshConnections(ctx, { deflate: true, calls: false, fanout: false });
  return clientsEntry('clients_deflate', true, ctx.n(500), m, b);
}
