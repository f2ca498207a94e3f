/**
 * meshgate's own code per call, measured apart from the runtime: each stage
 * a call runs in the gateway and the node (bench/own-code-worker.ts), looped
 * inside its own workerd, its CPU from /proc. Beside the per-call gaps the
 * call scenarios measure (meshgate − the RPC-hop floor), this says how much
 * of each gap is meshgate's code when warm, and so how much a cut of that
 * code could win at most.
 *
 * Also the wake cost: the raw echo's workerd CPU per message when the client
 * answers at once, and when it waits 200 µs before the next message. The
 * same work costs more CPU per message the longer the runtime idles between
 * messages, so CPU per *sequential* call grows with the round trip itself.
 */
import { bundleWorker, startWorkerd } from '../../scripts/workerd.mjs';
import { ROOT, cpuMs, nodeBuiltins, now, round, within, workerdPids } from '../lib.mjs';
import { rawSequential } from '../measure.mjs';

const LOOPS = 100_000;

export async function ownCode({ mesh, n }) {
  const script = await bundleWorker(`${ROOT}bench/own-code-worker.ts`, { plugins: [nodeBuiltins] });
  const before = new Set(workerdPids());
  const workerd = await startWorkerd({ script });
  const pid = workerdPids().find((p) => !before.has(p));
  const stagesUs = {};
  const sides = {};
  try {
    const get = async (query) => (await within(fetch(new URL(`/?${query}`, workerd.url)), 30_000, `own_code ${query}`)).text();
    const stages = JSON.parse(await get(''));
    for (const [stage, side] of Object.entries(stages)) {
      const q = `stage=${encodeURIComponent(stage)}`;
      await get(`${q}&n=${n(10_000)}`); // warm: compiled, caches full
      const loops = n(LOOPS);
      const c0 = cpuMs(pid);
      await get(`${q}&n=${loops}`);
      stagesUs[stage] = round(((cpuMs(pid) - c0) * 1000) / loops, 2);
      sides[stage] = side;
    }
  } finally {
    await workerd.dispose();
  }
  const total = (side) => round(Object.entries(stagesUs).filter(([s]) => sides[s] === side).reduce((a, [, us]) => a + us, 0), 1);

  // Wake cost, on the shared mesh: the same echo with and without a pause between messages.
  const raw = await mesh.rawSocket('wake');
  await rawSequential(raw, n(500), 5_000);
  const spent = { 0: 0, 200: 0 };
  const count = n(2_500);
  // Alternating blocks, long enough for /proc's 10 ms ticks to resolve a few µs per message.
  for (let block = 0; block < 4; block++) {
    for (const pauseUs of [0, 200]) {
      const c0 = cpuMs(mesh.pid);
      for (let i = 0; i < count; i++) {
        await rawSequential(raw, 1, 1_000);
        const until = now() + pauseUs / 1000;
        while (now() < until); // a busy pause: a timer would add a wake-up of its own on the client
      }
      spent[pauseUs] += cpuMs(mesh.pid) - c0;
    }
  }
  const wake = { pause0us: round((spent[0] * 1000) / (4 * count), 0), pause200us: round((spent[200] * 1000) / (4 * count), 0) };
  raw.terminate();
  return {
    scenario: 'own_code', unit: 'µs / call',
    what: "meshgate's own per-call code, each stage looped warm inside workerd (no sockets, no RPC); and the raw echo's CPU per message with the client pausing 0 or 200 µs between messages",
    measured: { stagesUsPerCall: stagesUs, gatewayUsPerCall: total('gateway'), nodeUsPerCall: total('node'), loops: n(LOOPS) },
    wake: { rawEchoCpuUsPerMessage: wake },
  };
}
