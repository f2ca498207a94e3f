/**
 * The bench's mesh: bench/worker.ts on embedded workerd, with meshgate clients
 * and raw sockets that are tracked so disposing the mesh leaves none behind.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { AgentClient } from 'agents/client';
import { startWorkerd } from '../scripts/workerd.mjs';
import { RawWs, SECRET, token, within, workerdPids } from './lib.mjs';

/** ~100-byte messages: a call frame of ~130 bytes, its answer ~90; the raw echo's message the same size. */
export const PAYLOAD = 'x'.repeat(40);
export const RAW_MESSAGE = 'x'.repeat(100);

/**
 * Sockets whose negotiated extensions did not match what their client was set up with: every scenario
 * fails if this is not empty (bench/run.mjs), so no figure compares a compressed client with a plain one.
 */
export const deflateMismatches = [];

/** Records `socket` (a `ws` WebSocket, once open) in deflateMismatches unless permessage-deflate is negotiated exactly when `deflate`. */
export function checkNegotiated(socket, deflate, what) {
  const negotiated = /permessage-deflate/.test(socket.extensions ?? '');
  if (negotiated !== deflate) deflateMismatches.push(`${what}: permessage-deflate ${negotiated ? 'negotiated' : 'not negotiated'} (extensions ${JSON.stringify(socket.extensions)}), expected ${deflate ? 'on' : 'off'}`);
}

/** `ws` classes for MeshClient and AgentClient, with or without permessage-deflate offered; each checks what was negotiated. */
const socketClass = (deflate) => class extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { perMessageDeflate: deflate });
    this.once('open', () => checkNegotiated(this, deflate, String(url).replace(/\?.*$/, '')));
  }
};
export const PlainSocket = socketClass(false);
export const DeflateSocket = socketClass(true);

const NODES = {
  GATEWAY: 'BenchGateway', BENCH: 'BenchDO', BENCH_BURSTS: 'BenchBurstDO', TOPIC: { className: 'TopicDO', useSQLite: true }, RAW: 'RawEchoDO', HOP: 'RawHopDO', HOP_TARGET: 'RawHopTargetDO', HOP_NODE: 'RawHopNodeDO', HOP_SESSION: 'RawHopSessionDO',
  FANOUT_RELAY: 'BenchRelay', STANDIN: 'StandInGateway',
  // the peers (bench/peers.ts): their routers find the binding by the class's kebab-case name
  PeerAgent: { className: 'PeerAgent', useSQLite: true }, PeerParty: 'PeerParty',
};
const IDENTITY_LIMITER = { IDENTITY_LIMITER: { className: 'IdentityLimiter', useSQLite: true } };

/**
 * The second workerd (bench/remote-worker.ts): its RemoteStandIns entrypoint served on a direct socket
 * for JS RPC, and its driver reaching this mesh's BenchDO and RawHopTargetDO through a dev registry
 * shared by both processes (`registry`, a folder).
 */
async function startRemote(script, registry) {
  const before = new Set(workerdPids());
  const { url, mf, dispose } = await startWorkerd({
    name: 'remote',
    script,
    durableObjects: {
      STANDIN: 'StandInGateway', FANOUT_RELAY: 'BenchRelay', HOT_DRIVER: 'HotDriverDO',
      BENCH: { className: 'BenchDO', scriptName: 'main' }, HOP_TARGET: { className: 'RawHopTargetDO', scriptName: 'main' },
    },
    miniflare: { unsafeDirectSockets: [{ entrypoint: 'RemoteStandIns', host: '127.0.0.1', port: 0 }], unsafeDevRegistryPath: registry },
  });
  const pid = workerdPids().find((p) => !before.has(p));
  const address = (await mf.unsafeGetDirectURL('remote', 'RemoteStandIns')).host;
  return { base: url.origin, address, pid, dispose };
}

