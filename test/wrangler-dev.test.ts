/**
 * Refusals under `wrangler dev`, as a developer sees them in the terminal:
 * one line from meshgate saying what was refused and why, and no
 * "Network connection lost" error that looks like a crash.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MeshClient, type SocketClass } from '../src/client/index.js';

const WRANGLER = new URL('../node_modules/wrangler/bin/wrangler.js', import.meta.url).pathname;
const CONFIG = new URL('./fixtures/wrangler-dev/wrangler.jsonc', import.meta.url).pathname;
const SECRET = 'wrangler-dev-test-secret-long-enough-for-hs256';

let child: ChildProcess;
let output = '';
let origin: string;
let home: string;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Resolves once the output matches, bounded. */
function outputMatches(re: RegExp, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = (): void => {
      if (!re.test(output)) return;
      clearTimeout(timer);
      child.stdout!.off('data', check);
      child.stderr!.off('data', check);
      resolve();
    };
    const timer = setTimeout(() => reject(new Error(`wrangler dev printed no ${re} within ${timeoutMs} ms:\n${output.slice(-2000)}`)), timeoutMs);
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    check();
  });
}

beforeAll(async () => {
  const port = await freePort();
  home = await mkdtemp(join(tmpdir(), 'meshgate-wrangler-'));
  child = spawn(process.execPath, [WRANGLER, 'dev', '--config', CONFIG, '--ip', '127.0.0.1', '--port', String(port), '--var', `JWT_SECRET:${SECRET}`, '--persist-to', join(home, 'state'), '--show-interactive-dev-session=false'], {
    stdio: 'pipe', detached: true,
    env: { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, 'config'), WRANGLER_SEND_METRICS: 'false', NO_COLOR: '1', FORCE_COLOR: '0' },
  });
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  origin = `http://127.0.0.1:${port}`;
  await outputMatches(/Ready on/, 90_000);
}, 100_000);

afterAll(async () => {
  if (child && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(-child.pid!, 'SIGTERM'); // wrangler and the workerd it started
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
    if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
  }
  if (home) await rm(home, { recursive: true, force: true });
});

const sign = (claims: { sub: string }, secret: string) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setExpirationTime('1h').sign(new TextEncoder().encode(secret));

/** A MeshClient with this token: resolves with the reason it was told to log in again. */
function refusedClient(accessToken: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the client was not refused within 10 s')), 10_000);
    const client = new MeshClient({
      url: origin, accessToken, instanceName: 'ada.tab1', WebSocket: WebSocket as unknown as SocketClass,
      onLoginRequired: (reason) => {
        clearTimeout(timer);
        client.disconnect();
        resolve(reason);
      },
    });
  });
}

it('each refused upgrade prints one meshgate line saying why, and no "Network connection lost"', async () => {
  const reasons = [
    await refusedClient(await sign({ sub: 'ada' }, 'another-secret-that-is-long-enough-too')),
    await refusedClient(await sign({ sub: 'bob' }, SECRET)), // a token for another user than the tab's
    await refusedClient('not-a-jwt'),
  ];
  expect(reasons).toEqual(['Token invalid', 'Instance name must be {sub}.{tabId}', 'Token invalid']);
  await outputMatches(/(meshgate: refused upgrade[^\n]*\n[\s\S]*){3}/, 10_000);
  // An accepted client afterwards: its call works, so anything the refusals would print has had its turn.
  const good = new MeshClient({ url: origin, accessToken: await sign({ sub: 'ada' }, SECRET), instanceName: 'ada.tab2', WebSocket: WebSocket as unknown as SocketClass });
  expect(await good.node<{ echo(v: string): string }>('ECHO', 'e1').echo('hi')).toBe('hi');
  good.disconnect();
  const lines = output.split('\n').filter((line) => line.includes('meshgate: refused upgrade'));
  expect(lines).toHaveLength(3);
  expect(lines[0]).toMatch(/GATEWAY\/ada\.tab1.*closed with 4403 Token invalid/);
  expect(lines[1]).toMatch(/\(sub bob\): closed with 4403 Instance name/);
  expect(output).not.toContain('Network connection lost');
  expect(output).not.toMatch(/\[ERROR\]/);
}, 60_000);
