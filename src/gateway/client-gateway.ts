/**
 * ClientGateway: one Durable Object per client identity (`{sub}.{tabId}`).
 *
 * It stores nothing but the grace alarm: whether the client is connected, in
 * its grace period or gone is derived from `ctx.getWebSockets()`, the alarm
 * and socket attachments (supersession.ts states the rules). During a grace
 * period it also stores its epoch and remembered answers, so a resend after
 * an eviction gets the real answer (grace-memory.ts). In memory it keeps only
 * what makes calls settle exactly once, every map bounded.
 *
 * This class only routes the runtime's callbacks: admission and supersession
 * (supersession.ts, sockets.ts), frames from the client (frame-intake.ts),
 * client → mesh calls (calls-to-mesh.ts) and mesh → client calls
 * (calls-to-client.ts).
 */
import { DurableObject } from 'cloudflare:workers';
import { TokenExpiredError } from '../protocol/errors.js';
import {
  SUPERSEDED_REASON, WS_CLOSE_INTERNAL, WS_CLOSE_SUPERSEDED, WS_CLOSE_TOKEN_EXPIRED, WS_CLOSE_FORBIDDEN, WS_CLOSE_TOO_MANY_CONNECTIONS,
} from '../protocol/close-codes.js';
import { encodeFrame, MAX_BATCH_FRAMES, type ClientFrame } from '../protocol/frames.js';
import { encodeValue } from '../protocol/codec.js';
import { HEARTBEAT_PING, HEARTBEAT_PONG, subprotocolOf } from '../protocol/wire.js';
import { forwardedVersion } from '../upgrade/versions.js';
import { failure } from '../protocol/failure.js';
import type { ClientCallEnvelope, MeshResult, NotifyResult } from '../nodes/envelope.js';
import { readIdentity, type VerifiedIdentity } from '../upgrade/identity.js';
import { isUpgrade, refuseUpgrade, upgradeResponse } from '../upgrade/responses.js';
import { releaseIdentity } from '../identities/admission.js';
import { byteBurstOf } from './frame-rate.js';
import { defaultGatewayConfig, misconfiguredRate, type GatewayConfig } from './config.js';
import { echoableCode, GatewaySockets, safeClose, safeSend, tokenExpired, type SocketInfo } from './sockets.js';
import { admitUpgrade, gatewayState, startsGracePeriod, type GatewayState, type SocketEnd } from './supersession.js';
import { FrameIntake } from './frame-intake.js';
import { CallsToMesh, type CallToMesh } from './calls-to-mesh.js';
import { CallsToClient, type CallToClient } from './calls-to-client.js';
import { GraceMemory } from './grace-memory.js';
import { Departures } from './departures.js';

/** When a misconfiguration was last logged (per isolate): every client retries with backoff, and one line a minute says it. */
let misconfiguredLoggedAt = -Infinity;

function logMisconfigured(reason: string): void {
  if (Date.now() - misconfiguredLoggedAt < 60_000) return;
  misconfiguredLoggedAt = Date.now();
  console.error(`${reason} (every upgrade is refused with 1011 until it is fixed; logged at most once a minute)`);
}

export type { CallToMesh } from './calls-to-mesh.js';
export type { CallToClient } from './calls-to-client.js';

export class ClientGateway<Env = unknown> extends DurableObject<Env> {
  /** Override in a subclass (or assign in its constructor) to change limits and timings. */
  protected config: GatewayConfig = defaultGatewayConfig();

