/**
 * The scale curve: connected clients from 500 to 2,000 on one workerd (each
 * with its own gateway), and at each level the memory per connection and
 * calls from all of them at once — calls/s across all, and the p99.
 * Clients are added to the ones already connected, so each level costs only
 * its new connections.
 */
import { PAYLOAD } from '../harness.mjs';
import { settledRss } from '../measure.mjs';
import { now, pool, round, summary } from '../lib.mjs';

const LEVELS = [500, 1_000, 2_000];
const CALLS_PER_CLIENT = 5;

export async function scale({ startMesh, n }) {
  // Without the per-user IdentityLimiter: 2,000 SQLite-backed limiter objects at once exhaust workerd's SQLite
  // memory here (SQLITE_NOMEM), and the curve is of gateways, not of the limiter.
  const mesh = await startMesh({ identityLimiter: false });
  try {
    const warm = await mesh.connect('scale-warm');
    await warm.node('BENCH', 'scale').echo(PAYLOAD);
    const before = await settledRss(mesh.pid);
    const stubs = [];
    const points = [];
    for (const level of LEVELS.map(n)) {
      const from = stubs.length;
      await pool(level - from, 50, async (k) => {
        const c = await mesh.connect(`s${from + k}`);
        // one shared node, as in a room: the calls meet in one Durable Object
        stubs[from + k] = c.node('BENCH', 'scale');
      });
      const rss = await settledRss(mesh.pid);
      const latencies = [];
      const t = now();
      await Promise.all(stubs.map(async (stub) => {
        for (let k = 0; k < CALLS_PER_CLIENT; k++) {
          const t1 = now();
          await stub.echo(PAYLOAD);
          latencies.push(now() - t1);
        }
      }));
      const seconds = (now() - t) / 1000;
      const calls = summary(latencies);
      points.push({ clients: stubs.length, bytesPerConnection: Math.round((rss - before) / stubs.length), callsPerSecond: Math.round(latencies.length / seconds), p50: calls.p50, p99: calls.p99, calls: calls.n });
    }
    return {
      scenario: 'scale', unit: 'per level',
      what: `connected clients ${LEVELS.join(' → ')} on one workerd: RSS growth per connection (gateways only: no IdentityLimiter bound), then ${CALLS_PER_CLIENT} sequential calls from every client at once to one shared DO`,
      measured: { points }, samples: { levels: points.length },
      note: round(points.at(-1).bytesPerConnection / points[0].bytesPerConnection, 2) + '× the memory per connection at the last level than at the first',
    };
  } finally {
    await mesh.dispose();
  }
}
