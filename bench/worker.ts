/**
 * The benchmark mesh: meshgate (gateway + app DOs) and, beside it, the
 * physical baseline — a raw Durable Object that accepts hibernatable
 * WebSockets and echoes (no gateway, no codec, no frames).
 *
 * Routes: `/gateway/GATEWAY/{instance}` (meshgate, through createMeshWorker)
 * and `/raw/{instance}` (the raw echo DO, through the same kind of Worker →
 * DO hop, with no token check).
 */
import { DurableObject, RpcTarget } from 'cloudflare:workers';
import * as v from 'valibot';
import { z } from 'zod';
import { ClientGateway, MeshDurableObject, MeshWorker, Subscriptions, createMeshWorker, mesh } from '../src/index.js';
import { callText, packedContext, packedIdentity } from '../src/nodes/packed-envelope.js';
import { encodeValue } from '../src/protocol/codec.js';
import { DEFAULTS } from '../src/protocol/limits.js';
import { withStandIns, type RemoteStandInsService, type StandInGateway } from './stand-ins.js';

export { BenchRelay, StandInGateway } from './stand-ins.js';

export interface Env {
  GATEWAY: DurableObjectNamespace;
  BENCH: DurableObjectNamespace;
  BENCH_BURSTS: DurableObjectNamespace;
  TOPIC: DurableObjectNamespace;
  RAW: DurableObjectNamespace;
  HOP: DurableObjectNamespace;
  HOP_TARGET: DurableObjectNamespace;
  HOP_NODE: DurableObjectNamespace;
  HOP_SESSION: DurableObjectNamespace;
  FANOUT_RELAY: DurableObjectNamespace;
  STANDIN: DurableObjectNamespace;
  /** the hot-object scenario's second workerd (bench/remote-worker.ts), when bound */
  REMOTE?: RemoteStandInsService;
  PeerAgent: DurableObjectNamespace;
  PeerParty: DurableObjectNamespace;
  JWT_SECRET: string;
}

/** The throughput scenarios pipeline tens of thousands of calls a second from one socket: far past the default frame rate limit (and near the character rate). */
export class BenchGateway extends ClientGateway<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.config.framesPerSecond = 1_000_000;
    this.config.frameBurst = 1_000_000;
    this.config.bytesPerSecond = 1e12;
    this.config.byteBurst = 1e12;
  }
}

/** A stateless node: bursts of calls to it share one RPC (a Durable Object, one RPC per call unless it accepts bursts). */
export class BenchWorker extends MeshWorker<Env> {
  @mesh
  echo<T>(value: T): T {
    return value;
  }
}

type Listener = { ping(i: number): number; notify(round: number): number };
type FanOutWhere = 'local' | 'remote' | 'remoteTree';

/** A chat message as the checked scenario sends it; the same shape in both schema libraries. */
type Message = { room: string; text: string; at: number };
const valibotMessage = v.object({ room: v.pipe(v.string(), v.maxLength(64)), text: v.pipe(v.string(), v.maxLength(2000)), at: v.pipe(v.number(), v.integer()) });
const zodMessage = z.object({ room: z.string().max(64), text: z.string().max(2000), at: z.number().int() });

/** The app node the benchmarks call. */
export class BenchDO extends MeshDurableObject<Env> {
  @mesh
  echo<T>(value: T): T {
    return value;
  }

  /** The unchecked twin of the two methods below: what a schema check adds is the difference. */
  @mesh
  echoMessage(message: Message): Message {
    return message;
  }

  @mesh({ args: [valibotMessage] })
  echoMessageValibot(message: Message): Message {
    return message;
  }

  @mesh({ args: [zodMessage] })
  echoMessageZod(message: Message): Message {
    return message;
  }

  /** `count` sequential DO → client calls; the client times the gaps between arrivals. */
  @mesh
  async callClientLoop(instanceName: string, count: number): Promise<number> {
    const client = this.mesh.client<Listener>(instanceName, { ownChain: true });
    let sum = 0;
    for (let i = 0; i < count; i++) sum += await client.ping(i);
    return sum;
  }

  /** `count` chunks of `chars` characters (the stream scenario). */
  @mesh
  async *stream(count: number, chars: number): AsyncGenerator<string> {
    const chunk = 'x'.repeat(chars);
    for (let i = 0; i < count; i++) yield chunk;
  }

