/**
 * `node bench/connection-limits.mjs`: what sockets a client can leave in
 * workerd that it never reads, and what the identity cap costs an upgrade.
 * About 40 s; every loop bounded. Prints one line per figure.
 *
 * - superseded: N upgrades of one identity, each client stops reading once
 *   upgraded, so it never answers the gateway's 4409. workerd keeps each such
 *   socket until its TCP connection ends (there is no close timeout, and no API
 *   to drop the connection); the gateway refuses upgrades past
 *   maxClosingSockets (set high here to measure).
 * - refused: N upgrades refused by the edge (no token, 4400) whose clients never
 *   read: the same, before any Durable Object is touched.
 * - admission: a new identity's upgrade → connection_status, with the
 *   IdentityLimiter bound and without.
 */
import WebSocket from 'ws';
import { startWorkerd } from '../scripts/workerd.mjs';
import { rssBytes, SECRET, sleep, token, within, workerdPids } from './lib.mjs';

const N = 300;
const ENTRY = new URL('../test/fixtures/worker.ts', import.meta.url).pathname;
const NODES = { COUNTER: 'CounterDO', COUNTER_SQL: { className: 'SqlCounterDO', useSQLite: true }, COUNTER_BURSTS: 'BurstCounterDO', PLAIN: 'PlainDO' };

async function mesh({ limiter = true, env = {} } = {}) {
  const started = await startWorkerd({
    entry: ENTRY,
    durableObjects: { GATEWAY: 'TestGateway', ...NODES, ...(limiter ? { IDENTITY_LIMITER: { className: 'TestIdentityLimiter', useSQLite: true } } : {}) },
    services: { ECHO_WORKER: 'EchoWorker', LEGACY_WORKER: 'LegacyBatchWorker' },
    bindings: { JWT_SECRET: SECRET, ...env },
  });
  return { ...started, pid: workerdPids().at(-1) };
}

function upgrade(url, protocols) {
  const ws = new WebSocket(url, protocols);
  ws.on('error', () => {});
  return ws;
}

/** The socket's next `event`, or a rejection naming `what` after 10 s. */
const next = (ws, event, what) => within(new Promise((resolve) => ws.once(event, resolve)), 10_000, what);

const mb = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

async function lingering(kind) {
  const m = await mesh({ env: { MAX_CLOSING_SOCKETS: String(N + 10), MAX_IDENTITIES_PER_SUB: '1000' } });
  const jwt = await token('linger');
  const base = `ws://${m.url.host}/gateway/GATEWAY`;
  try {
    const warm = upgrade(`${base}/linger.warm`, ['meshgate', `meshgate.token.${jwt}`]);
    await next(warm, 'message', 'warm-up connection_status');
    warm.close();
    await sleep(1000);
    const before = rssBytes(m.pid);
    const held = [];
    const deadline = Date.now() + 30_000;
    for (let i = 0; i < N && Date.now() < deadline; i++) {
      const ws = kind === 'superseded'
        ? upgrade(`${base}/linger.t`, ['meshgate', `meshgate.token.${jwt}`])
        : upgrade(`${base}/linger.r${i}`, ['meshgate']);
      await next(ws, 'upgrade', `upgrade ${i}`);
      await new Promise((resolve) => setImmediate(resolve));
      ws._socket.pause(); // never reads again
      held.push(ws);
    }
    for (const at of [0, 10]) {
      if (at) await sleep(at * 1000);
      const grown = rssBytes(m.pid) - before;
      console.log(`${kind}: ${held.length} sockets never read, after ${at} s: workerd +${mb(grown)} (${Math.round(grown / held.length / 1024)} KB each)`);
    }
    for (const ws of held) ws.terminate();
  } finally {
    await m.dispose();
  }
}

async function admission(limiter) {
  const m = await mesh({ limiter, env: { MAX_IDENTITIES_PER_SUB: '1000' } });
  const jwt = await token('adm');
  const times = [];
  try {
    const deadline = Date.now() + 15_000;
    for (let i = 0; i < 200 && Date.now() < deadline; i++) {
      const started = performance.now();
      const ws = upgrade(`ws://${m.url.host}/gateway/GATEWAY/adm.t${i}`, ['meshgate', `meshgate.token.${jwt}`]);
      await next(ws, 'message', `connection_status ${i}`);
      times.push(performance.now() - started);
      ws.terminate();
    }
  } finally {
    await m.dispose();
  }
  times.sort((a, b) => a - b);
  const p = (q) => times[Math.floor(q * (times.length - 1))].toFixed(2);
  console.log(`admission ${limiter ? 'with the IdentityLimiter' : 'without it'}: new identity upgrade → connection_status p50 ${p(0.5)} ms, p99 ${p(0.99)} ms (${times.length} upgrades)`);
}

await lingering('superseded');
await lingering('refused');
await admission(false);
await admission(true);
