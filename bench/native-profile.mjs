/**
 * Where workerd's CPU goes per sequential call, in native code: the kernel,
 * V8's runtime and GC, JS, KJ's event loop and sockets, workerd's bindings.
 * A V8 CPU profile (bench/profile.mjs) sees only JS, and charges the cost of
 * waking for an event to whatever JS runs first; Linux `perf` samples the
 * whole process, so this says how much of a gap between two sides is JS at
 * all. Needs `perf` (Debian: linux-perf); not part of `npm run bench`.
 *
 *   npm run bench:native   (BENCH_CALLS: calls per block, default 4000)
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleWorker } from '../scripts/workerd.mjs';
import { startMesh } from './harness.mjs';
import { ROOT, loadClient, nodeBuiltins, round, summary, within } from './lib.mjs';
import { agentSequential, handSequential, meshSequential, rawSequential } from './measure.mjs';

const CALLS = Number(process.env.BENCH_CALLS ?? 4_000);
const BLOCKS = 3;
const HZ = 4_999;

/** Native symbols by what they belong to; the first pattern that matches names the row. */
const CATEGORIES = [
  ['kernel (syscalls, loopback TCP, waking the peer)', (dso) => dso.startsWith('[kernel')],
  ['V8 GC and handles', (_, sym) => /Scaveng|MarkCompact|Marking|Sweep|Heap::|Evacuat|cppgc|GCTracer|MinorM|IsUnscavenged|IsUnmodifiedApiObject|GlobalHandles|TracedReference|HeapTracer/.test(sym)],
  ['JSON.parse and JSON.stringify', (_, sym) => /Json/.test(sym)],
  ['JS: interpreted, baseline and optimized code, builtins', (dso, sym) => dso.startsWith('[JIT]') || sym.startsWith('Builtins_')],
  ['V8 runtime (calls between C++ and JS, objects, strings)', (_, sym) => /v8::|Runtime_/.test(sym)],
  ['malloc (tcmalloc)', (_, sym) => /tcmalloc|TCMalloc/.test(sym)],
  ['KJ: event loop, promises, RPC, sockets', (_, sym) => /kj::|capnp::/.test(sym)],
  ['workerd: APIs, bindings, hibernation', (_, sym) => /workerd::|jsg::/.test(sym)],
  ['other (libc, unresolved)', () => true],
];

if (spawnSync('perf', ['--version']).status !== 0) {
  console.error('bench/native-profile.mjs needs Linux perf: apt-get install linux-perf (Debian), then run it again.');
  process.exit(1);
}

