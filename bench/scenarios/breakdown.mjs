/**
 * Where a call's CPU time goes on workerd: V8 CPU profiles (through the
 * runtime's inspector) of sequential meshgate calls, of the RPC-hop floor and
 * of the Agents SDK peer, each on the same mesh, split by stage. What the
 * profile does not see (socket I/O, Workers RPC serialization, the event
 * loop: the runtime's C++) is the process's CPU time (/proc) minus the
 * profiled JS.
 */
import { PlainSocket } from '../harness.mjs';
import { agentSequential, agentThroughput, cpuLedger, meshSequential, meshThroughput, rawSequential, rawThroughput } from '../measure.mjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import { ROOT, round } from '../lib.mjs';
import { breakdown, inspect, profileOf, sourceMap } from '../profile.mjs';

const PROFILE_DIR = `${ROOT}.tmp/bench/profiles`;

export async function callBreakdown({ startMesh, n, script }) {
  mkdirSync(PROFILE_DIR, { recursive: true });
  const mesh = await startMesh({ miniflare: { inspectorPort: 0 } });
  const session = await inspect(mesh.mf);
  try {
    const c = await mesh.connect('profiled', { WebSocket: PlainSocket });
    const stub = c.node('BENCH', 'profiled');
    const hop = await mesh.rawSocket('profiled', { kind: 'hop' });
    const agent = await mesh.agentClient('profiled');
    const sides = {
      mesh: (count) => meshSequential(stub, count, 20_000),
      hop: (count) => rawSequential(hop, count, 20_000),
      agents: (count) => agentSequential(agent, count, 20_000),
      // 64 in flight on one socket: the runtime's per-event work is shared, what is left is per call
      meshPipelined: async (count) => ({ length: (await meshThroughput(stub, count * 2, 64, 10_000)).count }),
      hopPipelined: async (count) => ({ length: (await rawThroughput(hop, count * 2, 64, 10_000)).count }),
      agentsPipelined: async (count) => ({ length: (await agentThroughput(agent, count * 2, 64, 10_000)).count }),
    };
    for (const run of Object.values(sides)) await run(n(300));
    const fileOfLine = sourceMap(script);
    const cpu = cpuLedger(mesh.pid);
    const result = {};
    for (const [side, run] of Object.entries(sides)) {
      // The profiler slows everything it samples: the CPU per call comes from a run without it, the shares from a run with it.
      const plainCalls = (await cpu.timed(side, () => run(n(2_000)))).length;
      const cpuUsPerCall = (cpu.spent[side] * 1000) / plainCalls;
      let calls = 0;
      const profile = await profileOf(session, async () => {
        calls = (await run(n(2_000))).length;
      });
      // Kept for a closer look: DevTools opens .cpuprofile files (Performance panel, "Load profile").
      writeFileSync(`${PROFILE_DIR}/${side}.cpuprofile`, JSON.stringify(profile));
      const { us, functions } = breakdown(profile, /^script-\d+$/, fileOfLine); // the bundle; the runtime's own modules are node-internal:…, cloudflare-internal:…
      delete us.idle;
      const profiledUs = Object.values(us).reduce((a, b) => a + b, 0);
      const scaled = (t) => round((t / profiledUs) * cpuUsPerCall, 1);
      result[side] = {
        calls, cpuUsPerCall: round(cpuUsPerCall, 0), profiledUsPerCall: round(profiledUs / calls, 0),
        stagesUsPerCall: Object.fromEntries(Object.entries(us).sort((a, b) => b[1] - a[1]).map(([stage, t]) => [stage, scaled(t)])),
        topFunctionsUsPerCall: Object.fromEntries(Object.entries(functions).sort((a, b) => b[1] - a[1]).slice(0, 25).map(([fn, t]) => [fn, scaled(t)])),
      };
    }
    mesh.closeAgent(agent);
    hop.terminate();
    mesh.disconnect(c);
    return {
      scenario: 'breakdown', unit: 'µs / call',
      what: 'workerd CPU per sequential call by stage: shares from a V8 CPU profile (50 µs sampling), scaled to the CPU per call of the same calls without the profiler (/proc)',
      measured: result.mesh, baselineHop: result.hop, peers: { agents: result.agents },
      pipelined: { measured: result.meshPipelined, baselineHop: result.hopPipelined, peers: { agents: result.agentsPipelined } },
    };
  } finally {
    session.close();
    await mesh.dispose();
  }
}