/** Waits (bounded) until the second workerd's registry has found this one: one bare call from its driver answers. */
async function reachable(remote) {
  const until = Date.now() + 15_000;
  let last = '';
  while (Date.now() < until) {
    const response = await fetch(`${remote.base}/hot/bare/1/1`);
    last = await response.text();
    if (last === '1') return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the second workerd never reached this one through the dev registry: ${last.slice(0, 200)}`);
}

/**
 * Starts a workerd of its own (so memory figures do not share an allocator).
 * `identityLimiter: false` leaves the per-sub cap out, for scenarios that open many identities of one sub.
 * `remoteScript` (bench/remote-worker.ts bundled): its stand-ins and relays run in a second workerd, bound as REMOTE.
 */
export async function startMesh({ script, MeshClient, identityLimiter = true, miniflare = {}, remoteScript }) {
  const registry = remoteScript ? await mkdtemp(join(tmpdir(), 'meshgate-bench-registry-')) : undefined;
  const remote = remoteScript ? await startRemote(remoteScript, registry) : undefined;
  const before = new Set(workerdPids());
  const started = await startWorkerd({
    script,
    durableObjects: { ...NODES, ...(identityLimiter ? IDENTITY_LIMITER : {}) },
    services: { BENCH_WORKER: 'BenchWorker' },
    external: remote ? { REMOTE: remote.address } : {},
    bindings: { JWT_SECRET: SECRET },
    miniflare: registry ? { ...miniflare, unsafeDevRegistryPath: registry } : miniflare,
  }).catch(async (error) => {
    await remote?.dispose();
    throw error;
  });
  const { url, mf } = started;
  const dispose = async () => {
    await started.dispose();
    await remote?.dispose();
    if (registry) await rm(registry, { recursive: true, force: true });
  };
  if (remote) await reachable(remote).catch(async (error) => {
    await dispose();
    throw error;
  });
  const pid = workerdPids().find((p) => !before.has(p));
  const base = `ws://${url.host}`;
  const clients = new Set();
  const sockets = new Set();
  const agents = new Set();

  /** A connected MeshClient for `sub`; throws unless it is connected within 10 s. */
  async function connect(sub, options = {}) {
    const c = new MeshClient({
      url: base, accessToken: await token(sub), WebSocket: PlainSocket, reconnectMinDelayMs: 50, reconnectMaxDelayMs: 500, callTimeoutMs: 60_000, ...options,
    });
    clients.add(c);
    await within(c.connect(), 10_000, `connect ${sub}`);
    if (c.state !== 'connected') throw new Error(`client ${sub} is ${c.state} after connect`);
    return c;
  }

  function disconnect(c) {
    c.disconnect();
    clients.delete(c);
  }

  /** An open socket to the raw echo DO (`kind` 'raw'), to the RPC-hop DO ('hop'), to the hop DO with meshgate's node behind it ('hopnode'), or to the hop DO calling through an RpcTarget session ('hopsession'). */
  async function rawSocket(instance, { kind = 'raw', deflate = false } = {}) {
    const raw = track(new RawWs(`${base}/${kind}/${encodeURIComponent(instance)}`, undefined, { perMessageDeflate: deflate }));
    await within(raw.opened, 10_000, `raw socket ${instance}`);
    return raw;
  }

  /** An open raw socket to the partyserver peer (bench/peers.ts), which echoes. */
  async function partySocket(instance, { deflate = false } = {}) {
    const raw = track(new RawWs(`${base}/parties/peer-party/${encodeURIComponent(instance)}`, undefined, { perMessageDeflate: deflate }));
    await within(raw.opened, 10_000, `partyserver socket ${instance}`);
    return raw;
  }

  /** A connected AgentClient (the Agents SDK's own client) to the agent peer `instance`, through `ws` as MeshClient uses it. */
  async function agentClient(instance, { deflate = false } = {}) {
    const agent = new AgentClient({
      agent: 'peer-agent', name: instance, host: new URL(base).host, protocol: 'ws', WebSocket: deflate ? DeflateSocket : PlainSocket,
    });
    agents.add(agent);
    await within(new Promise((resolve, reject) => {
      agent.addEventListener('open', resolve, { once: true });
      agent.addEventListener('error', () => reject(new Error(`AgentClient ${instance} failed to connect`)), { once: true });
    }), 10_000, `agent ${instance}`);
    return agent;
  }

  /** A raw socket straight to a gateway, speaking the wire protocol by hand; not awaited open. */
  function gatewaySocket(instance, protocols) {
    return track(new RawWs(`${base}/gateway/GATEWAY/${encodeURIComponent(instance)}`, protocols, { perMessageDeflate: false }));
  }

  /** A raw socket to `sub`'s gateway, open and past its connection_status, for frames written by hand. */
  async function handGateway(sub, { deflate = false } = {}) {
    const raw = track(new RawWs(`${base}/gateway/GATEWAY/${encodeURIComponent(`${sub}.hand`)}`, ['meshgate', `meshgate.token.${await token(sub)}`], { perMessageDeflate: deflate }));
    const status = new Promise((resolve) => (raw.waiter = resolve));
    await within(raw.opened, 10_000, `gateway socket ${sub}`);
    const first = JSON.parse(await within(status, 10_000, `connection_status for ${sub}`));
    if (first.type !== 'connection_status') throw new Error(`gateway socket ${sub}: first frame ${first.type}`);
    return raw;
  }

  function track(raw) {
    sockets.add(raw);
    const terminate = raw.terminate.bind(raw);
    raw.terminate = () => {
      sockets.delete(raw);
      terminate();
    };
    return raw;
  }

  return {
    base, pid, remote, mf, connect, disconnect, rawSocket, partySocket, agentClient, gatewaySocket, handGateway,
    closeAgent(agent) {
      agent.close();
      agents.delete(agent);
    },
    /** The Durable Object id of `name` in `binding`, as workerd names it. */
    idOf: async (binding, name) => (await mf.getDurableObjectNamespace(binding)).idFromName(name).toString(),
    async dispose() {
      for (const c of clients) c.disconnect();
      for (const s of sockets) s.terminate();
      for (const a of agents) a.close();
      clients.clear();
      agents.clear();
      await dispose();
    },
  };
}
