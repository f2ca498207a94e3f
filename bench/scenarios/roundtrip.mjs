/** Sequential call latency, beside the raw echo and the RPC-hop floor on the same mesh. */
import { DeflateSocket, PlainSocket } from '../harness.mjs';
import { meshSequential, rawSequential, cpuLedger } from '../measure.mjs';
import { ratio, round, summary } from '../lib.mjs';

export async function roundtrip({ mesh, n }, { name, deflate }) {
  const c = await mesh.connect(name, { WebSocket: deflate ? DeflateSocket : PlainSocket });
  const stub = c.node('BENCH', name);
  const raw = await mesh.rawSocket(name, { deflate });
  const hop = await mesh.rawSocket(name, { kind: 'hop', deflate });
  // Warm-up: JIT on both sides, DO instances created.
  await rawSequential(raw, n(500), 5_000);
  await rawSequential(hop, n(500), 5_000);
  await meshSequential(stub, n(500), 5_000);
  // Alternate blocks so drift (other load, GC) hits all sides alike.
  const rawSamples = [];
  const hopSamples = [];
  const meshSamples = [];
  const cpu = cpuLedger(mesh.pid);
  for (let block = 0; block < 5; block++) {
    rawSamples.push(...(await cpu.timed('raw', () => rawSequential(raw, n(500), 8_000))));
    hopSamples.push(...(await cpu.timed('hop', () => rawSequential(hop, n(500), 8_000))));
    meshSamples.push(...(await cpu.timed('mesh', () => meshSequential(stub, n(500), 8_000))));
  }
  const perCall = (side, samples) => round((cpu.spent[side] * 1000) / samples.length, 0);
  const m = { ...summary(meshSamples), workerdCpuUsPerCall: perCall('mesh', meshSamples) };
  const b = { ...summary(rawSamples), workerdCpuUsPerCall: perCall('raw', rawSamples) };
  const h = { ...summary(hopSamples), workerdCpuUsPerCall: perCall('hop', hopSamples) };
  raw.terminate();
  hop.terminate();
  mesh.disconnect(c);
  return {
    scenario: name, unit: 'ms', deflate,
    what: 'sequential client → gateway → DO → client call (echo of a 40-character string)',
    measured: m, baseline: { name: 'raw hibernatable echo, 100-byte message', ...b },
    baselineHop: { name: 'RPC-hop floor: raw socket DO → one Workers RPC to another DO → back', ...h },
    ratio: { p50: ratio(m.p50, b.p50), p90: ratio(m.p90, b.p90), p99: ratio(m.p99, b.p99), p50VsHop: ratio(m.p50, h.p50) },
    samples: { measured: m.n, baseline: b.n, baselineHop: h.n }, target: 'p50 ≤ 1.5× raw',
  };
}
