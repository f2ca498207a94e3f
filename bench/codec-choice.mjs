/**
 * The codec choice, measured: meshgate's devalue codec against CBOR (cbor-x,
 * installed by the npm script without saving it — its optional native
 * packages are not in the lock file npm ci checks —
 * cborg) in workerd (Miniflare) and headless Chromium, on the same payloads in
 * one run: speed, encoded and gzipped size, bundle size, and which values
 * round-trip. Loops are bounded by count (N below) and each runtime call by a timeout.
 * Run: npm run bench:codec-choice
 */
import { build } from 'esbuild';
import { gzipSync } from 'node:zlib';
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { chromium } from 'playwright-core';
import { startWorkerd } from '../scripts/workerd.mjs';

const here = (p) => new URL(p, import.meta.url).pathname;
async function bundle(entry, extra = {}) {
  const r = await build({ entryPoints: [entry], bundle: true, format: 'esm', platform: 'neutral', target: 'es2022', conditions: ['workerd', 'worker', 'browser'], mainFields: ['module', 'main'], write: false, logLevel: 'silent', ...extra });
  return r.outputFiles[0].text;
}
// Node cannot import the TypeScript codec directly: the host loads the same bundle the runtimes get.
const { codecs, fidelity, sizes } = await import(`data:text/javascript;base64,${Buffer.from(await bundle(here('./codec-choice/core.mjs'))).toString('base64')}`);

const N = { small: 2000, large: 20, huge: 3 };
const REPEATS = 3;
const names = Object.keys(codecs);
const sizesList = Object.keys(N);

async function bundleSize(contents) {
  const text = await bundle('entry.js', { entryPoints: undefined, stdin: { contents, resolveDir: here('./'), loader: 'js' }, minify: true });
  return { min: text.length, gzip: gzipSync(text).length };
}

const result = { when: new Date().toISOString(), node: process.version, cpus: os.cpus().length, cpu: os.cpus()[0]?.model, loadavg: os.loadavg().map((l) => +l.toFixed(2)), N, repeats: REPEATS, sizes: {}, bundles: {}, fidelity: {}, workerd: {}, chromium: {} };

for (const name of names) {
  result.fidelity[name] = { node: fidelity(codecs[name]) };
  result.sizes[name] = Object.fromEntries(sizesList.map((s) => { const b = sizes(name, s); return [s, { bytes: b.length, gzip: gzipSync(b).length }]; }));
}
result.bundles = {
  'meshgate codec (devalue + bounds)': await bundleSize(`import { encodeValue, decodeValue } from '../src/protocol/codec.ts'; globalThis.x = [encodeValue, decodeValue];`),
  'devalue alone': await bundleSize(`import { stringify, parse } from 'devalue'; globalThis.x = [stringify, parse];`),
  'cbor-x (Encoder)': await bundleSize(`import { Encoder } from 'cbor-x'; globalThis.x = new Encoder({ structuredClone: true });`),
  'cborg/extended': await bundleSize(`import { encode, decode } from 'cborg/extended'; globalThis.x = [encode, decode];`),
};

// workerd: the host times each request; per-op time is (T(n) − T(0)) / n, the best of REPEATS.
const worker = await startWorkerd({ script: await bundle(here('./codec-choice/worker.mjs')) });
try {
  const get = async (qs) => { const t0 = performance.now(); const r = await fetch(new URL(`/?${qs}`, worker.url), { signal: AbortSignal.timeout(120_000) }); await r.text(); return performance.now() - t0; };
  const fid = await (await fetch(new URL('/?fidelity=1', worker.url))).json();
  for (const name of names) result.fidelity[name].workerd = fid[name];
  for (const name of names) for (const size of sizesList) for (const op of ['enc', 'dec']) {
    const qs = (n) => new URLSearchParams({ codec: name, size, op, n: String(n) }).toString();
    let best = Infinity;
    for (let i = 0; i < REPEATS; i++) best = Math.min(best, ((await get(qs(N[size]))) - (await get(qs(0)))) / N[size]);
    ((result.workerd[name] ??= {})[size] ??= {})[op] = +Math.max(best, 0).toFixed(4);
  }
} finally { await worker.dispose(); }

// Chromium: the page times itself with performance.now(), best of REPEATS.
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'] });
try {
  const page = await browser.newPage();
  await page.addScriptTag({ content: await bundle(here('./codec-choice/browser.mjs'), { format: 'iife' }) });
  result.chromium.version = browser.version();
  const fid = await page.evaluate(() => codecBench.fidelity());
  for (const name of names) result.fidelity[name].chromium = fid[name];
  for (const name of names) for (const size of sizesList) for (const op of ['enc', 'dec']) {
    const ms = await page.evaluate(([c, s, o, n, r]) => { let best = Infinity; for (let i = 0; i < r; i++) best = Math.min(best, codecBench.run(c, s, o, n)); return best; }, [name, size, op, N[size], REPEATS]);
    ((result.chromium[name] ??= {})[size] ??= {})[op] = +(ms / N[size]).toFixed(4);
  }
} finally { await browser.close(); }

console.log(JSON.stringify(result, null, 2));
mkdirSync(here('./results/'), { recursive: true });
writeFileSync(here('./results/codec-choice.json'), JSON.stringify(result, null, 2));
