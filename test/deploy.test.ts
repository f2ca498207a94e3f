/**
 * Deploys under load. On Cloudflare a deploy restarts every Durable Object
 * and drops its sockets; here the runtime (workerd) is killed mid-load and
 * started again on the same port with a rebuilt bundle, over the same
 * persisted Durable Object storage. Killing the process is the harshest
 * form: no gateway hears its sockets close, so none starts a grace period.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MeshClient, type ConnectionState, type MeshClientOptions } from '../src/client/index.js';
import type { SocketClass } from '../src/client/socket.js';
// @ts-expect-error plain ESM helper shared with scripts
import { bundleWorker, startWorkerd } from '../scripts/workerd.mjs';
import { createNetwork, waitFor } from './support/network.js';
import type { Summary } from './support/subscriptions-mesh.js';

const SECRET = 'deploy-test-secret-which-is-long-enough-for-hs256';
const ENTRY = new URL('./fixtures/deploy-worker.ts', import.meta.url).pathname;
const TOPIC = 'deploy';

type Ledger = { record(key: string, ms: number): { version: string; runs: number }; version(): string };
type Topic = { join(topic: string): string; broadcast(topic: string, payload: unknown, options?: { timeoutMs?: number }): Summary };
type Runtime = { url: URL; mf: import('miniflare').Miniflare; dispose(): Promise<void> };

/** A port free now; the restarted runtime listens on it again, so clients reconnect to the same URL. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Bundles of the fixture that differ only in the version their answers carry. */
const bundles = new Map<string, string>();
let persistDir: string;
let port: number;
let runtime: Runtime | undefined;
const clients: MeshClient[] = [];

async function deploy(version: string, bindings: Record<string, string> = {}): Promise<Runtime> {
  runtime = await startWorkerd({
    script: bundles.get(version),
    port,
    durableObjects: {
      GATEWAY: 'DeployGateway',
      TOPIC: { className: 'TopicDO', useSQLite: true },
      LEDGER: { className: 'LedgerDO', useSQLite: true },
      IDENTITY_LIMITER: { className: 'IdentityLimiter', useSQLite: true },
    },
    bindings: { JWT_SECRET: SECRET, ...bindings },
    miniflare: { durableObjectsPersist: persistDir },
  }) as Runtime;
  return runtime;
}

/** The deploy: the runtime dies at once (SIGKILL, as Miniflare disposes), and the new code starts over the same storage. */
async function redeploy(version: string, bindings: Record<string, string> = {}): Promise<{ downMs: number }> {
  const started = Date.now();
  await runtime!.dispose();
  runtime = undefined;
  await deploy(version, bindings);
  return { downMs: Date.now() - started };
}

async function hostFetch(binding: string, instance: string, path: string): Promise<any> {
  const ns = await runtime!.mf.getDurableObjectNamespace(binding);
  return (await ns.get(ns.idFromName(instance)).fetch(`http://host${path}`)).json();
}

const token = (sub: string): Promise<string> =>
  new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));

async function newClient(sub: string, options: Partial<MeshClientOptions>): Promise<MeshClient> {
  const client = new MeshClient({
    url: `ws://127.0.0.1:${port}`,
    accessToken: await token(sub),
    WebSocket: WebSocket as unknown as SocketClass,
    reconnectMinDelayMs: 50,
    reconnectMaxDelayMs: 250,
    ...options,
  });
  clients.push(client);
  return client;
}

beforeAll(async () => {
  persistDir = mkdtempSync(join(tmpdir(), 'meshgate-deploy-'));
  port = await freePort();
  for (const version of ['v1', 'v2']) bundles.set(version, await bundleWorker(ENTRY, { define: { __DEPLOY_VERSION__: JSON.stringify(version) } }));
});

afterEach(async () => {
  for (const c of clients.splice(0)) c.disconnect();
  await runtime?.dispose();
  runtime = undefined;
});

afterAll(() => {
  rmSync(persistDir, { recursive: true, force: true });
});

const CLIENTS = 20;
/** Calls each client keeps in flight. */
const IN_FLIGHT = 3;
/** Answers before the deploy, so it hits a mesh in full swing. */
const ANSWERS_BEFORE = 120;
/** Answers from the new code each client must see after the deploy. */
const ANSWERS_AFTER = 5;
/** Bounds on the load loop, whatever happens. */
const MAX_CALLS_PER_LOOP = 300;
const LOAD_MS = 30_000;
const LEDGERS = 2;

type Outcome = { client: number; lane: number; key: string; madeAfterDeploy: boolean } & ({ ok: true; version: string; runs: number } | { ok: false; name: string; message: string });

