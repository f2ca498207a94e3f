/** Starts the test mesh on real workerd (through meshgate/testing) and gives tests tokens and raw sockets. */
import WebSocket from 'ws';
import { afterAll, beforeAll } from 'vitest';
import { startTestMesh as startMesh, TEST_SECRET, type TestMesh as Mesh } from '../../src/testing/index.js';
import { DEFAULTS } from '../../src/protocol/limits.js';
import { reusedStubs } from './stubs.js';

export const SECRET = TEST_SECRET;

export interface TestMesh {
  url: URL;
  wsUrl(instance: string, binding?: string): string;
  token(sub: string, extra?: Record<string, unknown>, expiresInSeconds?: number): Promise<string>;
  /** The fixture gateway's own view (test/fixtures/worker.ts `__state`): socket counts, alarm, closes handled, memory. */
  state(instance: string): Promise<{ sockets: number; open: number; alarm: number | null }>;
  /** The identities the IdentityLimiter of `sub` counts live, sorted. */
  liveIdentities(sub: string): Promise<string[]>;
  /** The Miniflare instance (tests that look at Durable Objects from the host). */
  mf: import('miniflare').Miniflare;
  /** The meshgate/testing mesh underneath: MeshClients over a controlled network, gateway controls. */
  testing: Mesh;
  dispose(): Promise<void>;
}

/**
 * `env`: extra string bindings for the fixture (e.g. MAX_FRAME_BYTES, MAX_IN_FLIGHT, JWT_ISSUER; see test/fixtures/worker.ts).
 * `identityLimiter: false` leaves the IdentityLimiter unbound, as in a deployment made before it existed.
 */
export async function startTestMesh(options: {
  graceMs?: number; clientTimeoutMs?: number; env?: Record<string, string>; identityLimiter?: boolean;
  /** another fixture entry that re-exports test/fixtures/worker.ts, and the classes it adds or replaces */
  entry?: URL; durableObjects?: Record<string, string | { className: string; useSQLite?: boolean }>;
  /** Worker entrypoints of that fixture, by binding */
  services?: Record<string, string>;
  /** More Miniflare options (e.g. `inspectorPort: 0` for tests that read the isolate's heap) */
  miniflare?: Parameters<typeof startMesh>[0]['miniflare'];
} = {}): Promise<TestMesh> {
  const mesh = await startMesh({
    worker: options.entry ?? new URL('../fixtures/worker.ts', import.meta.url),
    durableObjects: {
      GATEWAY: 'TestGateway', COUNTER: 'CounterDO', COUNTER_SQL: { className: 'SqlCounterDO', useSQLite: true }, COUNTER_BURSTS: 'BurstCounterDO', PLAIN: 'PlainDO',
      ...(options.identityLimiter === false ? {} : { IDENTITY_LIMITER: { className: 'TestIdentityLimiter', useSQLite: true } }),
      ...options.durableObjects,
    },
    services: { ECHO_WORKER: 'EchoWorker', LEGACY_WORKER: 'LegacyBatchWorker', ...options.services },
    // The suites were written against the library's default grace period; those that want a short one say so.
    gracePeriodMs: options.graceMs ?? DEFAULTS.gracePeriodMs,
    ...(options.clientTimeoutMs === undefined ? {} : { clientResponseTimeoutMs: options.clientTimeoutMs }),
    ...(options.miniflare ? { miniflare: options.miniflare } : {}),
    bindings: {
      // Suites reuse a few subs across many tab ids and keep them open; identity-cap.test.ts sets its own cap.
      MAX_IDENTITIES_PER_SUB: '10000',
      ...(options.graceMs === undefined ? {} : { GRACE_MS: String(options.graceMs) }),
      ...(options.clientTimeoutMs === undefined ? {} : { CLIENT_TIMEOUT_MS: String(options.clientTimeoutMs) }),
      ...options.env,
    },
  });
  const { mf } = mesh;
  const reused = reusedStubs((binding) => mf.getDurableObjectNamespace(binding) as unknown as Promise<DurableObjectNamespace>);
  const stubOf = (binding: string, name: string) => throughProxy(() => reused(binding, name));
  return {
    url: mesh.url,
    wsUrl: (instance, binding) => mesh.wsUrl(instance, binding),
    token: (sub, extra = {}, expiresInSeconds = 3600) => mesh.token(sub, { claims: extra, expiresInSeconds }),
    async state(instance) {
      // Reach the gateway DO directly (tests only): Miniflare exposes namespaces to the host.
      const res = await (await stubOf('GATEWAY', instance)).fetch('http://gateway/__state');
      return (await res.json()) as { sockets: number; open: number; alarm: number | null };
    },
    mf,
    async liveIdentities(sub) {
      const res = await (await stubOf('IDENTITY_LIMITER', sub)).fetch('http://limiter/__live');
      return (await res.json()) as string[];
    },
    testing: mesh,
    dispose: () => mesh.dispose(),
  };
}

/** A mesh for one test (e.g. with its own env): started, handed to `use`, ended however `use` ends. */
export async function withTestMesh<T>(options: Parameters<typeof startTestMesh>[0], use: (mesh: TestMesh) => Promise<T>): Promise<T> {
  const mesh = await startTestMesh(options);
  try {
    return await use(mesh);
  } finally {
    await mesh.dispose();
  }
}

/**
 * One mesh for the enclosing suite: started before its tests, ended after
 * them together with every socket a test put in `sockets`.
 */
export function useTestMesh(options?: Parameters<typeof startTestMesh>[0]): { readonly mesh: TestMesh; readonly sockets: RawSocket[] } {
  const suite = { mesh: undefined as unknown as TestMesh, sockets: [] as RawSocket[] };
  beforeAll(async () => {
    suite.mesh = await startTestMesh(options);
  });
  afterAll(async () => {
    for (const socket of suite.sockets) socket.ws.terminate();
    await suite.mesh?.dispose();
  });
  return suite;
}

