/** Helpers for the benchmarks: statistics, raw sockets, tokens, the workerd process, bounded loops. */
import { readFileSync, mkdirSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { build } from 'esbuild';
import { SignJWT } from 'jose';
import WebSocket from 'ws';

export const now = () => performance.now();
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
export const ROOT = fileURLToPath(new URL('..', import.meta.url));

// ── statistics ────────────────────────────────────────────────────────────────

/** Nearest-rank percentile of an ascending array. */
function pct(sorted, q) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export const round = (x, digits = 3) => (x === null || x === undefined || Number.isNaN(x) ? null : Number(x.toFixed(digits)));

/** p50/p90/p99/mean (ms) of a list of samples. */
export function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const mean = sorted.reduce((s, x) => s + x, 0) / (sorted.length || 1);
  return { p50: round(pct(sorted, 0.5)), p90: round(pct(sorted, 0.9)), p99: round(pct(sorted, 0.99)), mean: round(mean), n: sorted.length };
}

export const ratio = (a, b) => (typeof a === 'number' && typeof b === 'number' && b !== 0 ? round(a / b, 2) : null);

// ── bounded loops ─────────────────────────────────────────────────────────────

/** Runs `body(i)` sequentially at most `count` times and at most `maxMs`; returns how many ran. */
export async function bounded(count, maxMs, body) {
  const end = now() + maxMs;
  let i = 0;
  for (; i < count && now() < end; i++) await body(i);
  return i;
}

/** Rejects after `ms` with a message naming `what`. */
export function within(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Runs `task(i)` for i < count with at most `limit` at once. */
export async function pool(count, limit, task) {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
}

// ── tokens ────────────────────────────────────────────────────────────────────

export const SECRET = 'bench-secret-which-is-long-enough-for-hs256';
const key = new TextEncoder().encode(SECRET);

export function token(sub) {
  return new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 3600).sign(key);
}

// ── bundles ───────────────────────────────────────────────────────────────────

/** Bundles the client (src/client) for Node into .tmp/bench and imports it. */
export async function loadClient() {
  const outdir = `${ROOT}.tmp/bench`;
  mkdirSync(outdir, { recursive: true });
  const outfile = `${outdir}/client.mjs`;
  await build({
    entryPoints: [`${ROOT}src/client/index.ts`],
    bundle: true, format: 'esm', platform: 'node', target: 'node20', outfile, logLevel: 'silent',
  });
  return import(`${outfile}?t=${Date.now()}`);
}

/**
 * An esbuild plugin that leaves Node's built-ins (`path`, `node:path`) to workerd's nodejs_compat, as wrangler does:
 * the Agents SDK's dependencies import some by their bare names.
 */
export const nodeBuiltins = {
  name: 'node-builtins',
  setup(b) {
    const names = new Set(builtinModules);
    b.onResolve({ filter: /^[a-z_/]+$/ }, (args) => (names.has(args.path) ? { path: `node:${args.path}`, external: true } : undefined));
  },
};

// ── versions and the workerd process ──────────────────────────────────────────

function pkgVersion(name) {
  try {
    return JSON.parse(readFileSync(`${ROOT}node_modules/${name}/package.json`, 'utf8')).version;
  } catch {
    return null;
  }
}

export function versions() {
  return { node: process.version, workerd: pkgVersion('workerd'), miniflare: pkgVersion('miniflare'), codec: `devalue ${pkgVersion('devalue')}`, agents: pkgVersion('agents'), partyserver: pkgVersion('partyserver') };
}

export { workerdPids, cpuMs, rssBytes } from '../scripts/processes.mjs';

// ── a raw WebSocket (baseline and protocol-level scenarios) ──────────────────

export class RawWs {
  /** @param {string} url */
  constructor(url, protocols, options = {}) {
    this.ws = new WebSocket(url, protocols, options);
    this.waiter = undefined;
    this.onText = undefined;
    this.closeFrame = undefined;
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => {
        this.openedAt = now();
        const deflate = /permessage-deflate/.test(this.ws.extensions ?? '');
        if (deflate !== Boolean(options.perMessageDeflate)) {
          reject(new Error(`${url}: permessage-deflate ${deflate ? 'negotiated' : 'not negotiated'}, expected ${options.perMessageDeflate ? 'on' : 'off'}`));
          return;
        }
        // The close frame, as soon as it arrives (ws's 'close' waits for the TCP connection to end).
        this.ws._receiver?.on('conclude', (code) => {
          this.closeFrame ??= { code, at: now() };
          this.onCloseFrame?.(this.closeFrame);
        });
        resolve();
      });
      this.ws.once('error', reject);
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data, isBinary) => {
      const text = isBinary ? data : data.toString();
      if (this.onText) return this.onText(text);
      const waiter = this.waiter;
      this.waiter = undefined;
      waiter?.(text);
    });
  }

  /** Sends and resolves with the next message. */
  request(text) {
    return new Promise((resolve) => {
      this.waiter = resolve;
      this.ws.send(text);
    });
  }

  send(text) {
    this.ws.send(text);
  }

  terminate() {
    this.ws.terminate();
  }
}
