/** DO → client calls: the gap between consecutive sequential calls as the client sees them. */
import { RAW_MESSAGE } from '../harness.mjs';
import { now, ratio, summary } from '../lib.mjs';

const gaps = (times) => times.slice(1).map((t, i) => t - times[i]);

/** A ping-pong of at most `count` echoes and `maxMs` over one raw socket; the arrival times at the client. */
function rawPingPong(raw, count, maxMs) {
  return new Promise((resolve) => {
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
}

export async function toClient({ mesh, n }) {
  let arrivals = [];
  const c = await mesh.connect('tc', {
    handlers: { ping: (i) => { arrivals.push(now()); return i; } },
  });
  const stub = c.node('BENCH', 'tc');
  const raw = await mesh.rawSocket('tc');
  await rawPingPong(raw, n(300), 3_000);
  await stub.callClientLoop(c.instanceName, n(300));
  const rawSamples = [];
  const meshSamples = [];
  for (let block = 0; block < 3; block++) {
    rawSamples.push(...gaps(await rawPingPong(raw, n(600), 5_000)));
    arrivals = [];
    await stub.callClientLoop(c.instanceName, n(600));
    meshSamples.push(...gaps(arrivals));
  }
  raw.terminate();
  mesh.disconnect(c);
  const m = summary(meshSamples);
  const b = summary(rawSamples);
  return {
    scenario: 'to_client', unit: 'ms', what: 'DO → gateway → client → gateway → DO call round trip (gap between consecutive sequential calls at the client)',
    measured: m, baseline: { name: 'raw echo ping-pong, gap between arrivals', ...b },
    ratio: { p50: ratio(m.p50, b.p50), p99: ratio(m.p99, b.p99) },
    samples: { measured: m.n, baseline: b.n },
  };
}