describe('a deploy under load', () => {
  it('every client reconnects by itself, every call settles, none runs twice, subscriptions come back', async () => {
    await deploy('v1');
    const outcomes: Outcome[] = [];
    const states: ConnectionState[][] = [];
    const connects: Array<Array<{ subscriptionRequired: boolean; firstConnection: boolean }>> = [];
    const joins: number[] = [];
    const heard: unknown[][] = [];
    let deployed = false;
    let stop = false;

    for (let i = 0; i < CLIENTS; i++) {
      states.push([]);
      connects.push([]);
      joins.push(0);
      heard.push([]);
      // What an app does: subscribe from onSubscriptionRequired, on the first connection and whenever the gateway forgot it.
      const client: MeshClient = await newClient(`deployer${i}`, {
        handlers: { notify: (_topic: string, payload: unknown) => (heard[i]!.push(payload), 'ok') },
        onStateChange: (state) => states[i]!.push(state),
        onConnected: (info) => connects[i]!.push(info),
        onSubscriptionRequired: async () => {
          await client.node<Topic>('TOPIC', 'room').join(TOPIC);
          joins[i]!++;
        },
        callTimeoutMs: 15_000,
      });
    }
    await waitFor(() => joins.every((n) => n === 1), 'every client to connect and subscribe', 15_000);

    const loop = async (i: number, lane: number): Promise<void> => {
      const client = clients[i]!;
      for (let n = 0; n < MAX_CALLS_PER_LOOP && !stop; n++) {
        const key = `c${i}-l${lane}-${n}`;
        const madeAfterDeploy = deployed;
        const ledger = client.node<Ledger>('LEDGER', `ledger-${n % LEDGERS}`);
        try {
          const answer = await ledger.record(key, 10 + Math.floor(Math.random() * 40));
          outcomes.push({ client: i, lane, key, madeAfterDeploy, ok: true, ...answer });
        } catch (error) {
          const e = error as Error;
          outcomes.push({ client: i, lane, key, madeAfterDeploy, ok: false, name: e?.name ?? 'untyped', message: String(e?.message) });
        }
      }
    };
    const loadEnd = Date.now() + LOAD_MS;
    const bound = setTimeout(() => (stop = true), LOAD_MS);
    const loops: Promise<void>[] = [];
    const loopIds: string[] = [];
    for (let i = 0; i < CLIENTS; i++) {
      for (let lane = 0; lane < IN_FLIGHT; lane++) {
        loops.push(loop(i, lane));
        loopIds.push(`${i}/${lane}`);
      }
    }

    const newCodeAnswers = (i: number) => outcomes.filter((o) => o.client === i && o.ok && o.version === 'v2').length;
    let inFlightAtDeploy: number, downMs: number, backMs: number;
    try {
      await waitFor(() => outcomes.length >= ANSWERS_BEFORE, `${ANSWERS_BEFORE} answers before the deploy`, 15_000, 5);
      inFlightAtDeploy = clients.reduce((sum, c) => sum + c.pendingCalls, 0);
      const deployStarted = Date.now();
      ({ downMs } = await redeploy('v2'));
      deployed = true;

      // Nobody calls connect(): each client finds the new runtime by itself.
      await waitFor(() => clients.every((c) => c.state === 'connected') && joins.every((n) => n === 2), 'every client to reconnect and resubscribe', 15_000);
      backMs = Date.now() - deployStarted;
      await waitFor(() => clients.every((_, i) => newCodeAnswers(i) >= ANSWERS_AFTER) || Date.now() > loadEnd, `${ANSWERS_AFTER} answers from the new code per client`, LOAD_MS);
    } finally {
      stop = true;
      clearTimeout(bound);
    }
    // Every call settles: the loops end only when their last call did (each call is bounded by callTimeoutMs).
    await Promise.all(loops);

    // Each client saw its socket drop, reconnected, and was told the gateway had forgotten it.
    for (let i = 0; i < CLIENTS; i++) {
      expect(states[i]).toContain('reconnecting');
      expect(clients[i]!.state).toBe('connected');
      expect(connects[i]).toEqual([{ subscriptionRequired: true, firstConnection: true }, { subscriptionRequired: true, firstConnection: false }]);
      expect(newCodeAnswers(i)).toBeGreaterThanOrEqual(ANSWERS_AFTER);
    }

    // Every rejection is the one the client cannot avoid: a call in flight when the gateway died.
    const failed = outcomes.filter((o): o is Outcome & { ok: false } => !o.ok);
    for (const f of failed) {
      expect(f.name, f.message).toBe('OutcomeUnknownError');
      expect(f.madeAfterDeploy).toBe(false);
    }
    // At most the call each lane had on the wire when the runtime died: the new gateway has no memory of the old one
    // (subscriptionRequired), so the client cannot know whether it ran and says so; it does not resend it. A lane whose
    // answer arrived between counting and the kill made its next call during the outage: queued, sent to the new code, answered.
    expect(inFlightAtDeploy).toBe(CLIENTS * IN_FLIGHT);
    const failedLanes = failed.map((f) => `${f.client}/${f.lane}`);
    expect(new Set(failedLanes).size).toBe(failedLanes.length);
    for (const lane of failedLanes) expect(loopIds).toContain(lane);
    expect(failedLanes.length).toBeGreaterThanOrEqual(loopIds.length / 2); // most were on the wire: the kill is immediate
    // Calls made once the new runtime was up — most while their client was still reconnecting, so queued — ran once, on the new code.
    for (const o of outcomes) if (o.madeAfterDeploy) expect(o).toMatchObject({ ok: true, version: 'v2', runs: 1 });

    // None ran twice: the ledgers' SQLite, which outlived the old runtime, has each key at most once.
    const runs: Record<string, number> = {};
    for (let l = 0; l < LEDGERS; l++) Object.assign(runs, await hostFetch('LEDGER', `ledger-${l}`, '/'));
    expect(Object.entries(runs).filter(([, n]) => n !== 1)).toEqual([]);
    for (const o of outcomes) if (o.ok) expect([o.runs, runs[o.key]]).toEqual([1, 1]);
    const unknownThatRan = failed.filter((f) => runs[f.key] === 1).length;

    // Subscriptions are back: a publish after the deploy reaches every client.
    const summary = await clients[0]!.node<Topic>('TOPIC', 'room').broadcast(TOPIC, 'after the deploy', { timeoutMs: 10_000 });
    expect(summary).toMatchObject({ total: CLIENTS, delivered: CLIENTS, failed: [], timedOut: [], dropped: [] });
    for (let i = 0; i < CLIENTS; i++) expect(heard[i]).toEqual(['after the deploy']);

    console.info(`[deploy] ${outcomes.length} calls, ${inFlightAtDeploy} in flight at the deploy, runtime down ${downMs} ms, all reconnected and resubscribed ${backMs} ms after the kill, `
      + `${failed.length} OutcomeUnknownError (${unknownThatRan} of them had run), ${outcomes.filter((o) => o.madeAfterDeploy).length} made once the new runtime was up`);
  }, 60_000);
});

