/** A dropped socket → automatic reconnect inside the grace period → the first call answered. */
import WebSocket from 'ws';
import { PAYLOAD, RAW_MESSAGE } from '../harness.mjs';
import { meshSequential, rawSequential } from '../measure.mjs';
import { bounded, now, ratio, summary, within } from '../lib.mjs';

const MIN_DELAY = 5;

export async function reconnect({ mesh, n }) {
  const sockets = [];
  class TrackedSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { perMessageDeflate: false });
      this.on('error', () => {});
      sockets.push(this);
    }
  }
  const c = await mesh.connect('rc', { WebSocket: TrackedSocket, reconnectMinDelayMs: MIN_DELAY, reconnectMaxDelayMs: 1_000 });
  const stub = c.node('BENCH', 'rc');
  await meshSequential(stub, 50, 2_000);
  const raw0 = await mesh.rawSocket('rc');
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
    const before = await mesh.rawSocket(`rc-${i}`);
    const t1 = now();
    before.terminate();
    const after = await mesh.rawSocket(`rc-${i}`);
    await after.request(RAW_MESSAGE);
    rawSamples.push(now() - t1);
    after.terminate();
  });
  mesh.disconnect(c);
  const m = summary(meshSamples);
  const b = summary(rawSamples);
  return {
    scenario: 'reconnect', unit: 'ms',
    what: `dropped socket (TCP terminated) → automatic reconnect inside the grace period → first call answered; backoff first delay ${MIN_DELAY / 2}–${MIN_DELAY} ms`,
    measured: m, baseline: { name: 'raw: drop, new upgrade, one echo (no backoff, no token)', ...b },
    ratio: { p50: ratio(m.p50, b.p50), p99: ratio(m.p99, b.p99) },
    samples: { measured: m.n, baseline: b.n },
  };
}
