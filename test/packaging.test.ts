/**
 * The published package works for a stranger: `npm pack`, install into a
 * fresh project, import the client in Node, bundle the client for a browser
 * (no server code, no cloudflare:* import), bundle a Worker with wrangler,
 * run the test of docs/testing.md with meshgate/testing, render with
 * meshgate/react. The tarball and ws are installed for real; the tools
 * (vitest, miniflare, wrangler, esbuild, react) are linked from this repo,
 * so the test needs no network.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import { afterAll, beforeAll, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
let project: string;

function run(cmd: string, args: string[], cwd: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WRANGLER_SEND_METRICS: 'false', NO_UPDATE_NOTIFIER: '1' } });
}

beforeAll(() => {
  project = mkdtempSync(join(tmpdir(), 'meshgate-pack-'));
  run('npm', ['pack', '--pack-destination', project, '--silent'], root);
  const tarball = readdirSync(project).find((f) => f.endsWith('.tgz'))!;
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'adopter', private: true, type: 'module' }));
  run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', `./${tarball}`, `ws@${JSON.parse(readFileSync(join(root, 'node_modules/ws/package.json'), 'utf8')).version}`], project);
  for (const tool of TOOLS) symlinkSync(join(root, 'node_modules', tool), join(project, 'node_modules', tool), 'dir');
}, 180_000);

const TOOLS = ['vitest', 'miniflare', 'wrangler', 'esbuild', 'react', 'react-dom'];

/** The ```ts or ```jsonc blocks of a docs page, by their `// file:` name (a jsonc block is the page's wrangler.jsonc). */
function docFiles(page: string): Record<string, string> {
  const files: Record<string, string> = {};
  const re = /```(ts|jsonc)\n([\s\S]*?)```/g;
  const markdown = readFileSync(join(root, page), 'utf8');
  for (let m = re.exec(markdown); m; m = re.exec(markdown)) {
    const name = m[1] === 'jsonc' ? 'wrangler.jsonc' : /^\/\/ file: ([\w.-]+\.ts)/.exec(m[2]!)?.[1];
    if (name) files[name] = m[2]!;
  }
  return files;
}

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

it('meshgate/client imports in Node and constructs a client with ws', () => {
  writeFileSync(join(project, 'node-client.mjs'), `
    import WebSocket from 'ws';
    import { MeshClient, WS_CLOSE_SUPERSEDED, ClientDisconnectedError } from 'meshgate/client';
    const client = new MeshClient({ url: 'ws://127.0.0.1:9', accessToken: 'e30.eyJzdWIiOiJhIn0.x', WebSocket, autoConnect: false });
    console.log(JSON.stringify({ state: client.state, code: WS_CLOSE_SUPERSEDED, err: new ClientDisconnectedError('a.b').name }));
  `);
  const out = JSON.parse(run('node', ['node-client.mjs'], project));
  expect(out).toEqual({ state: 'disconnected', code: 4409, err: 'ClientDisconnectedError' });
});

