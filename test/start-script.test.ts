/**
 * `npm start` (scripts/start.mjs) as a person runs it: rooms survive a
 * restart, `--fresh` forgets them, the terminal shows connections, calls and
 * refusals, and a busy port or a bad setting is one line of explanation.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTerminal, type Terminal } from './support/terminal.js';

const START = new URL('../scripts/start.mjs', import.meta.url).pathname;

interface Server {
  child: ChildProcess;
  readonly stdout: string;
  readonly stderr: string;
  url: string;
  wait(re: RegExp, timeoutMs?: number): Promise<void>;
  /** Ctrl+C: resolves with the exit code once workerd is stopped. */
  stop(): Promise<number | null>;
}

const running: ChildProcess[] = [];
const terminals: Terminal[] = [];
let dataDir: string;

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

function run(args: string[], env: Record<string, string>): { child: ChildProcess; out: () => string; err: () => string } {
  const child = spawn(process.execPath, [START, ...args], { stdio: 'pipe', env: { ...process.env, ...env } });
  running.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (err += chunk.toString()));
  return { child, out: () => out, err: () => err };
}

async function start(args: string[] = [], env: Record<string, string> = {}): Promise<Server> {
  const { child, out, err } = run(args, { PORT: '0', MESHGATE_DATA_DIR: dataDir, MESHGATE_LOG: 'debug', ...env });
  const wait = (re: RegExp, timeoutMs = 30_000) => new Promise<void>((resolve, reject) => {
    const check = () => {
      if (re.test(out())) return done(resolve);
      if (child.exitCode !== null) done(() => reject(new Error(`npm start exited (${child.exitCode}) before ${re}:\n${out()}${err()}`)));
    };
    const done = (then: () => void) => {
      clearTimeout(timer);
      child.stdout!.off('data', check);
      child.off('exit', check);
      then();
    };
    const timer = setTimeout(() => done(() => reject(new Error(`no ${re} within ${timeoutMs} ms:\n${out()}${err()}`))), timeoutMs);
    child.stdout!.on('data', check);
    child.on('exit', check);
    check();
  });
  await wait(/press Ctrl\+C to stop/);
  const url = /running at (http:\/\/127\.0\.0\.1:\d+)/.exec(out())![1]!;
  return {
    child, url, wait,
    get stdout() {
      return out();
    },
    get stderr() {
      return err();
    },
    stop() {
      child.kill('SIGINT');
      return exited(child);
    },
  };
}

function terminal(url: string, name: string, room: string): Terminal {
  const t = startTerminal(url, name, room);
  terminals.push(t);
  return t;
}

/** A WebSocket upgrade the edge refuses; resolves with the close code the client saw. */
function refusedUpgrade(url: string, path: string, protocols: string[]): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}${path}`, protocols);
    ws.on('error', () => {});
    ws.on('close', (code) => resolve(code));
  });
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'meshgate-start-'));
});
afterEach(async () => {
  for (const t of terminals.splice(0)) t.kill();
  // SIGTERM lets the script stop workerd; SIGKILL only if it does not within 10 s.
  await Promise.all(running.splice(0).map(async (child) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited(child);
    clearTimeout(timer);
  }));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('npm start', () => {
  it('keeps rooms across a restart, forgets them with --fresh, and logs connections, calls and refusals', async () => {
    const first = await start();
    expect(first.stdout).toMatch(/rooms are kept in .*meshgate-start-.*--fresh starts clean/);
    const bob = terminal(first.url, 'bob', 'kept');
    await bob.wait(/Joined room "kept"/);
    bob.type('remember me');
    await bob.wait(/bob: remember me/);
    bob.type('/inc');
    await bob.wait(/counter 1 \(\+1 by bob\)/);
    await first.wait(/connect {2}bob\.[A-Za-z0-9_-]+ — new: the client subscribes/);
    await first.wait(/call {5}bob\.[A-Za-z0-9_-]+ → ROOM\/kept\.send\(\)/);
    await first.wait(/push {5}→ bob\.[A-Za-z0-9_-]+\.counter\(\)/);

    const forged = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.bm90LWEtc2lnbmF0dXJl';
    expect(await refusedUpgrade(first.url, '/gateway/GATEWAY/bob.tab1', ['meshgate', `meshgate.token.${forged}`])).toBe(4403);
    await first.wait(/refused {2}GATEWAY\/bob\.tab1: 4403 /);
    expect(await refusedUpgrade(first.url, '/gateway/GATEWAY/bob.tab2', ['meshgate'])).toBe(4400);
    await first.wait(/refused {2}GATEWAY\/bob\.tab2: 4400 No token/);
    await refusedUpgrade(first.url, '/gateway/NOPE/bob.tab3', ['meshgate']);
    await first.wait(/refused {2}NOPE\/bob\.tab3: HTTP 404 unknown gateway binding/);
    expect(first.stdout).not.toContain(forged); // a token is never logged

    bob.type('/quit');
    expect(await bob.exited()).toBe(0);
    await first.wait(/close {4}bob\.[A-Za-z0-9_-]+: 1000/);
    expect(await first.stop()).toBe(0);

    const second = await start();
    const carl = terminal(second.url, 'carl', 'kept');
    await carl.wait(/bob: remember me/);
    await carl.wait(/counter 1/);
    carl.type('/quit');
    expect(await carl.exited()).toBe(0);
    expect(await second.stop()).toBe(0);

    const fresh = await start(['--fresh'], { MESHGATE_LOG: 'off' });
    expect(fresh.stdout).toMatch(/started clean/);
    const dora = terminal(fresh.url, 'dora', 'kept');
    await dora.wait(/Joined room "kept"/);
    expect(dora.output).toMatch(/counter 0/);
    expect(dora.output).not.toMatch(/remember me/);
    dora.type('/quit');
    expect(await dora.exited()).toBe(0);
    expect(fresh.stdout).not.toMatch(/connect {2}dora/); // MESHGATE_LOG=off
    expect(await fresh.stop()).toBe(0);
  }, 120_000);

  it('a port in use is one line saying so, without workerd\'s stack', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const { child, out, err } = run([], { PORT: String(port), MESHGATE_DATA_DIR: dataDir });
      expect(await exited(child)).toBe(1);
      expect(err().trim().split('\n')).toEqual([`Port ${port} is in use (another npm start?); stop it, or try PORT=${port + 1} npm start.`]);
      expect(out() + err()).not.toMatch(/kj::Exception|stack:/);
    } finally {
      await new Promise((resolve) => blocker.close(resolve));
    }
  }, 60_000);

  it('a MESHGATE_LOG it does not know, or an unknown flag, is one line naming what is accepted', async () => {
    const badLevel = run([], { MESHGATE_LOG: 'verbose', MESHGATE_DATA_DIR: dataDir });
    expect(await exited(badLevel.child)).toBe(1);
    expect(badLevel.err().trim()).toBe('MESHGATE_LOG must be one of off, info, debug, trace, got "verbose".');
    const badFlag = run(['--frsh'], { MESHGATE_DATA_DIR: dataDir });
    expect(await exited(badFlag.child)).toBe(1);
    expect(badFlag.err().trim()).toMatch(/Unknown option '--frsh'.*Usage: npm start \[-- --fresh\]/);
  });
});
