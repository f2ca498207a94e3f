/** Starts the test mesh on real workerd and gives tests tokens and raw sockets. */
import { SignJWT } from 'jose';
import WebSocket from 'ws';
// @ts-expect-error plain ESM helper shared with scripts
import { startWorkerd } from '../../scripts/workerd.mjs';

export const SECRET = 'test-secret-which-is-long-enough-for-hs256';

export interface TestMesh {
  url: URL;
  wsUrl(instance: string, binding?: string): string;
  token(sub: string, extra?: Record<string, unknown>, expiresInSeconds?: number): Promise<string>;
  state(instance: string): Promise<{ sockets: number; open: number; alarm: number | null }>;
  dispose(): Promise<void>;
}

export async function startTestMesh(options: { graceMs?: number; clientTimeoutMs?: number } = {}): Promise<TestMesh> {
  const { url, dispose, mf } = await startWorkerd({
    entry: new URL('../fixtures/worker.ts', import.meta.url).pathname,
    durableObjects: { GATEWAY: 'TestGateway', COUNTER: 'CounterDO', PLAIN: 'PlainDO' },
    services: { ECHO_WORKER: 'EchoWorker' },
    bindings: {
      JWT_SECRET: SECRET,
      ...(options.graceMs === undefined ? {} : { GRACE_MS: String(options.graceMs) }),
      ...(options.clientTimeoutMs === undefined ? {} : { CLIENT_TIMEOUT_MS: String(options.clientTimeoutMs) }),
    },
  });
  const wsBase = `ws://${url.host}`;
  return {
    url,
    wsUrl: (instance, binding = 'GATEWAY') => `${wsBase}/gateway/${binding}/${encodeURIComponent(instance)}`,
    token: (sub, extra = {}, expiresInSeconds = 3600) =>
      new SignJWT(extra).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + expiresInSeconds).sign(new TextEncoder().encode(SECRET)),
    async state(instance) {
      // Reach the gateway DO directly (tests only): Miniflare exposes namespaces to the host.
      const ns = await mf.getDurableObjectNamespace('GATEWAY');
      const stub = ns.get(ns.idFromName(instance));
      const res = await stub.fetch('http://gateway/__state');
      return (await res.json()) as { sockets: number; open: number; alarm: number | null };
    },
    dispose,
  };
}

/** A raw protocol-level socket, for tests that must see exact frames and close codes. */
export class RawSocket {
  readonly ws: WebSocket;
  readonly frames: Array<Record<string, unknown>> = [];
  readonly raw: string[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: Array<{ test: (f: Record<string, unknown>) => boolean; resolve: (f: Record<string, unknown>) => void }> = [];

  constructor(url: string, token?: string, protocols?: string[]) {
    this.ws = new WebSocket(url, protocols ?? (token ? ['meshgate', `meshgate.token.${token}`] : ['meshgate']));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
    this.closed = new Promise((resolve) => this.ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
    this.ws.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString();
      this.raw.push(text);
      let frame: Record<string, unknown>;
      try {
        frame = JSON.parse(text);
      } catch {
        frame = { type: '__text', text };
      }
      this.frames.push(frame);
      this.#waiters = this.#waiters.filter((w) => (w.test(frame) ? (w.resolve(frame), false) : true));
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

  close(code?: number): void {
    this.ws.close(code);
  }
}
