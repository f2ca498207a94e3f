/**
 * The chat example's Worker: the edge (token check, development login,
 * gateway routing), the static page, and the Durable Object classes.
 *
 * The page and its script are built by scripts/example-build.mjs and
 * embedded at bundle time (`__CHAT_HTML__`, `__CHAT_JS__`), so the Worker
 * serves them with no asset store and no build step for the user.
 */
import { ClientGateway, createMeshWorker, type AuthOptions, type CallToClient, type CallToMesh, type VerifiedIdentity } from 'meshgate';
import { log, logs, printable, type LogEnv } from './dev-log.js';

export { ChatRoom } from './room.js';
export { ChatAssistant } from './assistant.js';
// Caps how many identities (tabs, devices) one user has live at once.
export { IdentityLimiter } from 'meshgate';

declare const __CHAT_HTML__: string;
declare const __CHAT_JS__: string;

export interface Env extends LogEnv {
  GATEWAY: DurableObjectNamespace;
  ROOM: DurableObjectNamespace;
  /** HS256 secret for tokens; `npm start` makes a random one and keeps it in its data folder. */
  JWT_SECRET: string;
  /** Grace period override in ms (the browser tests use a short one). */
  GRACE_MS?: string;
}

/** The library's gateway, with the grace period taken from the environment and its events logged (MESHGATE_LOG). */
export class ChatGateway extends ClientGateway<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    if (env.GRACE_MS) this.config.gracePeriodMs = Number(env.GRACE_MS);
  }

  protected override async onBeforeAccept(identity: VerifiedIdentity): Promise<void> {
    if (!logs(this.env, 'info')) return;
    const open = this.ctx.getWebSockets().some((ws) => ws.readyState === WebSocket.OPEN);
    const how = open ? 'takes over from its open socket (that one is superseded, 4409)'
      : (await this.ctx.storage.getAlarm()) !== null ? 'back inside the grace period: subscriptions kept'
        : 'new: the client subscribes';
    log(this.env, 'info', `connect  ${printable(identity.instanceName)} — ${how}`);
  }

  // Synchronous on purpose: an async hook costs every call an extra turn.
  protected override onBeforeCallToMesh(call: CallToMesh): void {
    if (!logs(this.env, 'debug')) return;
    const from = call.context.origin.kind === 'client' ? call.context.origin.instance : call.context.origin.kind;
    log(this.env, 'debug', `call     ${printable(from)} → ${printable(call.to.binding)}/${printable(call.to.instance ?? '')}.${printable(call.method)}()`);
  }

  protected override onBeforeCallToClient(call: CallToClient): void {
    if (!logs(this.env, 'debug')) return;
    log(this.env, 'debug', `push     → ${printable(call.instanceName)}.${printable(call.method)}()`);
  }

  override async webSocketClose(ws: WebSocket, code: number, reason: string): Promise<void> {
    if (logs(this.env, 'info')) log(this.env, 'info', `close    ${printable(this.#name(ws))}: ${code}${reason ? ` ${printable(reason)}` : ''}`);
    await super.webSocketClose(ws, code, reason);
  }

  override async alarm(): Promise<void> {
    if (logs(this.env, 'info') && !this.ctx.getWebSockets().some((ws) => ws.readyState === WebSocket.OPEN)) {
      log(this.env, 'info', `gone     ${printable(this.ctx.id.name ?? 'a client')}: grace period over, calls to it now fail`);
    }
    await super.alarm();
  }

  #name(ws: WebSocket): string {
    return (ws.deserializeAttachment() as { instanceName?: string } | null)?.instanceName ?? 'a client';
  }
}

const SECURITY_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
};

function serveStatic(request: Request): Response {
  const { pathname } = new URL(request.url);
  if (request.method !== 'GET' && request.method !== 'HEAD') return new Response('Method not allowed', { status: 405 });
  if (pathname === '/' || pathname === '/index.html') {
    return new Response(__CHAT_HTML__, { headers: { ...SECURITY_HEADERS, 'content-type': 'text/html; charset=utf-8' } });
  }
  if (pathname === '/app.js') {
    return new Response(__CHAT_JS__, { headers: { ...SECURITY_HEADERS, 'content-type': 'text/javascript; charset=utf-8' } });
  }
  if (pathname === '/favicon.ico') return new Response(null, { status: 204 });
  // The page's "Go offline" button points new sockets here: refused without reaching any gateway.
  if (pathname === '/__offline') return new Response('Simulated outage', { status: 503 });
  return new Response('Not found', { status: 404 });
}

const auth: AuthOptions<Env> = { secret: (env) => env.JWT_SECRET };

export default createMeshWorker<Env>({
  gateways: ['GATEWAY'],
  auth,
  // Development login: POST /auth/dev-token {"sub"} → {"access_token"}. Never enable this in production.
  devLogin: true,
  fetch: (request) => serveStatic(request),
  // Each refused upgrade, with why (never the token), at MESHGATE_LOG=info and above.
  logger: {
    refused: (refusal, env) => log(env, 'info', `refused  ${printable(refusal.binding)}/${printable(refusal.instance)}: `
      + `${refusal.as === 'http' ? 'HTTP ' : ''}${refusal.code} ${printable(refusal.reason)}${refusal.sub === undefined ? '' : ` (sub ${printable(refusal.sub)})`}`),
  },
});