/**
 * A client that dropped just before the deploy: its gateway was in its grace
 * period, with its epoch and answers in storage (grace-memory.ts). The grace
 * alarm and that memory outlive the runtime, so the new gateway takes over
 * the old one's memory as an eviction would.
 */
describe('a deploy during a client\'s grace period', () => {
  const GRACE = { GRACE_MS: '15000' };

  async function droppedClient(sub: string): Promise<{ client: MeshClient; network: ReturnType<typeof createNetwork>; connects: boolean[] }> {
    const network = createNetwork();
    const connects: boolean[] = [];
    const client = await newClient(sub, { WebSocket: network.WebSocket, onConnected: (info) => connects.push(info.subscriptionRequired) });
    await client.connect();
    return { client, network, connects };
  }

  it('a call answered while the client was away gets its real answer after the deploy', async () => {
    await deploy('v1', GRACE);
    const { client, network, connects } = await droppedClient('graceful');
    const key = 'answered-in-grace';
    const call = client.node<Ledger>('LEDGER', 'ledger-grace').record(key, 300);
    await waitFor(async () => (await hostFetch('LEDGER', 'ledger-grace', '/'))[key] === 1, 'the call to run');
    network.offline = true;
    network.drop();
    // The answer came back with no socket to take it: the gateway keeps it in storage for the resend.
    await waitFor(async () => (await hostFetch('GATEWAY', client.instanceName!, '/__grace')).records >= 1, 'the answer in grace memory');

    await redeploy('v2', GRACE);
    network.offline = false;
    expect(await call).toEqual({ version: 'v1', runs: 1 });
    expect(connects).toEqual([true, false]); // remembered: no resubscribe needed
    expect(await client.node<Ledger>('LEDGER', 'ledger-grace').version()).toBe('v2');
    expect((await hostFetch('LEDGER', 'ledger-grace', '/'))[key]).toBe(1);
    expect(await hostFetch('GATEWAY', client.instanceName!, '/__grace')).toEqual({ alarm: null, records: null });
  }, 30_000);

  /** The gateway died mid-call: the memory it restores lists the call as running, so its resend is not run again. */
  it('a call still running in the node when the deploy hits fails with OutcomeUnknownError and does not run again', async () => {
    await deploy('v1', GRACE);
    const { client, network, connects } = await droppedClient('caught');
    const key = 'running-at-deploy';
    const call = client.node<Ledger>('LEDGER', 'ledger-grace').record(key, 20_000).then((value) => ({ value }), (error: Error) => ({ error }));
    await waitFor(async () => (await hostFetch('LEDGER', 'ledger-grace', '/'))[key] === 1, 'the call to run');
    network.offline = true;
    network.drop();
    await waitFor(async () => (await hostFetch('GATEWAY', client.instanceName!, '/__grace')).records !== null, 'the grace memory to be saved');

    await redeploy('v2', GRACE);
    network.offline = false;
    const outcome = await call;
    expect(connects).toEqual([true, false]);
    expect((await hostFetch('LEDGER', 'ledger-grace', '/'))[key]).toBe(1);
    expect(outcome).toMatchObject({ error: { name: 'OutcomeUnknownError' } });
  }, 30_000);
});