  readonly #sockets: GatewaySockets;
  readonly #graceMemory: GraceMemory;
  readonly #departures: Departures;
  readonly #intake = new FrameIntake();
  readonly #toMesh: CallsToMesh;
  readonly #toClient: CallsToClient;
  /** This incarnation of the gateway's memory: a client that sees another epoch knows it was lost (restored from storage after an eviction in a grace period). */
  #epoch = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sockets = (this.#sockets = new GatewaySockets(ctx));
    const graceMemory = (this.#graceMemory = new GraceMemory(ctx.storage));
    this.#departures = new Departures(ctx.storage, sockets);
    const config = (): GatewayConfig => this.config;
    this.#toMesh = new CallsToMesh({
      env, sockets, graceMemory, config, epoch: () => this.#epoch, onBeforeCallToMesh: (call) => this.onBeforeCallToMesh(call),
      callHookSet: () => this.onBeforeCallToMesh !== ClientGateway.prototype.onBeforeCallToMesh,
    });
    this.#toClient = new CallsToClient({
      config, onBeforeCallToClient: (call) => this.onBeforeCallToClient(call), active: () => sockets.active(), reachable: () => this.#reachable(),
    });
    // Heartbeats are answered by the runtime without waking the gateway.
    ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT_PING, HEARTBEAT_PONG));
  }

  // ── hooks for applications ────────────────────────────────────────────────

  /** Before a socket is accepted. Throw to refuse it (closed with 4403 and your message); return claims to add them. */
  protected onBeforeAccept(_identity: VerifiedIdentity, _request: Request): void | Record<string, unknown> | Promise<void | Record<string, unknown>> {}

  /** Before a client's call goes into the mesh. Throw to reject it; mutate `call.context.state` to enrich it. */
  protected onBeforeCallToMesh(_call: CallToMesh): void | Promise<void> {}

  /** Before a mesh call goes to the client. Throw to reject it. */
  protected onBeforeCallToClient(_call: CallToClient): void | Promise<void> {}

  // ── connection lifecycle ──────────────────────────────────────────────────

  override async fetch(request: Request): Promise<Response> {
    if (!isUpgrade(request)) return new Response('The gateway only accepts WebSocket upgrades.', { status: 426 });
    const identity = readIdentity(request);
    if (!identity) return new Response('Missing verified identity: reach the gateway through createMeshWorker.', { status: 400 });
    const protocol = forwardedVersion(request);
    if (protocol === undefined) return new Response('No protocol version negotiated: reach the gateway through createMeshWorker.', { status: 400 });

    let misconfigured: string | undefined;
    try {
      misconfigured = misconfiguredRate(this.config);
    } catch (error) {
      // a subclass's config getter that throws (an env value it cannot parse): the client still gets a close that says so
      misconfigured = `Gateway misconfigured: reading config threw: ${String((error as Error)?.message ?? error)}`;
    }
    if (misconfigured) {
      logMisconfigured(misconfigured);
      return refuseUpgrade(request, WS_CLOSE_INTERNAL, misconfigured);
    }

    let extraClaims: void | Record<string, unknown>;
    try {
      extraClaims = await this.onBeforeAccept(identity, request);
    } catch (error) {
      return refuseUpgrade(request, WS_CLOSE_FORBIDDEN, String((error as Error)?.message ?? error));
    }
    const info: SocketInfo = { ...identity, claims: { ...identity.claims, ...(extraClaims ?? {}) }, protocol };
    const [client, server] = Object.values(new WebSocketPair()) as [WebSocket, WebSocket];
    // Tried before anything changes: an identity workerd cannot keep (over 16 KiB serialized)
    // must not cost the live socket its place.
    try {
      server.serializeAttachment(info);
    } catch {
      return refuseUpgrade(request, WS_CLOSE_FORBIDDEN, 'Token claims too large');
    }

    const graceAlarm = (await this.ctx.storage.getAlarm()) !== null;
    if (graceAlarm) await this.#restoreGraceMemory();
    const storedDepartures = graceAlarm ? await this.#departures.stored() : [];
    // No await from here to the accept: concurrent upgrades cannot interleave.
    const { maxClosingSockets } = this.config;
    const decision = admitUpgrade(this.#sockets.views(), graceAlarm, maxClosingSockets);
    if (!decision.accept) {
      return refuseUpgrade(request, WS_CLOSE_TOO_MANY_CONNECTIONS, `Too many connections of this tab still closing (limit ${maxClosingSockets}); retry later`);
    }
    for (const old of decision.supersede) this.#sockets.close(old, WS_CLOSE_SUPERSEDED, SUPERSEDED_REASON, true);
    const departures = decision.subscriptionRequired ? [] : this.#departures.carried(decision.supersede, storedDepartures);
    this.#sockets.accept(server, Departures.fit(server, info, departures));
    if (decision.endGracePeriod) {
      void this.ctx.storage.deleteAlarm();
      this.#departures.reconnected();
      void this.#graceMemory.reconnected((id) => this.#toMesh.answers.get(id) !== undefined);
    }
    if (decision.subscriptionRequired) this.#forget();

    safeSend(server, encodeFrame({
      type: 'connection_status', subscriptionRequired: decision.subscriptionRequired, instanceName: identity.instanceName, sub: identity.sub,
      protocol, epoch: this.#epoch, maxFrameBytes: this.config.maxFrameBytes, maxStreamBufferBytes: this.config.maxStreamBufferBytes,
      framesPerSecond: this.config.framesPerSecond, frameBurst: this.config.frameBurst, maxBatchFrames: MAX_BATCH_FRAMES,
      bytesPerSecond: this.config.bytesPerSecond, byteBurst: byteBurstOf(this.config),
    }));
    this.#toClient.resendTo(server);
    this.#toMesh.streams.newSocket();
    return upgradeResponse(request, client, subprotocolOf(protocol));
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    // Complete the close handshake: workerd does not echo a client's close on a hibernatable socket here.
    safeClose(ws, echoableCode(code), reason);
    await this.#socketEnded(ws, this.#sockets.info(ws)?.closedByGateway ? 'echo' : 'lost');
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    safeClose(ws, WS_CLOSE_INTERNAL, 'WebSocket error');
    await this.#socketEnded(ws, this.#sockets.info(ws)?.closedByGateway ? 'echo' : 'lost');
  }

  /** Starts the grace period if supersession.ts says so: the gateway's own state decides, never the client's close code. */
  async #socketEnded(gone: WebSocket, end: SocketEnd): Promise<void> {
    this.#toClient.streams.socketLost(gone);
    if (!startsGracePeriod(end, this.#sockets.active(gone) !== undefined)) return;
    this.#graceMemory.save(this.#epoch, this.#toMesh.answers.entries(), this.#toMesh.runningIds());
    this.#departures.dropped(gone);
    await this.ctx.storage.setAlarm(Date.now() + this.config.gracePeriodMs);
  }

  /** Closes a socket for what it sent or its token; the client reconnects (or not) by the close code. */
  async #refuse(ws: WebSocket, code: number, reason: string): Promise<void> {
    this.#sockets.close(ws, code, reason);
    await this.#socketEnded(ws, 'refused');
  }

  /** The grace period ended without a reconnect: calls to the client fail for good. */
  override async alarm(): Promise<void> {
    if (this.#sockets.active()) return;
    this.#toClient.failAll();
    this.#toMesh.clientGone();
    this.#forget();
    await this.#graceMemory.clear();
    await releaseIdentity(this.env, this.config.identityLimiterBinding, this.ctx.id.name);
    if (this.ctx.id.name) await this.#departures.departed(this.env, this.ctx.id.name);
  }

  /** Internal RPC entry for the IdentityLimiter: is this identity live (a socket open, or in its grace period)? */
  async __meshgateIsLive(): Promise<boolean> {
    return (await this.#state()) !== 'disconnected';
  }

  /** The derived state (supersession.ts); the alarm is read only when no socket is open, where it decides. */
  async #state(): Promise<GatewayState> {
    const open = this.#sockets.active() !== undefined;
    return gatewayState(open, !open && (await this.ctx.storage.getAlarm()) !== null);
  }

  /** For mesh → client calls: a socket whose token expired is closed first, so the call waits for the refreshed reconnect. */
  async #reachable(): Promise<boolean> {
    const active = this.#sockets.active();
    const info = active && this.#sockets.info(active);
    if (active && info && tokenExpired(info)) await this.#refuse(active, WS_CLOSE_TOKEN_EXPIRED, 'Token expired');
    return (await this.#state()) !== 'disconnected';
  }

  /** The client must subscribe again (subscriptionRequired): what the gateway held for it goes. */
  #forget(): void {
    this.#toMesh.answers.clear();
    this.#toClient.notifications.clear();
    this.#toMesh.streams.cancelAll();
  }

  /** After an eviction in the grace period: the memory saved when the socket dropped, epoch included, so resends get their real answers. */
  async #restoreGraceMemory(): Promise<void> {
    const saved = await this.#graceMemory.restore();
    if (!saved) return;
    this.#epoch = saved.epoch;
    this.#toMesh.diedRunning(saved.running);
    const answers = this.#toMesh.answers;
    for (const [id, answer] of saved.answers) if (answers.get(id) === undefined) answers.remember(id, answer);
  }

  // ── frames from the client ───────────────────────────────────────────────

  override async webSocketMessage(ws: WebSocket, message: string | ArrayBuffer): Promise<void> {
    if (!this.#sockets.isOpen(ws)) return; // a superseded socket still talking
    const reads = this.#intake.read(ws, message, this.config);
    // A client that sends a batch reads them: its answers may go out in batches too.
    if (reads.batch) this.#sockets.takesBatches(ws);
    for (const read of reads) {
      if (read.kind === 'close') return this.#refuse(ws, read.code, read.reason);
      if (read.kind === 'refusedCall') this.#toMesh.answer(ws, read.id, failure(read.error), false);
      else if (read.kind === 'frame' && !this.#take(ws, read.frame)) return this.#refuse(ws, WS_CLOSE_TOKEN_EXPIRED, 'Token expired');
    }
  }

  /** Acts on one frame from the client; false if its token has expired (the socket is to close, nothing after it is read). */
  #take(ws: WebSocket, frame: ClientFrame): boolean {
    const info = this.#sockets.info(ws)!;
    if (tokenExpired(info)) {
      // A resend this gateway knows is answered as usual; a new call did not run:
      // the client keeps it and sends it again after refreshing its token.
      if (frame.type === 'incoming_call_response') this.#toClient.takeAnswer(ws, frame);
      else if (frame.type === 'cancel') this.#toMesh.cancel(frame.id);
      else if (frame.type === 'call' && !this.#toMesh.answerResend(ws, frame.id)) this.#toMesh.answer(ws, frame.id, failure(new TokenExpiredError()), false, true);
      return false;
    }
    if (frame.type === 'call') this.#toMesh.take(ws, info, frame);
    else if (frame.type === 'incoming_call_response') this.#toClient.takeAnswer(ws, frame);
    else if (frame.type === 'stream_credit') this.#toMesh.streams.credit(ws, frame);
    else if (frame.type === 'cancel') this.#toMesh.cancel(frame.id);
    else this.#toClient.takeStreamData(ws, frame);
    return true;
  }

  /** Sizes of the in-memory maps, each bounded by `config` (for monitoring and tests). */
  protected memoryStats(): { running: number; answered: number; answeredSize: number; waiting: number; notifications: number; stubs: number; sessions: number; streams: number; streamTimers: number } {
    const toMesh = this.#toMesh;
    return {
      running: toMesh.running, answered: toMesh.answers.size, answeredSize: toMesh.answers.bytes, waiting: this.#toClient.waiting,
      notifications: this.#toClient.notifications.size, stubs: toMesh.stubs, sessions: toMesh.sessions, streams: toMesh.streams.size, streamTimers: toMesh.streams.timers + this.#toClient.streams.timers,
    };
  }

  // ── internal RPC entries (nodes → this gateway; not callable by clients) ──

  /** A node notifies this gateway's client and does not wait for its answer. */
  async __meshgateNotifyClient(envelope: ClientCallEnvelope): Promise<NotifyResult> {
    return this.#toClient.notify(envelope);
  }

  /** A node asks to be told when this client is gone for good (presence); false if it already is. */
  async __meshgateWatchDeparture(watcher: unknown): Promise<{ ok: true; watching: boolean } | { ok: false; error: string }> {
    try {
      return { ok: true, watching: await this.#departures.watch(watcher) };
    } catch (error) {
      return { ok: false, error: encodeValue(error) }; // typed across the RPC, as a call's errors are
    }
  }

  /** The reverse: the client left that node. */
  async __meshgateUnwatchDeparture(watcher: unknown): Promise<void> {
    await this.#departures.unwatch(watcher);
  }

  /** A node calls this gateway's client and waits for its answer. */
  async __meshgateCallClient(envelope: ClientCallEnvelope): Promise<MeshResult> {
    return this.#toClient.call(envelope);
  }
}