/** CPU time (ns) per category in one `perf record` file. */
function categorize(file) {
  const report = spawnSync('perf', ['report', '-i', file, '--stdio', '--no-children', '-g', 'none', '--sort', 'dso,sym', '-F', 'period,dso,sym'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (report.status !== 0) throw new Error(`perf report failed: ${report.stderr}`);
  const spent = Object.fromEntries(CATEGORIES.map(([name]) => [name, 0]));
  for (const line of report.stdout.split('\n')) {
    const row = /^\s*(\d+)\s+(\S+(?: tid \d+)?)\s+\[[^\]]*\]\s+(.*)$/.exec(line);
    if (!row) continue;
    const [, period, dso, sym] = row;
    spent[CATEGORIES.find(([, matches]) => matches(dso, sym))[0]] += Number(period);
  }
  return spent;
}

/** Records workerd (`pid`) while `run()` makes its calls; idle time yields no samples, so nothing is counted before or after. */
async function recorded(pid, file, run) {
  const perf = spawn('perf', ['record', '-F', String(HZ), '-p', String(pid), '-o', file, '-q'], { stdio: 'ignore' });
  try {
    await new Promise((resolve) => setTimeout(resolve, 300)); // perf attaches
    return await run();
  } finally {
    perf.kill('SIGINT');
    await within(once(perf, 'exit'), 30_000, 'perf record to stop');
  }
}

const { MeshClient } = await loadClient();
const script = await bundleWorker(`${ROOT}bench/worker.ts`, { plugins: [nodeBuiltins] });
const mesh = await startMesh({ script, MeshClient });
const dir = await mkdtemp(join(tmpdir(), 'meshgate-native-'));
try {
  const name = 'native';
  const client = await mesh.connect(name, {});
  const stub = client.node('BENCH', name);
  const hop = await mesh.rawSocket(name, { kind: 'hop' });
  const hopNode = await mesh.rawSocket(name, { kind: 'hopnode' });
  const hand = await mesh.handGateway(name, {});
  const agent = await mesh.agentClient(name, {});
  const sides = {
    hop: { name: 'RPC-hop floor', run: (k) => rawSequential(hop, k, 60_000) },
    hopNode: { name: 'floor → meshgate node', run: (k) => rawSequential(hopNode, k, 60_000) },
    hand: { name: 'meshgate, its frames written by hand on a raw socket (no MeshClient)', run: (k) => handSequential(hand, name, k, 60_000) },
    meshgate: { name: 'meshgate (MeshClient → gateway → node)', run: (k) => meshSequential(stub, k, 60_000) },
    agents: { name: 'Agents SDK @callable', run: (k) => agentSequential(agent, k, 60_000) },
  };
  for (const side of Object.values(sides)) await side.run(2_000); // warm-up: JIT, instances
  const totals = Object.fromEntries(Object.keys(sides).map((key) => [key, { calls: 0, ns: Object.fromEntries(CATEGORIES.map(([n]) => [n, 0])), latencies: [] }]));
  for (let block = 0; block < BLOCKS; block++) {
    for (const [key, side] of Object.entries(sides)) {
      const file = join(dir, `${key}-${block}.data`);
      const latencies = await recorded(mesh.pid, file, () => side.run(CALLS));
      const spent = categorize(file);
      totals[key].calls += latencies.length;
      totals[key].latencies.push(...latencies);
      for (const [category, ns] of Object.entries(spent)) totals[key].ns[category] += ns;
    }
  }
  hop.terminate();
  hopNode.terminate();
  hand.terminate();
  mesh.closeAgent(agent);
  mesh.disconnect(client);

  const perCall = (key, category) => round(totals[key].ns[category] / 1_000 / totals[key].calls, 1);
  const result = {
    when: new Date().toISOString(), what: 'workerd CPU per sequential call by native category (perf record, cpu-clock, sampled at 4999 Hz; figures include perf\'s own overhead)',
    callsPerSide: totals.hop.calls,
    sides: Object.fromEntries(Object.entries(sides).map(([key, side]) => [key, {
      name: side.name, p50Ms: summary(totals[key].latencies).p50,
      usPerCall: Object.fromEntries(CATEGORIES.map(([category]) => [category, perCall(key, category)])),
      totalUsPerCall: round(Object.values(totals[key].ns).reduce((a, b) => a + b, 0) / 1_000 / totals[key].calls, 1),
    }])),
  };
  await writeFile(`${ROOT}bench/results/native-profile.json`, `${JSON.stringify(result, null, 2)}\n`);

  const keys = Object.keys(sides);
  const pad = (text, width) => String(text).padStart(width);
  console.log(`workerd CPU µs per sequential call, by native category (${result.callsPerSide} calls per side)`);
  console.log(`${'category'.padEnd(58)}${keys.map((k) => pad(k, 10)).join('')}${pad('meshgate − hop', 16)}`);
  for (const [category] of CATEGORIES) {
    const values = keys.map((k) => result.sides[k].usPerCall[category]);
    console.log(`${category.padEnd(58)}${values.map((v) => pad(v, 10)).join('')}${pad(round(result.sides.meshgate.usPerCall[category] - result.sides.hop.usPerCall[category], 1), 16)}`);
  }
  console.log(`${'total'.padEnd(58)}${keys.map((k) => pad(result.sides[k].totalUsPerCall, 10)).join('')}${pad(round(result.sides.meshgate.totalUsPerCall - result.sides.hop.totalUsPerCall, 1), 16)}`);
  console.log(`${'p50 ms'.padEnd(58)}${keys.map((k) => pad(result.sides[k].p50Ms, 10)).join('')}`);
} finally {
  await mesh.dispose();
  await rm(dir, { recursive: true, force: true });
}
