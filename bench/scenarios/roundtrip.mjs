/**
 * Sequential call latency, beside the raw echo, the RPC-hop floor and the
 * peers (partyserver's echo, an Agents SDK `@callable` through AgentClient),
 * all on the same mesh, in alternating blocks.
 */
import { DeflateSocket, PlainSocket } from '../harness.mjs';
import { agentSequential, handSequential, meshSequential, rawSequential, cpuLedger } from '../measure.mjs';
import { ratio, round, summary } from '../lib.mjs';

export async function roundtrip({ mesh, n }, { name, deflate }) {
  const c = await mesh.connect(name, { WebSocket: deflate ? DeflateSocket : PlainSocket });
  const stub = c.node('BENCH', name);
  const sides = {
    raw: () => mesh.rawSocket(name, { deflate }).then((s) => [s, (k, ms) => rawSequential(s, k, ms)]),
    hop: () => mesh.rawSocket(name, { kind: 'hop', deflate }).then((s) => [s, (k, ms) => rawSequential(s, k, ms)]),
    hopSession: () => mesh.rawSocket(name, { kind: 'hopsession', deflate }).then((s) => [s, (k, ms) => rawSequential(s, k, ms)]),
    hopNode: () => mesh.rawSocket(name, { kind: 'hopnode', deflate }).then((s) => [s, (k, ms) => rawSequential(s, k, ms)]),
    party: () => mesh.partySocket(name, { deflate }).then((s) => [s, (k, ms) => rawSequential(s, k, ms)]),
    agent: () => mesh.agentClient(name, { deflate }).then((a) => [{ terminate: () => mesh.closeAgent(a) }, (k, ms) => agentSequential(a, k, ms)]),
    mesh: async () => [{ terminate: () => mesh.disconnect(c) }, (k, ms) => meshSequential(stub, k, ms)],
    hand: () => mesh.handGateway(name, { deflate }).then((s) => [s, (k, ms) => handSequential(s, name, k, ms)]),
  };
  const open = {};
  for (const [side, start] of Object.entries(sides)) open[side] = await start();
  // Warm-up: JIT on both sides, DO instances created.
  for (const [, run] of Object.values(open)) await run(n(500), 5_000);
  // Alternate blocks so drift (other load, GC) hits all sides alike.
  const samples = Object.fromEntries(Object.keys(open).map((side) => [side, []]));
  const cpu = cpuLedger(mesh.pid);
  // the bench's own process: the clients' CPU (Miniflare's part of this process does nothing per message)
  const clientCpu = cpuLedger(process.pid);
  for (let block = 0; block < 5; block++) {
    for (const [side, [, run]] of Object.entries(open)) samples[side].push(...(await cpu.timed(side, () => clientCpu.timed(side, () => run(n(500), 8_000)))));
  }
  for (const [socket] of Object.values(open)) socket.terminate();
  const perCall = (ledger, side) => round((ledger.spent[side] * 1000) / samples[side].length, 0);
  const figures = (side) => ({ ...summary(samples[side]), workerdCpuUsPerCall: perCall(cpu, side), clientCpuUsPerCall: perCall(clientCpu, side) });
  const [m, b, h, party, agent, hand, hopNode, hopSession] = ['mesh', 'raw', 'hop', 'party', 'agent', 'hand', 'hopNode', 'hopSession'].map(figures);
  return {
    scenario: name, unit: 'ms', deflate,
    what: 'sequential client → gateway → DO → client call (echo of a 40-character string)',
    measured: { ...m, byHand: { name: 'the same calls written by hand on a raw socket to the gateway (no MeshClient)', ...hand } }, baseline: { name: 'raw hibernatable echo, 100-byte message', ...b },
    baselineHop: { name: 'RPC-hop floor: raw socket DO → one Workers RPC to another DO → back', ...h },
    // The gap split in two: hopNode − floor is the node's share; meshgate − hopNode the gateway's and the client's.
    // meshgate's gateway sends calls through a session (src/gateway/node-sessions.ts): the floor built the same way.
    hopSession: { name: 'the floor\'s raw socket DO calling the other DO through an RpcTarget session it returned, not one RPC per message', ...hopSession },
    hopToNode: { name: 'the floor\'s raw socket DO sending each message to the meshgate node as a gateway\'s call text (no gateway, no MeshClient)', ...hopNode },
    peers: {
      partyserver: { name: 'partyserver Server (hibernate: true) echoing a 100-byte message', ...party },
      agents: { name: 'Agents SDK @callable echo of a 40-character string through AgentClient', ...agent },
    },
    ratio: {
      p50: ratio(m.p50, b.p50), p90: ratio(m.p90, b.p90), p99: ratio(m.p99, b.p99), p50VsHop: ratio(m.p50, h.p50),
      cpuVsHop: ratio(m.workerdCpuUsPerCall, h.workerdCpuUsPerCall), byHandP50VsHop: ratio(hand.p50, h.p50), hopToNodeP50VsHop: ratio(hopNode.p50, h.p50), hopToNodeCpuVsHop: ratio(hopNode.workerdCpuUsPerCall, h.workerdCpuUsPerCall), p50VsHopSession: ratio(m.p50, hopSession.p50), cpuVsHopSession: ratio(m.workerdCpuUsPerCall, hopSession.workerdCpuUsPerCall), p50VsAgents: ratio(m.p50, agent.p50), p50VsPartyserver: ratio(m.p50, party.p50),
    },
    samples: Object.fromEntries(Object.entries(samples).map(([side, s]) => [side, s.length])), target: 'p50 ≤ 1.25× the hop floor; CPU ≤ 1.15× the floor\'s',
  };
}
