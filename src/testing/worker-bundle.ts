/**
 * Builds the Worker a test runs: the app's own entry, bundled with esbuild as
 * wrangler would, behind a generated entry that re-exports it with each
 * Durable Object class passed through `testable()` (gateway-controls.ts).
 */
import { existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { GatewaySettings } from './gateway-controls.js';

/** gateway-controls next to this file: .js in the package, .ts when meshgate runs from source. */
function controlsModule(): string {
  for (const ext of ['.js', '.ts']) {
    const path = fileURLToPath(new URL(`./gateway-controls${ext}`, import.meta.url));
    if (existsSync(path)) return path;
  }
  throw new Error('meshgate/testing: gateway-controls module missing next to worker-bundle; reinstall meshgate.');
}

/** The generated entry: local exports shadow `export *`, so each listed class is replaced and the rest pass through. */
export function entrySource(appEntry: string, durableObjectClasses: readonly string[], settings: GatewaySettings): string {
  const lines = [
    `import * as app from ${JSON.stringify(appEntry)};`,
    `import { testable } from ${JSON.stringify(controlsModule())};`,
    `export * from ${JSON.stringify(appEntry)};`,
    `export default app.default;`,
    `const settings = ${JSON.stringify(settings)};`,
  ];
  for (const name of new Set(durableObjectClasses)) {
    if (!/^[A-Za-z_$][\w$]*$/.test(name)) throw new Error(`meshgate/testing: "${name}" is not a class name a Worker can export.`);
    lines.push(`export const ${name} = testable(app.${name}, settings);`);
  }
  return lines.join('\n');
}

export async function bundleTestWorker(appEntry: string, durableObjectClasses: readonly string[], settings: GatewaySettings, define: Record<string, string> = {}): Promise<string> {
  const { build } = await import('esbuild');
  const result = await build({
    stdin: { contents: entrySource(appEntry, durableObjectClasses, settings), resolveDir: dirname(appEntry), sourcefile: 'meshgate-testing-entry.ts', loader: 'ts' },
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
  });
  return result.outputFiles[0]!.text;
}