/**
 * Runs a call through Miniflare's host proxy, tried up to 3 times when the
 * proxy's synchronous channel asserts (it read a reply meant for an earlier
 * request, seen once on a loaded CI machine); any other error passes through.
 */
async function throughProxy<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      if (attempt >= 3 || (error as Error)?.name !== 'AssertionError' || !String((error as Error).stack).includes('miniflare')) throw error;
    }
  }
}

/** A raw protocol-level socket, for tests that must see exact frames and close codes. `frames` holds a batch's frames one by one. */
export class RawSocket {
  readonly ws: WebSocket;
  readonly frames: Array<Record<string, unknown>> = [];
  readonly raw: string[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: Array<{ test: (f: Record<string, unknown>) => boolean; resolve: (f: Record<string, unknown>) => void }> = [];

  constructor(url: string, token?: string, protocols?: string[], headers?: Record<string, string>) {
    this.ws = new WebSocket(url, protocols ?? (token ? ['meshgate', `meshgate.token.${token}`] : ['meshgate']), headers ? { headers } : {});
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString();
      this.raw.push(text);
      let value: Record<string, unknown> | Array<Record<string, unknown>>;
      try {
        value = JSON.parse(text);
      } catch {
        value = { type: '__text', text };
      }
      // a batch from the gateway is its frames, one after another (`raw` keeps the messages)
      for (const frame of Array.isArray(value) ? value : [value]) {
        this.frames.push(frame);
        this.#waiters = this.#waiters.filter((w) => (w.test(frame) ? (w.resolve(frame), false) : true));
      }
    });
  }

  /** Resolves with the first frame (already seen or future) that passes `test`. */
  next(test: (frame: Record<string, unknown>) => boolean, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const seen = this.frames.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs} ms; saw ${JSON.stringify(this.frames).slice(0, 500)}`)), timeoutMs);
      this.#waiters.push({ test, resolve: (f) => (clearTimeout(timer), resolve(f)) });
    });
  }

  ofType(type: string, timeoutMs?: number) {
    return this.next((f) => f.type === type, timeoutMs);
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Sends frames in one TCP write, so the gateway reads them as one burst. */
  sendTogether(frames: unknown[]): void {
    const socket = (this.ws as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
    socket.cork();
    for (const frame of frames) this.send(frame);
    socket.uncork();
  }

  close(code?: number): void {
    this.ws.close(code);
  }
}

// ── helpers for raw-protocol tests ────────────────────────────────────────────

interface WsInternals {
  _closeFrameReceived: boolean;
  _closeCode: number;
  _closeMessage: Buffer;
  _receiver: { once(event: 'conclude', listener: (code: number, reason: Buffer) => void): void } | null;
}

/**
 * Resolves with the code and reason of the server's close frame as soon as it
 * arrives. `RawSocket.closed` waits for ws's `close` event, which waits for the
 * TCP connection to end — and workerd can hold that open 10–30 s after closing
 * a hibernatable socket from another request.
 */
export async function closeFrame(sock: RawSocket, timeoutMs = 5000): Promise<{ code: number; reason: string }> {
  await sock.opened.catch(() => undefined);
  const ws = sock.ws as unknown as WsInternals;
  if (ws._closeFrameReceived) return { code: ws._closeCode, reason: ws._closeMessage.toString() };
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no close frame within ${timeoutMs} ms`)), timeoutMs);
    const done = (code: number, reason: string) => {
      clearTimeout(timer);
      resolve({ code, reason });
    };
    ws._receiver?.once('conclude', (code, reason) => done(code, reason.toString()));
    void sock.closed.then(({ code, reason }) => done(code, reason));
  });
}

export { waitFor } from '../../src/testing/index.js';

// (ES imports are hoisted; this one stays down here with the helpers that use it.)
import { decodeValue, encodeValue } from '../../src/protocol/codec.js';

let callSeq = 0;

/** A `call` frame (extra fields are merged into it as is). */
export function callFrame(id: string, to: { binding: string; instance?: string }, method: string, args: unknown[] = [], extra: Record<string, unknown> = {}) {
  return { type: 'call', id, to, method, args: encodeValue(args), ...extra };
}

/** Sends a `call` frame and returns its id. */
export function sendCall(sock: RawSocket, to: { binding: string; instance?: string }, method: string, args: unknown[] = [], extra: Record<string, unknown> = {}): string {
  const id = `call-${++callSeq}`;
  sock.send(callFrame(id, to, method, args, extra));
  return id;
}

/** The decoded result of the call `id` (its decoded error, if it failed). */
export async function resultOf(sock: RawSocket, id: string, timeoutMs = 5000): Promise<any> {
  const { ok, value, error } = await callResponse(sock, id, timeoutMs);
  return ok ? value : error;
}

/** Waits for the `call_response` to `id` and decodes it. */
export async function callResponse(sock: RawSocket, id: string, timeoutMs = 5000): Promise<{ ok: boolean; value: any; error: any }> {
  const frame = await sock.next((f) => f.type === 'call_response' && f.id === id, timeoutMs);
  return frame.ok === true
    ? { ok: true, value: decodeValue(frame.result as string), error: undefined }
    : { ok: false, value: undefined, error: decodeValue(frame.error as string) };
}

/** A call over a raw socket: sends it and waits for its decoded answer. */
export function callOver(sock: RawSocket, to: { binding: string; instance?: string }, method: string, args: unknown[] = [], extra: Record<string, unknown> = {}) {
  return callResponse(sock, sendCall(sock, to, method, args, extra));
}
