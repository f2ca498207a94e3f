/**
 * `npm run bench`: meshgate on embedded workerd, every figure beside the
 * physical baseline measured in the same run — a raw Durable Object that
 * accepts hibernatable WebSockets and echoes (bench/worker.ts, RawEchoDO).
 * Each scenario is a function in bench/scenarios/ that returns its entries;
 * this runner gives each a time budget, writes bench/results/latest.json and
 * prints the table bench/report.mjs makes of it.
 *
 * Bounded: every loop has a count and a time limit, each scenario a time
 * budget, and the whole run skips scenarios that would pass ~4.5 minutes.
 *
 * Transport: the clients do not offer permessage-deflate, so the figures are
 * the server's and not those of the Node `ws` client's zlib (which inflates
 * every compressed message asynchronously and caps one socket at ~7–12k
 * messages/s). The `*_deflate` scenarios repeat the round trip, the
 * throughput and the memory figures with compression negotiated, as browsers
 * and `ws` do by default.
 *
 * Baselines: the raw hibernatable echo DO, and for the call scenarios also
 * the "RPC-hop floor" — a raw socket DO that forwards each message over one
 * Workers RPC hop to another DO and back (what any gateway design pays).
 *
 * Environment knobs (all optional): BENCH_ONLY=roundtrip,throughput,...
 * BENCH_SCALE=0.5 (fewer samples, for a quick look), BENCH_FANOUT_CONCURRENCY=500
 * (Subscriptions.fanOut concurrency; default: the helper's own).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { bundleWorker } from '../scripts/workerd.mjs';
import { deflateMismatches, startMesh } from './harness.mjs';
import { ROOT, loadClient, nodeBuiltins, now, round, versions, within } from './lib.mjs';
import { report } from './report.mjs';
import { callBreakdown } from './scenarios/breakdown.mjs';
import { writeCharts } from './chart.mjs';
import { scale } from './scenarios/scale.mjs';
import { clients, clientsDeflate } from './scenarios/clients.mjs';
import { checked } from './scenarios/checked.mjs';
import { cost } from './scenarios/cost.mjs';
import { hotObject } from './scenarios/hot-object.mjs';
import { reconnect } from './scenarios/reconnect.mjs';
import { roundtrip } from './scenarios/roundtrip.mjs';
import { supersede } from './scenarios/supersede.mjs';
import { throughput } from './scenarios/throughput.mjs';
import { toClient } from './scenarios/to-client.mjs';
import { stream } from './scenarios/stream.mjs';
import { fanoutTree } from './scenarios/fanout-tree.mjs';
import { ownCode } from './scenarios/own-code.mjs';

const RUN_BUDGET_MS = 285_000;
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const ONLY = process.env.BENCH_ONLY ? new Set(process.env.BENCH_ONLY.split(',')) : undefined;

/**
 * In run order, each with its time budget. The `shared` ones come first and
 * run on one mesh started for them, ended before the rest start their own
 * (memory figures need a workerd to themselves, and cost waits for evictions,
 * which other work would delay).
 */
const SCENARIOS = [
  { name: 'roundtrip', budgetMs: 60_000, shared: true, run: (ctx) => roundtrip(ctx, { name: 'roundtrip', deflate: false }) },
  { name: 'throughput', budgetMs: 60_000, shared: true, run: (ctx) => throughput(ctx, { name: 'throughput', deflate: false }) },
  { name: 'checked', budgetMs: 30_000, shared: true, run: checked },
  { name: 'to_client', budgetMs: 40_000, shared: true, run: toClient },
  { name: 'supersede', budgetMs: 60_000, shared: true, run: supersede },
  { name: 'reconnect', budgetMs: 40_000, shared: true, run: reconnect },
  { name: 'stream', budgetMs: 40_000, shared: true, run: stream },
  { name: 'roundtrip_deflate', budgetMs: 60_000, shared: true, run: (ctx) => roundtrip(ctx, { name: 'roundtrip_deflate', deflate: true }) },
  { name: 'throughput_deflate', budgetMs: 60_000, shared: true, run: (ctx) => throughput(ctx, { name: 'throughput_deflate', deflate: true }) },
  { name: 'own_code', budgetMs: 30_000, shared: true, run: ownCode },
  { name: 'hot_object', budgetMs: 90_000, run: hotObject },
  { name: 'breakdown', budgetMs: 40_000, run: callBreakdown },
  { name: 'clients', budgetMs: 150_000, run: clients },
  { name: 'clients_deflate', budgetMs: 90_000, run: clientsDeflate },
  { name: 'cost', budgetMs: 60_000, run: cost },
  { name: 'scale', budgetMs: 90_000, run: scale },
  { name: 'fanout_tree', budgetMs: 150_000, run: fanoutTree },
];

