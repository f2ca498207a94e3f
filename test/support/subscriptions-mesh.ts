/** The subscriptions fixture on real workerd, and real MeshClients connected to it. */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, expect } from 'vitest';
import WebSocket from 'ws';
import { MeshClient, type MeshClientOptions } from '../../src/client/index.js';
import type { SocketClass } from '../../src/client/socket.js';
import { reusedStubs } from './stubs.js';
import type { PresenceSnapshot, Recovery } from '../../src/protocol/topics.js';
import type { Subscribed } from '../../src/client/topics.js';
// @ts-expect-error plain ESM helper shared with scripts
import { startWorkerd } from '../../scripts/workerd.mjs';

const SECRET = 'subscriptions-test-secret-long-enough-for-hs256';

export type Outcome = { instanceName: string; status: string; value?: unknown; errorName?: string; limit?: string; code?: string };
export type Summary = {
  topic: string; method: string; total: number; delivered: number; sent: number; queued: number;
  dropped: string[]; timedOut: string[]; failed: string[]; outcomes: Outcome[];
};
type FanOutOptions = { timeoutMs?: number; concurrency?: number; except?: string[] };
export type RelayJobSeen = { name: string; targets: number; boot: string };
export type Topic = {
  join(topic: string): string;
  leave(topic: string): string;
  add(topic: string, name: string): boolean;
  remove(topic: string, name: string): boolean;
  list(topic: string): string[];
  topicsOf(name: string): string[];
  boot(): string;
  restart(): void;
  broadcast(topic: string, payload: unknown, options?: FanOutOptions): Summary;
  announce(topic: string, payload: unknown, options?: FanOutOptions): Summary;
  countEncodes(topic: string): { fanOut: number; notify: number; delivered: number; sent: number };
  dropWithOldMark(topic: string, name: string): { droppedRows: number; stillListed: boolean };
  upgradeOldTable(): { columns: string[]; subOfRow: string; cappedAt: number };
  joinFrom(set: 'kept' | 'brief', topic: string, since?: unknown): Recovery;
  publish(set: 'kept' | 'brief', topic: string, data: unknown): Summary & { offset: number; epoch: string };
  appendSilently(set: 'kept' | 'brief', topic: string, data: unknown): number;
  enter(topic: string, since: unknown, meta: unknown): Subscribed;
  presenceUpdate(topic: string, meta: unknown): void;
  presenceLeave(topic: string): boolean;
  presenceSnapshot(topic: string): PresenceSnapshot & { version: number };
  presenceRows(): { members: number; versions: number };
  historyTopicRows(set: 'kept' | 'brief'): number;
  clearHistory(set: 'kept' | 'brief', topic: string): void;
  cursorJoin(topic: string, meta: unknown): PresenceSnapshot & { version: number };
  cursorSnapshot(topic: string): PresenceSnapshot & { version: number };
  joinRelayed(topic: string): string;
  addRelayed(topic: string, name: string): boolean;
  listRelayed(topic: string): string[];
  broadcastRelayed(topic: string, payload: unknown, options?: FanOutOptions): Summary;
  announceRelayed(topic: string, payload: unknown, options?: FanOutOptions): Summary;
  takeRelayJobs(): RelayJobSeen[];
  tryMissingRelayBinding(): string;
};
export type KvTopic = { tryCreate(): string };

export type GatewayMemory = { waiting: number; notifications: number; open: number; alarm: number | null; graceEndedAt: number | null };

export interface SubscriptionsMesh {
  readonly url: URL;
  /** A connected client; `handlers` serve the topic's fan-out calls. Disconnected after the suite. */
  client(sub: string, handlers?: object, extra?: Partial<MeshClientOptions>): Promise<MeshClient>;
  /** A Durable Object namespace of the fixture, seen from the host. */
  namespace(binding: string): Promise<DurableObjectNamespace>;
  /** The in-memory map sizes of one client's gateway (tests only). */
  gatewayMemory(instanceName: string): Promise<GatewayMemory>;
}

/** Starts the fixture before the suite's tests and ends it, with every client, after them. */
export function useSubscriptionsMesh(bindings: Record<string, string> = {}): SubscriptionsMesh {
  let server: { url: URL; mf: { getDurableObjectNamespace(name: string): Promise<DurableObjectNamespace> }; dispose(): Promise<void> };
  const clients: MeshClient[] = [];
  const stubOf = reusedStubs((binding) => server.mf.getDurableObjectNamespace(binding));
  beforeAll(async () => {
    server = await startWorkerd({
      entry: new URL('../fixtures/subscriptions-worker.ts', import.meta.url).pathname,
      durableObjects: {
        GATEWAY: 'SubsGateway',
        TOPIC: { className: 'TopicDO', useSQLite: true },
        KV_TOPIC: 'KvTopicDO',
        FANOUT_RELAY: 'CountingRelay',
        IDENTITY_LIMITER: { className: 'IdentityLimiter', useSQLite: true },
      },
      bindings: { JWT_SECRET: SECRET, ...bindings },
    });
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await server?.dispose();
  });
  const token = (sub: string): Promise<string> =>
    new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
  return {
    get url() {
      return server.url;
    },
    async client(sub, handlers = {}, extra = {}) {
      const c = new MeshClient({
        url: server.url.origin,
        accessToken: await token(sub),
        WebSocket: WebSocket as unknown as SocketClass,
        reconnectMinDelayMs: 50,
        reconnectMaxDelayMs: 200,
        handlers,
        ...extra,
      });
      clients.push(c);
      await c.connect();
      expect(c.state).toBe('connected');
      return c;
    },
    namespace(binding) {
      return server.mf.getDurableObjectNamespace(binding);
    },
    async gatewayMemory(instanceName) {
      const res = await (await stubOf('GATEWAY', instanceName)).fetch('http://gateway/__memory');
      return (await res.json()) as GatewayMemory;
    },
  };
}