  /** One DO → client call, answered whenever the client answers (used by the supersede scenario). */
  @mesh
  async callClientOnce(instanceName: string, i: number, timeoutMs: number): Promise<number> {
    return this.mesh.client<Listener>(instanceName, { ownChain: true, timeoutMs }).ping(i);
  }
}

/** The same node, opted in to bursts (its methods touch no storage): calls that arrive together share one RPC. */
export class BenchBurstDO extends BenchDO {
  static override acceptsCallBursts = true;
}

/** A topic with subscribers, using the subscriptions helper for the fan-out. */
export class TopicDO extends MeshDurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, withStandIns(env));
  }

  readonly subs = new Subscriptions(this.ctx.storage, this.mesh);

  @mesh
  join(topic: string): string {
    return this.subs.subscribeCaller(topic);
  }

  @mesh
  clear(topic: string): number {
    return this.subs.store.clearTopic(topic);
  }

  /** Notifies every subscriber (Subscriptions.notify); resolves once every gateway has the call, answers not awaited. */
  @mesh
  async announce(topic: string, round: number, concurrency?: number): Promise<{ total: number; delivered: number }> {
    const summary = await this.subs.notify<Listener>(topic, 'notify', [round], concurrency === undefined ? {} : { concurrency });
    return { total: summary.total, delivered: summary.sent };
  }

  /** The same notification, fanned out by the loop in this object or through relays (the fanout_tree scenario). */
  readonly loop = new Subscriptions(this.ctx.storage, this.mesh, { relays: false });
  readonly tree = new Subscriptions(this.ctx.storage, this.mesh, { relays: { minSubscribers: 1 } });
  /** Subscribers that are stand-in gateways (StandInGateway: no socket, no client), for the simulation past real clients. */
  readonly standInLoop = new Subscriptions(this.ctx.storage, this.mesh, { table: 'standins', gateway: 'STANDIN', relays: false });
  readonly standInTree = new Subscriptions(this.ctx.storage, this.mesh, { table: 'standins', gateway: 'STANDIN', relays: { minSubscribers: 1 } });

  @mesh
  async announceVia(mode: 'loop' | 'tree', topic: string, round: number): Promise<{ total: number; delivered: number }> {
    const summary = await this[mode].notify<Listener>(topic, 'notify', [round]);
    return { total: summary.total, delivered: summary.sent };
  }

  /** Subscribes `count` stand-in names to `topic` (and nothing else), in one statement: the simulation's audience. */
  @mesh
  fillStandIns(topic: string, count: number): number {
    this.standInLoop.store.clearTopic(topic);
    this.ctx.storage.sql.exec(`INSERT INTO standins (topic, instance, subscribed_at, sub)
      WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?)
      SELECT ?, 'standin' || i || '.t', ?, 'standin' || i FROM n`, Math.min(Math.max(count, 1), 100_000), topic, Date.now());
    return this.standInLoop.count(topic);
  }

  /** Notifies every stand-in; resolves when every one has the call (a stand-in answers as soon as it counted it). */
  @mesh
  async notifyStandIns(mode: 'loop' | 'tree', topic: string, round: number): Promise<{ total: number; delivered: number }> {
    const summary = await (mode === 'loop' ? this.standInLoop : this.standInTree).notify<Listener>(topic, 'notify', [round]);
    return { total: summary.total, delivered: summary.sent };
  }

  /**
   * Where the hot-object scenario's fan-out goes: the stand-ins in this workerd ('local'), or those of the
   * second process (bench/remote-worker.ts), by the loop in this object ('remote') or through relays that
   * run there too ('remoteTree'). Made on first use: the remote ones need the REMOTE binding.
   */
  #audiences: Partial<Record<FanOutWhere, Subscriptions>> = { local: this.standInLoop };

  #audience(where: FanOutWhere): Subscriptions {
    // 'remoteTree': the relays' default threshold, as an app that binds them gets
    return (this.#audiences[where] ??= new Subscriptions(this.ctx.storage, this.mesh, {
      table: 'standins', gateway: 'REMOTE_STANDIN', relays: where === 'remoteTree' ? { binding: 'REMOTE_RELAY' } : false,
    }));
  }

  /** `rounds` notifications of the stand-ins of `topic` (Subscriptions.notify), one after another (the hot_object scenario's fan-out); the stand-ins notified. */
  @mesh
  async notifyStandInRounds(topic: string, rounds: number, where: FanOutWhere = 'local'): Promise<number> {
    const audience = this.#audience(where);
    let sent = 0;
    for (let r = 0; r < Math.min(rounds, 1_000); r++) sent += (await audience.notify<Listener>(topic, 'notify', [r])).sent;
    return sent;
  }

  /**
   * The fan-out's RPC floor: `rounds` times, one bare RPC per stand-in of `topic`, 64 at a time
   * (Subscriptions' default concurrency), with an envelope of the shape mesh.clientCalls sends,
   * built once, and none of the library's bookkeeping; the stand-ins that answered.
   */
  @mesh
  async notifyStandInsBare(topic: string, rounds: number, where: 'local' | 'remote' = 'local'): Promise<number> {
    const names = this.standInLoop.store.list(topic);
    // this.env has the stand-ins' namespaces already (the constructor's withStandIns)
    const env = this.env as unknown as Record<string, DurableObjectNamespace<StandInGateway>>;
    const gateways = env[where === 'local' ? 'STANDIN' : 'REMOTE_STANDIN']!;
    const origin = { kind: 'node', binding: 'TOPIC', instance: this.ctx.id.name ?? '' };
    const shared = { method: 'notify', args: '[[1],0]', context: { origin, caller: origin, chain: [origin], state: {} } };
    let answered = 0;
    for (let r = 0; r < Math.min(rounds, 1_000); r++) {
      let next = 0;
      await Promise.all(Array.from({ length: Math.min(64, names.length) }, async () => {
        while (next < names.length) {
          const instanceName = names[next++]!;
          const receipt = await gateways.get(gateways.idFromName(instanceName)).__meshgateNotifyClient({ instanceName, ...shared });
          if (receipt.ok) answered++;
        }
      }));
    }
    return answered;
  }

  /**
   * `rounds` notifications of the stand-ins of `topic` by each mode, alternating, timed in this object
   * (no client round trip in the figure): tree minus loop is what the relay hop adds.
   */
  @mesh
  async timeStandInRounds(topic: string, rounds: number): Promise<{ loopMs: number; treeMs: number }> {
    const spent = { loop: 0, tree: 0 };
    for (let r = 0; r < Math.min(rounds, 1_000); r++) {
      for (const mode of r % 2 === 0 ? (['loop', 'tree'] as const) : (['tree', 'loop'] as const)) {
        const t0 = Date.now();
        await (mode === 'loop' ? this.standInLoop : this.standInTree).notify<Listener>(topic, 'notify', [r]);
        spent[mode] += Date.now() - t0;
      }
    }
    return { loopMs: spent.loop, treeMs: spent.tree };
  }

  /** Calls `notify` on every subscriber; resolves when all answered. */
  @mesh
  async broadcast(topic: string, round: number, concurrency?: number): Promise<{ total: number; delivered: number }> {
    const summary = await this.subs.fanOut<Listener>(topic, 'notify', [round], concurrency === undefined ? {} : { concurrency });
    return { total: summary.total, delivered: summary.delivered };
  }
}

