/**
 * Chaos: 20 clients each make 250 calls into the mesh — 200 plain calls and 50
 * that make a DO call another client back — while a bounded loop drops random
 * sockets every 50–500 ms for 20 s. Every call must settle, none may run twice,
 * and every rejection must have a typed reason.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { MeshClient } from '../src/client/index.js';
import { startTestMesh, type TestMesh } from './support/mesh.js';
import { createNetwork, waitFor, type Network } from './support/network.js';

type Counter = {
  slowCount(key: string, ms: number): number;
  runReport(): { keys: number; duplicates: string[] };
  callClient(instance: string, method: string, args: unknown[], options?: { ownChain?: boolean }): { ok: boolean; value?: unknown; error?: Error };
};

const CLIENTS = 20;
const PLAIN_CALLS = 200;
const CALLBACKS = 50;
const CHAOS_MS = 20_000;
const NODES = 5;

let mesh: TestMesh;
const clients: MeshClient[] = [];
beforeAll(async () => {
  mesh = await startTestMesh();
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await mesh?.dispose();
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(list: T[]): T => list[Math.floor(Math.random() * list.length)]!;

it('every call settles, none runs twice, every rejection is typed', async () => {
  const networks: Network[] = [];
  const handled = new Map<string, number>(); // callback key → times a client handler ran
  for (let i = 0; i < CLIENTS; i++) {
    const network = createNetwork();
    networks.push(network);
    clients.push(new MeshClient({
      url: mesh.url.origin,
      accessToken: await mesh.token(`chaos${i}`),
      WebSocket: network.WebSocket,
      reconnectMinDelayMs: 20,
      reconnectMaxDelayMs: 200,
      callTimeoutMs: 15_000,
      handlers: { note: (key: string) => (handled.set(key, (handled.get(key) ?? 0) + 1), key) },
    }));
  }
  await waitFor(() => clients.every((c) => c.state === 'connected'), 'all clients to connect', 10_000);
  const instances = clients.map((c) => c.instanceName!);

  // The chaos loop: bounded in time, stops by itself.
  let drops = 0;
  const chaosEnd = Date.now() + CHAOS_MS;
  const chaos = (async () => {
    while (Date.now() < chaosEnd) {
      await pause(50 + Math.random() * 450);
      pick(networks).drop();
      drops++;
    }
  })();

  const outcomes: Array<Promise<{ kind: 'plain' | 'callback'; ok: boolean; name?: string; settled: true }>> = [];
  const perClient = async (client: MeshClient, i: number) => {
    const total = PLAIN_CALLS + CALLBACKS;
    for (let j = 0; j < total; j++) {
      const node = client.node<Counter>('COUNTER', `chaos-${j % NODES}`);
      if (j % 5 === 4) {
        const key = `cb-${i}-${j}`;
        outcomes.push(node.callClient(pick(instances), 'note', [key], { ownChain: true }).then(
          (r) => ({ kind: 'callback' as const, ok: r.ok && r.value === key, ...(r.ok ? {} : { name: r.error?.name ?? 'untyped' }), settled: true as const }),
          (e: Error) => ({ kind: 'callback' as const, ok: false, name: `outer:${e?.name ?? 'untyped'}`, settled: true as const }),
        ));
      } else {
        outcomes.push(node.slowCount(`p-${i}-${j}`, Math.floor(Math.random() * 20)).then(
          (runs) => ({ kind: 'plain' as const, ok: runs === 1, settled: true as const }),
          (e: Error) => ({ kind: 'plain' as const, ok: false, name: e?.name ?? 'untyped', settled: true as const }),
        ));
      }
      await pause(Math.random() * 130); // spread the calls over the chaos window
    }
  };
  await Promise.all(clients.map(perClient));
  await chaos;

  // Every call settles: bounded by the call deadline (15 s) plus margin.
  const hangMarker = Symbol('hang');
  const settled = await Promise.race([Promise.all(outcomes), pause(30_000).then(() => hangMarker)]);
  expect(settled).not.toBe(hangMarker);
  const results = settled as Awaited<(typeof outcomes)[number]>[];

  const plain = results.filter((r) => r.kind === 'plain');
  const callbacks = results.filter((r) => r.kind === 'callback');
  const rejections = new Map<string, number>();
  for (const r of results) if (!r.ok) rejections.set(r.name ?? 'wrong-value', (rejections.get(r.name ?? 'wrong-value') ?? 0) + 1);

  let duplicates: string[] = [];
  let keys = 0;
  // Read the run reports once the network is calm.
  const reader = clients[0]!;
  await waitFor(() => reader.state === 'connected', 'the reader to be connected', 5000);
  for (let n = 0; n < NODES; n++) {
    const report = await reader.node<Counter>('COUNTER', `chaos-${n}`).runReport();
    duplicates = duplicates.concat(report.duplicates);
    keys += report.keys;
  }
  const handledTwice = [...handled].filter(([, n]) => n > 1).map(([k]) => k);

  console.log(`chaos: ${results.length} calls settled of ${CLIENTS * (PLAIN_CALLS + CALLBACKS)} (${plain.length} plain, ${callbacks.length} callbacks), `
    + `${drops} socket drops, ${plain.filter((r) => r.ok).length + callbacks.filter((r) => r.ok).length} ok, `
    + `rejections ${JSON.stringify(Object.fromEntries(rejections))}, ran twice: ${duplicates.length} on nodes / ${handledTwice.length} on clients, ${keys} keys ran`);

  expect(results).toHaveLength(CLIENTS * (PLAIN_CALLS + CALLBACKS));
  expect(drops).toBeGreaterThan(CHAOS_MS / 500);
  expect(duplicates).toEqual([]);
  expect(handledTwice).toEqual([]);
  const typed = new Set(['OutcomeUnknownError', 'CallTimeoutError', 'ClientDisconnectedError', 'ClientTimeoutError']);
  for (const name of rejections.keys()) expect(typed.has(name), `rejection "${name}" is typed`).toBe(true);
}, 120_000);
