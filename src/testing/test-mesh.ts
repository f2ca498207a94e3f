/**
 * An application's Worker on real workerd (Miniflare) for its tests: a known
 * signing secret, a short grace period, tokens for any `sub`, MeshClients
 * over real sockets on 127.0.0.1, and the controls a connection test needs.
 */
import { SignJWT } from 'jose';
import type { Miniflare, MiniflareOptions } from 'miniflare';
import { fileURLToPath } from 'node:url';
import { MeshClient, type ConnectionState, type MeshClientOptions } from '../client/mesh-client.js';
import { gatewayUrl } from '../client/socket.js';
import { DEFAULT_GATEWAY_BINDING } from '../protocol/limits.js';
import { CONTROL_HEADER, CONTROL_KEY_BINDING, CONTROL_ORIGIN, type GatewaySnapshot } from './gateway-controls.js';
import { ClientNetwork } from './network.js';
import { bundleTestWorker } from './worker-bundle.js';
import { readWranglerConfig } from './wrangler-config.js';
import { waitFor } from './wait.js';

/** The HS256 secret the test mesh signs with and hands the Worker (in `secretBinding`). */
export const TEST_SECRET = 'meshgate-testing-secret-which-is-long-enough';

type DurableObjectBinding = string | { className: string; useSQLite?: boolean };

export interface TestMeshOptions {
  /** The Worker's wrangler config (main, Durable Objects, services, vars are read from it). */
  wrangler?: string | URL;
  /** Or the Worker's entry file, with its bindings below. */
  worker?: string | URL;
  /** Durable Object bindings: `{ GATEWAY: 'Gateway', ROOM: { className: 'Room', useSQLite: true } }` (added to the wrangler config's). */
  durableObjects?: Record<string, DurableObjectBinding>;
  /** Worker entrypoints of the same script bound as services: `{ SEARCH: 'SearchWorker' }`. */
  services?: Record<string, string>;
  /** Plain bindings (vars, secrets). */
  bindings?: Record<string, string>;
  /** The binding the edge reads its HS256 secret from (default JWT_SECRET); the mesh sets it to TEST_SECRET unless `bindings` sets it. */
  secretBinding?: string;
  /** Every gateway's grace period (default 1000 ms), where the gateway class left the library's default. */
  gracePeriodMs?: number;
  /** How long a call to a client waits for its answer (default: the gateway's), where the gateway class left the library's default. */
  clientResponseTimeoutMs?: number;
  /** The gateway binding clients connect through (default GATEWAY). */
  gateway?: string;
  /** Build-time constants for the bundle (esbuild's `define`, as wrangler's), added to the wrangler config's. */
  define?: Record<string, string>;
  /** More Miniflare options (persistence, logging), applied last. */
  miniflare?: Partial<MiniflareOptions>;
}

export interface TestClientOptions<Handlers extends object> extends Partial<MeshClientOptions<Handlers>> {
  /** The token's subject (default `user`). */
  sub?: string;
  /** Extra claims in every token this client gets. */
  claims?: Record<string, unknown>;
  /** Wait for the gateway's connection status before returning (default true). */
  connected?: boolean;
}

/** A client, its gateway instance name, or `{ instance, binding }`. */
export type GatewayTarget = MeshClient<object> | string | { instance: string; binding?: string };

export interface NetworkCut {
  /** Lets the client connect again (it retries by itself within reconnectMaxDelayMs). */
  restore(): void;
  /** Restores after `ms`. */
  restoreAfter(ms: number): Promise<void>;
}

interface Tracked {
  network: ClientNetwork;
  sub: string;
  instanceName: string;
  options: TestClientOptions<object>;
  stateWaiters: Set<() => void>;
}

const defaultTimeoutMs = 10_000;

/** What #control uses of a gateway's stub through Miniflare's proxy. */
type GatewayStub = { fetch(url: string, init: { headers: Record<string, string> }): Promise<{ ok: boolean; status: number; json(): Promise<unknown> }> };

export class TestMesh {
  readonly url: URL;
  readonly mf: Miniflare;
  readonly #key: string;
  readonly #gateway: string;
  /**
   * Gateway stubs by binding and instance: reaching one through Miniflare's
   * host proxy takes synchronous calls, whose channel can lose step under
   * load and then fail every later call, so polls reuse the stub (its
   * fetch is asynchronous).
   */
  readonly #stubs = new Map<string, GatewayStub>();
  readonly #clients = new Map<MeshClient<object>, Tracked>();
  #tabs = 0;

  /** Use `startTestMesh()`. */
  constructor(mf: Miniflare, url: URL, key: string, gateway: string) {
    this.mf = mf;
    this.url = url;
    this.#key = key;
    this.#gateway = gateway;
  }