/**
 * The baseline: accepts hibernatable sockets and echoes every text message.
 * Messages starting with `!` are bench commands (fan-out baseline) and never
 * touch the echo path.
 */
export class RawEchoDO extends DurableObject<Env> {
  #fanDriver: WebSocket | undefined;
  #fanPending = 0;

  override async fetch(): Promise<Response> {
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (typeof message !== 'string' || message.charCodeAt(0) !== 33 /* ! */) {
      ws.send(message);
      return;
    }
    if (message.startsWith('!fanq:')) {
      // Send to every other socket, no acknowledgements: a DO's own cost per socket it sends on.
      let sent = 0;
      for (const other of this.ctx.getWebSockets()) {
        if (other === ws || other.readyState !== 1) continue;
        other.send(`!q:${message.slice(6)}`);
        sent++;
      }
      ws.send(`!done:${sent}`);
      return;
    }
    if (message.startsWith('!fan:')) {
      // Send to every other socket of this DO; answer the driver when all acknowledged.
      const round = message.slice(5);
      let sent = 0;
      for (const other of this.ctx.getWebSockets()) {
        if (other === ws || other.readyState !== 1) continue;
        other.send(`!f:${round}`);
        sent++;
      }
      this.#fanDriver = ws;
      this.#fanPending = sent;
      if (sent === 0) ws.send('!done:0');
      return;
    }
    if (message.startsWith('!ack') && this.#fanDriver) {
      if (--this.#fanPending === 0) this.#fanDriver.send('!done');
    }
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, 'bye');
    } catch {
      // already closed
    }
  }
}

