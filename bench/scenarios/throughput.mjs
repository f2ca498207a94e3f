/** Calls per second with many in flight on one socket: to a DO, to a DO that accepts bursts, to a Worker. */
import { DeflateSocket, PlainSocket } from '../harness.mjs';
import { cpuLedger, meshThroughput, rawThroughput } from '../measure.mjs';
import { ratio, round } from '../lib.mjs';

const IN_FLIGHT = 64;

const median = (runs) => Math.round(runs.map((x) => x.perSecond).sort((a, b) => a - b)[Math.floor(runs.length / 2)]);
const runsOf = (runs) => runs.map((x) => Math.round(x.perSecond));
const count = (runs) => runs.reduce((sum, x) => sum + x.count, 0);

export async function throughput({ mesh, n }, { name, deflate }) {
  const c = await mesh.connect(name, { WebSocket: deflate ? DeflateSocket : PlainSocket });
  const stub = c.node('BENCH', name);
  const workerStub = c.node('BENCH_WORKER');
  const burstStub = c.node('BENCH_BURSTS', name);
  const raw = await mesh.rawSocket(name, { deflate });
  const hop = await mesh.rawSocket(name, { kind: 'hop', deflate });
  await rawThroughput(raw, n(3_000), IN_FLIGHT, 1_500);
  await rawThroughput(hop, n(3_000), IN_FLIGHT, 1_500);
  await meshThroughput(stub, n(3_000), IN_FLIGHT, 1_500);
  await meshThroughput(workerStub, n(3_000), IN_FLIGHT, 1_500);
  await meshThroughput(burstStub, n(3_000), IN_FLIGHT, 1_500);
  const runs = { raw: [], hop: [], mesh: [], worker: [], bursts: [] };
  const cpu = cpuLedger(mesh.pid);
  const timed = async (side, run) => runs[side].push(await cpu.timed(side, run));
  const runMs = deflate ? 2_000 : 3_000; // with deflate the Node client's inflate is the bottleneck: fewer messages fit
  for (let r = 0; r < 3; r++) {
    await timed('raw', () => rawThroughput(raw, n(20_000), IN_FLIGHT, runMs));
    await timed('hop', () => rawThroughput(hop, n(10_000), IN_FLIGHT, runMs));
    await timed('mesh', () => meshThroughput(stub, n(10_000), IN_FLIGHT, runMs));
    await timed('worker', () => meshThroughput(workerStub, n(10_000), IN_FLIGHT, runMs));
    await timed('bursts', () => meshThroughput(burstStub, n(10_000), IN_FLIGHT, runMs));
  }
  raw.terminate();
  hop.terminate();
  mesh.disconnect(c);
  const cpuPerCall = (side) => round((cpu.spent[side] * 1000) / count(runs[side]), 0);
  const m = median(runs.mesh);
  const b = median(runs.raw);
  const h = median(runs.hop);
  return {
    scenario: name, unit: 'per second', deflate,
    what: `calls/s with ${IN_FLIGHT} in flight from one client (median of ${runs.mesh.length} runs)`,
    measured: {
      perSecond: m, runs: runsOf(runs.mesh), workerdCpuUsPerCall: cpuPerCall('mesh'),
      // The same calls to a MeshWorker, and to a Durable Object that accepts bursts: a burst shares one RPC there.
      toWorker: { perSecond: median(runs.worker), runs: runsOf(runs.worker), workerdCpuUsPerCall: cpuPerCall('worker') },
      toBurstDO: { perSecond: median(runs.bursts), runs: runsOf(runs.bursts), workerdCpuUsPerCall: cpuPerCall('bursts') },
    },
    baseline: { name: `raw echo messages/s with ${IN_FLIGHT} in flight`, perSecond: b, runs: runsOf(runs.raw), workerdCpuUsPerCall: cpuPerCall('raw') },
    baselineHop: { name: `RPC-hop floor messages/s with ${IN_FLIGHT} in flight`, perSecond: h, runs: runsOf(runs.hop), workerdCpuUsPerCall: cpuPerCall('hop') },
    ratio: { perSecond: ratio(m, b), perSecondVsHop: ratio(m, h), toWorker: ratio(median(runs.worker), b), toBurstDO: ratio(median(runs.bursts), b) },
    samples: { measured: count(runs.mesh), baseline: count(runs.raw), baselineHop: count(runs.hop) }, target: '≥ 0.5× raw',
  };
}