  /** `ws://…/gateway/{binding}/{instance}`, for raw sockets. */
  wsUrl(instance: string, binding = this.#gateway): string {
    return gatewayUrl(this.url.origin, binding, instance);
  }

  /** A token signed with TEST_SECRET; a negative `expiresInSeconds` makes an expired one. */
  token(sub: string, options: { claims?: Record<string, unknown>; expiresInSeconds?: number } = {}): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(options.claims ?? {}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt(now)
      .setExpirationTime(now + (options.expiresInSeconds ?? 3600)).sign(new TextEncoder().encode(TEST_SECRET));
  }

  /**
   * A MeshClient for `sub` over a network the test controls, with quick
   * reconnects (10–100 ms) and tokens refreshed from TEST_SECRET. Any
   * MeshClient option can be given; `onStateChange` still gets every change.
   */
  async client<Handlers extends object = object>(options: TestClientOptions<Handlers> = {}): Promise<MeshClient<Handlers>> {
    const sub = options.sub ?? 'user';
    const instanceName = options.instanceName ?? `${sub}.test-tab-${++this.#tabs}`;
    const network = new ClientNetwork();
    const tracked: Tracked = { network, sub, instanceName, options: options as TestClientOptions<object>, stateWaiters: new Set() };
    const client = new MeshClient<Handlers>({
      url: this.url.origin, gateway: this.#gateway, browserEvents: false, reconnectMinDelayMs: 10, reconnectMaxDelayMs: 100,
      refresh: () => this.token(sub, { claims: options.claims ?? {} }),
      ...options,
      instanceName, WebSocket: network.WebSocket, autoConnect: false,
      onStateChange: (state, previous) => {
        for (const wake of [...tracked.stateWaiters]) wake();
        options.onStateChange?.(state, previous);
      },
    });
    this.#clients.set(client as MeshClient<object>, tracked);
    const connecting = client.connect();
    if (options.connected === false) connecting.catch(() => undefined); // the client keeps retrying; its state says how it goes
    else {
      await connecting;
      await this.clientState(client, 'connected');
    }
    return client;
  }

  /** Resolves once `client.state` is `state` (now or later); rejects after `timeoutMs`. */
  clientState(client: MeshClient<object>, state: ConnectionState, timeoutMs = defaultTimeoutMs): Promise<void> {
    if (client.state === state) return Promise.resolve();
    const tracked = this.#tracked(client);
    return new Promise((resolve, reject) => {
      const wake = (): void => {
        if (client.state !== state) return;
        done();
        resolve();
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`client ${tracked.instanceName} did not reach "${state}" within ${timeoutMs} ms (it is "${client.state}")`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        tracked.stateWaiters.delete(wake);
      };
      tracked.stateWaiters.add(wake);
    });
  }

  /** Ends the client's TCP connection with no close frame; it reconnects by itself, inside the grace period. */
  drop(client: MeshClient<object>): void {
    this.#tracked(client).network.drop();
  }

  /** Drops the client's connection and refuses new ones until restored: the gateway goes into its grace period. */
  cutNetwork(client: MeshClient<object>): NetworkCut {
    const { network } = this.#tracked(client);
    network.cut();
    return {
      restore: () => network.restore(),
      restoreAfter: (ms) => new Promise<void>((resolve) => setTimeout(() => (network.restore(), resolve()), ms)),
    };
  }

  /** Sockets the client has opened so far (its first connection and each reconnect). */
  socketsOpened(client: MeshClient<object>): number {
    return this.#tracked(client).network.opened;
  }

  /**
   * Connects a second client with the same identity (and the first's handlers
   * and claims): the gateway supersedes `client`, which stops in state
   * `superseded`. Returns the new client.
   */
  async supersede<Handlers extends object>(client: MeshClient<Handlers>, options: TestClientOptions<Handlers> = {}): Promise<MeshClient<Handlers>> {
    const tracked = this.#tracked(client);
    const { handlers, claims } = tracked.options as TestClientOptions<Handlers>;
    const usurper = await this.client<Handlers>({ handlers, claims, ...options, sub: tracked.sub, instanceName: tracked.instanceName });
    await this.clientState(client, 'superseded');
    return usurper;
  }

  /** The gateway closes the client's socket with 4401 (token expired), as it does when it finds the token past `exp`. */
  expireToken(target: GatewayTarget): Promise<GatewaySnapshot> {
    return this.#control(target, '/expire-token');
  }

  /** Ends a grace period now, as its alarm would: calls waiting for the client fail, its next connect must re-subscribe. */
  endGracePeriod(target: GatewayTarget): Promise<GatewaySnapshot> {
    return this.#control(target, '/end-grace-period');
  }

