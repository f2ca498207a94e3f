/**
 * Launcher for the Node client example: Node.js 20 cannot run TypeScript, so
 * this bundles node-client.ts with esbuild into .tmp/ and runs it. No build
 * step to run by hand. The bundle sits inside the project so its `ws` import
 * resolves from node_modules; each process gets its own file, removed once loaded.
 */
import { mkdir, rm } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildNodeClient } from '../../scripts/example-build.mjs';

const outDir = fileURLToPath(new URL('../../.tmp/', import.meta.url));
await mkdir(outDir, { recursive: true });
const outfile = await buildNodeClient(`${outDir}chat-node-client-${process.pid}.mjs`);
try {
  await import(pathToFileURL(outfile).href);
} finally {
  await rm(outfile, { force: true });
}
