/**
 * The bench's mesh: bench/worker.ts on embedded workerd, with meshgate clients
 * and raw sockets that are tracked so disposing the mesh leaves none behind.
 */
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
  GATEWAY: 'BenchGateway', BENCH: 'BenchDO', BENCH_BURSTS: 'BenchBurstDO', TOPIC: { className: 'TopicDO', useSQLite: true }, RAW: 'RawEchoDO', HOP: 'RawHopDO', HOP_TARGET: 'RawHopTargetDO', HOT_DRIVER: 'HotDriverDO',
  FANOUT_RELAY: 'BenchRelay', STANDIN: 'StandInGateway',
  // the peers (bench/peers.ts): their routers find the binding by the class's kebab-case name
  PeerAgent: { className: 'PeerAgent', useSQLite: true }, PeerParty: 'PeerParty',
};
const IDENTITY_LIMITER = { IDENTITY_LIMITER: { className: 'IdentityLimiter', useSQLite: true } };

/**
 * Starts a workerd of its own (so memory figures do not share an allocator).
 * `identityLimiter: false` leaves the per-sub cap out, for scenarios that open many identities of one sub.
 */
export async function startMesh({ script, MeshClient, identityLimiter = true, miniflare = {} }) {
  const before = new Set(workerdPids());
  const { url, mf, dispose } = await startWorkerd({
    script,
    durableObjects: { ...NODES, ...(identityLimiter ? IDENTITY_LIMITER : {}) },
    services: { BENCH_WORKER: 'BenchWorker' },
    bindings: { JWT_SECRET: SECRET },
    miniflare,
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

  /** An open socket to the raw echo DO (`kind` 'raw') or to the RPC-hop DO ('hop'). */
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
    base, pid, mf, connect, disconnect, rawSocket, partySocket, agentClient, gatewaySocket,
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