  /** The gateway's derived state, sockets and waiting calls. */
  gatewayState(target: GatewayTarget): Promise<GatewaySnapshot> {
    return this.#control(target, '/state');
  }

  /** Resolves with the snapshot once the gateway is in `state` (polled: the gateway has no event to await from outside). */
  waitForGatewayState(target: GatewayTarget, state: GatewaySnapshot['state'], timeoutMs = defaultTimeoutMs): Promise<GatewaySnapshot> {
    return waitFor(async () => {
      const snapshot = await this.gatewayState(target);
      return snapshot.state === state && snapshot;
    }, `gateway ${this.#address(target).instance} to be ${state}`, timeoutMs);
  }

  /** Disconnects every client, ends their sockets and stops workerd. */
  async dispose(): Promise<void> {
    for (const [client, tracked] of this.#clients) {
      client.disconnect();
      tracked.network.dispose();
    }
    this.#clients.clear();
    await this.mf.dispose();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  #tracked(client: MeshClient<object>): Tracked {
    const tracked = this.#clients.get(client);
    if (!tracked) throw new Error('meshgate/testing: this client was not made by this mesh (use mesh.client()).');
    return tracked;
  }

  #address(target: GatewayTarget): { instance: string; binding: string } {
    if (typeof target === 'string') return { instance: target, binding: this.#gateway };
    if (target instanceof MeshClient) return { instance: this.#tracked(target).instanceName, binding: this.#gateway };
    return { instance: target.instance, binding: target.binding ?? this.#gateway };
  }

  async #control(target: GatewayTarget, action: string): Promise<GatewaySnapshot> {
    const { instance, binding } = this.#address(target);
    const key = `${binding}/${instance}`;
    let stub = this.#stubs.get(key);
    if (!stub) {
      const ns = await this.mf.getDurableObjectNamespace(binding);
      stub = ns.get(ns.idFromName(instance)) as GatewayStub;
      this.#stubs.set(key, stub);
    }
    const response = await stub.fetch(`${CONTROL_ORIGIN}${action}`, { headers: { [CONTROL_HEADER]: this.#key } });
    const body = (await response.json()) as GatewaySnapshot & { error?: string };
    if (!response.ok) throw new Error(`meshgate/testing: gateway ${instance}: ${body.error ?? response.status}`);
    return body;
  }
}

/** Starts the Worker on workerd with meshgate set up for tests. Call `dispose()` when done (e.g. in afterAll). */
export async function startTestMesh(options: TestMeshOptions): Promise<TestMesh> {
  const fromWrangler = options.wrangler ? await readWranglerConfig(pathOf(options.wrangler)) : undefined;
  const entry = options.worker ? pathOf(options.worker) : fromWrangler?.main;
  if (!entry) throw new Error('meshgate/testing: give startTestMesh a `wrangler` config or a `worker` entry file.');
  const durableObjects = { ...fromWrangler?.durableObjects, ...options.durableObjects };
  const classes = Object.values(durableObjects).map((binding) => (typeof binding === 'string' ? binding : binding.className));
  const settings = { gracePeriodMs: options.gracePeriodMs ?? 1000, ...(options.clientResponseTimeoutMs === undefined ? {} : { clientResponseTimeoutMs: options.clientResponseTimeoutMs }) };
  const script = await bundleTestWorker(entry, classes, settings, { ...fromWrangler?.define, ...options.define });
  const key = crypto.randomUUID();
  const { Miniflare } = await import('miniflare');
  const services = Object.fromEntries(Object.entries(options.services ?? {}).map(([binding, entrypoint]) => [binding, { name: 'main', entrypoint }]));
  const mf = new Miniflare({
    compatibilityDate: '2026-04-20', compatibilityFlags: ['nodejs_compat'],
    ...fromWrangler?.workerOptions,
    name: 'main', modules: true, script, host: '127.0.0.1', port: 0,
    durableObjects,
    serviceBindings: { ...(fromWrangler?.workerOptions.serviceBindings as object | undefined), ...services },
    bindings: {
      ...(fromWrangler?.workerOptions.bindings as object | undefined), [options.secretBinding ?? 'JWT_SECRET']: TEST_SECRET,
      ...options.bindings, [CONTROL_KEY_BINDING]: key,
    },
    ...options.miniflare,
  } as MiniflareOptions);
  let url: URL;
  try {
    url = new URL(await mf.ready);
  } catch (error) {
    await mf.dispose().catch(() => undefined);
    throw error;
  }
  return new TestMesh(mf, url, key, options.gateway ?? DEFAULT_GATEWAY_BINDING);
}

function pathOf(file: string | URL): string {
  return file instanceof URL || file.startsWith('file:') ? fileURLToPath(file) : file;
}