const runStarted = now();
const loadAtStart = os.loadavg().map((x) => round(x, 2));
const VERSIONS = versions();
const { MeshClient } = await loadClient();
const script = await bundleWorker(`${ROOT}bench/worker.ts`, { plugins: [nodeBuiltins] });
const remoteScript = await bundleWorker(`${ROOT}bench/remote-worker.ts`, { plugins: [nodeBuiltins] });
const ctx = {
  script,
  remoteScript,
  n: (count) => Math.max(1, Math.round(count * SCALE)),
  fanoutConcurrency: process.env.BENCH_FANOUT_CONCURRENCY ? Number(process.env.BENCH_FANOUT_CONCURRENCY) : undefined,
  startMesh: (options) => startMesh({ script, MeshClient, ...options }),
};

const timeLeft = () => RUN_BUDGET_MS - (now() - runStarted);

/** The entries of one scenario, an `error` entry if it failed or ran out of its budget, or a `skipped` one. */
async function runScenario({ name, budgetMs, run }, scenarioCtx) {
  if (timeLeft() < budgetMs * 0.5) return [{ scenario: name, skipped: `run budget nearly used (${Math.round(timeLeft() / 1000)} s left)` }];
  const t = now();
  process.stdout.write(`· ${name} … `);
  try {
    const entries = [await within(run(scenarioCtx), Math.min(budgetMs, Math.max(timeLeft(), 1_000)), name)].flat();
    if (deflateMismatches.length > 0) throw new Error(`compression differs between clients: ${deflateMismatches.splice(0).join('; ')}`);
    process.stdout.write(`${((now() - t) / 1000).toFixed(1)} s\n`);
    return entries;
  } catch (error) {
    process.stdout.write(`failed: ${error.message}\n`);
    return [{ scenario: name, error: String(error?.message ?? error) }];
  }
}

const chosen = SCENARIOS.filter((s) => !ONLY || ONLY.has(s.name));
const results = [];
async function runAll(scenarios, scenarioCtx) {
  for (const s of scenarios) results.push(...(await runScenario(s, scenarioCtx)).map((entry) => ({ ...entry, versions: VERSIONS })));
}
const onShared = chosen.filter((s) => s.shared);
if (onShared.length > 0) {
  const mesh = await ctx.startMesh();
  try {
    await runAll(onShared, { ...ctx, mesh });
  } finally {
    await mesh.dispose();
  }
}
await runAll(chosen.filter((s) => !s.shared), ctx);

const machine = {
  cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? null, memoryGiB: round(os.totalmem() / 2 ** 30, 1), platform: `${os.platform()} ${os.release()}`,
  // Other work on the machine skews every figure: the 1/5/15-minute load averages at the start and the end of the run.
  loadAverage: { start: loadAtStart, end: os.loadavg().map((x) => round(x, 2)) },
};
const output = { generatedAt: new Date().toISOString(), durationSeconds: round((now() - runStarted) / 1000, 1), machine, versions: VERSIONS, scenarios: results };
mkdirSync(`${ROOT}bench/results`, { recursive: true });
writeFileSync(`${ROOT}bench/results/latest.json`, `${JSON.stringify(output, null, 2)}\n`);
for (const line of report(output)) console.log(line);
const charts = await writeCharts(output, `${ROOT}bench/results`);
console.log(`\n${output.durationSeconds} s; wrote bench/results/latest.json${charts.map((path) => `, ${path.slice(ROOT.length)}`).join('')}`);
process.exit(results.some((s) => s.error) ? 1 : 0);
