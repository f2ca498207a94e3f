/**
 * Calls per second with many in flight on one socket: to a DO, to a DO that
 * accepts bursts, to a Worker; beside the raw echo, the RPC-hop floor and the
 * peers (partyserver's echo, an Agents SDK `@callable`).
 */
import { DeflateSocket, PlainSocket } from '../harness.mjs';
import { agentThroughput, cpuLedger, meshThroughput, rawThroughput } from '../measure.mjs';
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
  const party = await mesh.partySocket(name, { deflate });
  const agent = await mesh.agentClient(name, { deflate });
  const runMs = deflate ? 2_000 : 3_000; // with deflate the Node client's inflate is the bottleneck: fewer messages fit
  /** Each side: how to run `total` messages or calls with IN_FLIGHT outstanding for at most `ms`, and the run's size. */
  const sides = {
    raw: [(total, ms) => rawThroughput(raw, total, IN_FLIGHT, ms), 20_000],
    hop: [(total, ms) => rawThroughput(hop, total, IN_FLIGHT, ms), 10_000],
    party: [(total, ms) => rawThroughput(party, total, IN_FLIGHT, ms), 20_000],
    agent: [(total, ms) => agentThroughput(agent, total, IN_FLIGHT, ms), 10_000],
    mesh: [(total, ms) => meshThroughput(stub, total, IN_FLIGHT, ms), 10_000],
    worker: [(total, ms) => meshThroughput(workerStub, total, IN_FLIGHT, ms), 10_000],
    bursts: [(total, ms) => meshThroughput(burstStub, total, IN_FLIGHT, ms), 10_000],
  };
  for (const [run] of Object.values(sides)) await run(n(3_000), 1_500);
  const runs = Object.fromEntries(Object.keys(sides).map((side) => [side, []]));
  const cpu = cpuLedger(mesh.pid);
  for (let r = 0; r < 3; r++) {
    for (const [side, [run, total]] of Object.entries(sides)) runs[side].push(await cpu.timed(side, () => run(n(total), runMs)));
  }
  raw.terminate();
  hop.terminate();
  party.terminate();
  mesh.closeAgent(agent);
  mesh.disconnect(c);
  const cpuPerCall = (side) => round((cpu.spent[side] * 1000) / count(runs[side]), 0);
  const figures = (side) => ({ perSecond: median(runs[side]), runs: runsOf(runs[side]), workerdCpuUsPerCall: cpuPerCall(side) });
  const m = median(runs.mesh);
  const b = median(runs.raw);
  const h = median(runs.hop);
  return {
    scenario: name, unit: 'per second', deflate,
    what: `calls/s with ${IN_FLIGHT} in flight from one client (median of ${runs.mesh.length} runs)`,
    measured: {
      ...figures('mesh'),
      // The same calls to a MeshWorker, and to a Durable Object that accepts bursts: a burst shares one RPC there.
      toWorker: figures('worker'),
      toBurstDO: figures('bursts'),
    },
    baseline: { name: `raw echo messages/s with ${IN_FLIGHT} in flight`, ...figures('raw') },
    baselineHop: { name: `RPC-hop floor messages/s with ${IN_FLIGHT} in flight`, ...figures('hop') },
    peers: {
      partyserver: { name: `partyserver (hibernate: true) echo messages/s with ${IN_FLIGHT} in flight`, ...figures('party') },
      agents: { name: `Agents SDK @callable calls/s with ${IN_FLIGHT} in flight through AgentClient`, ...figures('agent') },
    },
    ratio: {
      perSecond: ratio(m, b), perSecondVsHop: ratio(m, h), toWorker: ratio(median(runs.worker), b), toBurstDO: ratio(median(runs.bursts), b),
      toWorkerVsHop: ratio(median(runs.worker), h), toBurstDOVsHop: ratio(median(runs.bursts), h), perSecondVsAgents: ratio(m, median(runs.agent)),
    },
    samples: Object.fromEntries(Object.entries(runs).map(([side, r]) => [side, count(r)])),
    target: 'default DO ≥ 1.0× the hop floor; bursts and Worker ≥ 2× the floor',
  };
}