it('meshgate/client bundles for the browser with no server code and no cloudflare:* import', async () => {
  writeFileSync(join(project, 'browser.js'), `import { MeshClient } from 'meshgate/client'; window.MeshClient = MeshClient;`);
  const result = await build({ entryPoints: [join(project, 'browser.js')], bundle: true, minify: true, format: 'esm', platform: 'browser', write: false, absWorkingDir: project, metafile: true });
  const code = result.outputFiles[0]!.text;
  expect(code).not.toMatch(/cloudflare:/);
  expect(code).not.toMatch(/async_hooks/);
  const inputs = Object.keys(result.metafile.inputs);
  expect(inputs.some((f) => /meshgate\/dist\/client\//.test(f))).toBe(true);
  expect(inputs.filter((f) => /meshgate\/dist\/(gateway|edge|node|subscriptions|react|testing)\//.test(f) || /jose|react/.test(f))).toEqual([]);
  const size = { minified: code.length, gzip: gzipSync(code).length };
  console.log(`client bundle: ${(size.minified / 1024).toFixed(1)} KiB minified, ${(size.gzip / 1024).toFixed(1)} KiB gzipped`);
  expect(size.gzip).toBeLessThan(22 * 1024); // 20.0 KiB with batches and frame pacing; 21.4 with errors that say why a call never left, a refresh hung or a client refused a call
});

it('a Worker using meshgate bundles with wrangler deploy --dry-run', () => {
  writeFileSync(join(project, 'worker.ts'), `
    import { ClientGateway, MeshDurableObject, createMeshWorker, mesh } from 'meshgate';
    export class Gateway extends ClientGateway {}
    export class Document extends MeshDurableObject {
      @mesh update(text: string) { return text.length; }
    }
    export default createMeshWorker<{ JWT_SECRET: string }>({ auth: { secret: (env) => env.JWT_SECRET } });
  `);
  writeFileSync(join(project, 'wrangler.jsonc'), JSON.stringify({
    name: 'adopter', main: 'worker.ts', compatibility_date: '2026-04-20', compatibility_flags: ['nodejs_compat'],
    durable_objects: { bindings: [{ name: 'GATEWAY', class_name: 'Gateway' }, { name: 'DOCUMENT', class_name: 'Document' }] },
    migrations: [{ tag: 'v1', new_sqlite_classes: ['Gateway', 'Document'] }],
  }));
  run('node', [join(root, 'node_modules/wrangler/bin/wrangler.js'), 'deploy', '--dry-run', '--outdir', 'out'], project);
  const bundle = readFileSync(join(project, 'out/worker.js'), 'utf8');
  expect(bundle).toMatch(/Superseded by new connection/);
  expect(bundle).toMatch(/export\s*\{[^}]*\bGateway\b[^}]*\}/);
  expect(bundle).toMatch(/__meshgateCall/);
}, 120_000);

it('meshgate/testing runs the test of docs/testing.md against its Worker on workerd', () => {
  const dir = join(project, 'rooms');
  mkdirSync(dir);
  const files = docFiles('docs/testing.md');
  expect(Object.keys(files).sort()).toEqual(['room.test.ts', 'worker.ts', 'wrangler.jsonc']);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  let out: string;
  try {
    out = run('node', [join(project, 'node_modules/vitest/vitest.mjs'), 'run', '--root', dir, '--reporter', 'verbose'], project);
  } catch (error) {
    throw new Error(`the docs/testing.md test failed in the fresh project:\n${(error as { stdout?: string }).stdout}\n${(error as { stderr?: string }).stderr}`);
  }
  expect(out.replace(/\u001b\[[0-9;]*m/g, '')).toMatch(/Tests\s+3 passed \(3\)/);
}, 120_000);

it('meshgate/react renders with a real React (server rendering in Node) and bundles for the browser beside meshgate/client', async () => {
  writeFileSync(join(project, 'react-render.mjs'), `
    import { createElement as h } from 'react';
    import { renderToString } from 'react-dom/server';
    import WebSocket from 'ws';
    import { MeshProvider, useConnectionState, useMeshClient } from 'meshgate/react';
    function Status() {
      const client = useMeshClient();
      const { state } = useConnectionState();
      return h('output', { 'data-state': state }, client.constructor.name);
    }
    const options = { url: 'ws://127.0.0.1:9', accessToken: 'e30.eyJzdWIiOiJhIn0.x', WebSocket };
    console.log(renderToString(h(MeshProvider, { options, disposeDelayMs: 10 }, h(Status))));
  `);
  expect(run('node', ['react-render.mjs'], project).trim()).toBe('<output data-state="disconnected">MeshClient</output>');

  const bundle = async (source: string) => {
    writeFileSync(join(project, 'entry.js'), source);
    const result = await build({
      entryPoints: [join(project, 'entry.js')], bundle: true, minify: true, format: 'esm', platform: 'browser', write: false, absWorkingDir: project,
      external: ['react', 'react-dom'], metafile: true,
    });
    const code = result.outputFiles[0]!.text;
    return { code, inputs: Object.keys(result.metafile.inputs), gzip: gzipSync(code).length };
  };
  const client = await bundle(`import { MeshClient } from 'meshgate/client'; window.MeshClient = MeshClient;`);
  const react = await bundle(`import * as hooks from 'meshgate/react'; window.meshReact = hooks;`);
  expect(react.inputs.some((f) => /meshgate\/dist\/react\//.test(f))).toBe(true);
  expect(react.inputs.filter((f) => /meshgate\/dist\/(gateway|edge|node|subscriptions|testing)\//.test(f))).toEqual([]);
  const kib = (n: number) => (n / 1024).toFixed(1);
  console.log(`meshgate/react bundle (React itself external): ${kib(react.code.length)} KiB minified, ${kib(react.gzip)} KiB gzipped; `
    + `over meshgate/client: +${kib(react.code.length - client.code.length)} KiB minified, +${kib(react.gzip - client.gzip)} KiB gzipped`);
  expect(react.gzip - client.gzip).toBeLessThan(4 * 1024);
});