/**
 * The second baseline: a hibernatable socket whose every message goes over one
 * Workers RPC hop to another DO and back — the gateway's physical floor.
 */
export class RawHopDO extends DurableObject<Env> {
  #target: DurableObjectStub<RawHopTargetDO> | undefined;

  override async fetch(request: Request): Promise<Response> {
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    this.ctx.acceptWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    this.#target ??= this.env.HOP_TARGET.get(this.env.HOP_TARGET.idFromName('target')) as unknown as DurableObjectStub<RawHopTargetDO>;
    ws.send(await this.#target.echo(message as string));
  }

  override async webSocketClose(ws: WebSocket, code: number): Promise<void> {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, 'bye');
    } catch {
      // already closed
    }
  }
}

/**
 * The floor with meshgate's node behind it: the same raw socket DO, but each
 * message goes to the BENCH node as the call text a gateway sends (an echo of
 * the message's first 40 characters), and the node's answer text goes back.
 * Between the floor and a meshgate call it splits the gap: this side minus
 * the floor is the node's share; meshgate minus this side, the gateway's
 * and the client's.
 */
export class RawHopNodeDO extends RawHopDO {
  #node: DurableObjectStub<BenchDO> | undefined;
  readonly #context = packedContext(packedIdentity({ kind: 'client', gateway: 'GATEWAY', instance: 'ladder.hop', sub: 'ladder' }, { sub: 'ladder', claims: {} })!, {});

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const node = (this.#node ??= this.env.BENCH.get(this.env.BENCH.idFromName('ladder')) as unknown as DurableObjectStub<BenchDO>);
    const text = callText({
      target: { binding: 'BENCH', instance: 'ladder' }, method: 'echo', args: encodeValue([(message as string).slice(0, 40)]),
      context: this.#context, deadlineMs: DEFAULTS.gatewayCallDeadlineMs,
    });
    ws.send(await (node as unknown as { __meshgateCallText(text: string): Promise<string> }).__meshgateCallText(text));
  }
}

/**
 * The floor with the hop meshgate's gateway takes: the same raw socket DO,
 * but each message goes through an RpcTarget session the target returned
 * once (kept for the socket's life), not as a new RPC to the target.
 */
export class RawHopSessionDO extends RawHopDO {
  #session: { echo(message: string): Promise<string> } | undefined;

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    const target = this.env.HOP_TARGET.get(this.env.HOP_TARGET.idFromName('target')) as unknown as { session(): { echo(message: string): Promise<string> } };
    ws.send(await (this.#session ??= target.session()).echo(message as string));
  }
}

class EchoSession extends RpcTarget {
  echo(message: string): string {
    return message;
  }
}

export class RawHopTargetDO extends DurableObject<Env> {
  echo(message: string): string {
    return message;
  }

  session(): EchoSession {
    return new EchoSession();
  }

  /** A call's envelope taken and answered with a result of the node's shape, none of the node's work: what the RPC's values cost. */
  answer(envelope: { args: string }): { ok: true; result: string } {
    return { ok: true, result: envelope.args };
  }
}

export { IdentityLimiter } from '../src/index.js';
export { PeerAgent, PeerParty } from './peers.js';
import { routePeers } from './peers.js';

const meshWorker = createMeshWorker<Env>({ auth: { secret: (env) => env.JWT_SECRET } });

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname.startsWith('/raw/')) {
      const name = decodeURIComponent(url.pathname.slice(5));
      return env.RAW.get(env.RAW.idFromName(name)).fetch(request);
    }
    if (url.pathname.startsWith('/hop/')) {
      const name = decodeURIComponent(url.pathname.slice(5));
      return env.HOP.get(env.HOP.idFromName(name)).fetch(request);
    }
    if (url.pathname.startsWith('/hopsession/')) {
      const name = decodeURIComponent(url.pathname.slice(12));
      return env.HOP_SESSION.get(env.HOP_SESSION.idFromName(name)).fetch(request);
    }
    if (url.pathname.startsWith('/hopnode/')) {
      const name = decodeURIComponent(url.pathname.slice(9));
      return env.HOP_NODE.get(env.HOP_NODE.idFromName(name)).fetch(request);
    }
    const peer = await routePeers(request, env as unknown as Record<string, unknown>);
    if (peer) return peer;
    return meshWorker.fetch!(request as Parameters<NonNullable<typeof meshWorker.fetch>>[0], env, ctx);
  },
} satisfies ExportedHandler<Env>;
