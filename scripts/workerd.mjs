/**
 * Runs a meshgate Worker on embedded workerd: bundles the entry with esbuild
 * and starts Miniflare on 127.0.0.1. Shared by `npm start`, the tests and the
 * benchmarks, so all three run the same way.
 */
import { build } from 'esbuild';
import { Miniflare } from 'miniflare';

export const COMPATIBILITY_DATE = '2026-04-20';
export const COMPATIBILITY_FLAGS = ['nodejs_compat'];

/** Bundles a Worker entry to one ES module string. */
export async function bundleWorker(entry, { define = {}, loaders = {}, plugins = [] } = {}) {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    target: 'es2022',
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['module', 'main'],
    external: ['cloudflare:*', 'node:*'],
    write: false,
    logLevel: 'silent',
    define,
    loader: loaders,
    plugins,
  });
  return result.outputFiles[0].text;
}

/**
 * Starts workerd with the bundled entry.
 * `durableObjects`: { BINDING: 'ClassName' }; `services`: { BINDING: 'EntrypointClass' } for Workers in the same script;
 * `external`: { BINDING: 'host:port' } for an entrypoint another workerd serves on a direct socket (JS RPC across processes);
 * `name`: the Worker's name (another workerd's dev registry finds it by that);
 * `compatibilityFlags` replaces the default flags; `miniflare` adds Miniflare options (persistence, stdio handling).
 */
export async function startWorkerd({ name = 'main', entry, script, durableObjects = {}, services = {}, external = {}, bindings = {}, port = 0, host = '127.0.0.1', log = false, compatibilityFlags = COMPATIBILITY_FLAGS, miniflare = {} }) {
  const code = script ?? (await bundleWorker(entry));
  const serviceBindings = Object.fromEntries([
    ...Object.entries(services).map(([binding, entrypoint]) => [binding, { name, entrypoint }]),
    // Miniflare gives an external server's HTTP options the host that upgrades a request to JS RPC
    ...Object.entries(external).map(([binding, address]) => [binding, { external: { address, http: {} } }]),
  ]);
  const mf = new Miniflare({
    name,
    modules: true,
    script: code,
    compatibilityDate: COMPATIBILITY_DATE,
    compatibilityFlags,
    durableObjects,
    serviceBindings,
    bindings,
    host,
    port,
    verbose: log,
    ...miniflare,
  });
  const url = await mf.ready;
  return { mf, url: new URL(url), dispose: () => mf.dispose() };
}
