/**
 * The chat example's Worker: the edge (token check, development login,
 * gateway routing), the static page, and the Durable Object classes.
 *
 * The page and its script are built by scripts/example-build.mjs and
 * embedded at bundle time (`__CHAT_HTML__`, `__CHAT_JS__`), so the Worker
 * serves them with no asset store and no build step for the user.
 */
import { ClientGateway, createMeshWorker } from 'meshgate';
import type { RoomEnv } from './room.js';

export { ChatRoom } from './room.js';

declare const __CHAT_HTML__: string;
declare const __CHAT_JS__: string;

export interface Env extends RoomEnv {
  GATEWAY: DurableObjectNamespace;
  ROOM: DurableObjectNamespace;
  /** HS256 secret for tokens; `npm start` makes a random one per run. */
  JWT_SECRET: string;
  /** Grace period override in ms (the browser tests use a short one). */
  GRACE_MS?: string;
}

/** The library's gateway, with the grace period taken from the environment. */
export class ChatGateway extends ClientGateway<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    if (env.GRACE_MS) this.config.gracePeriodMs = Number(env.GRACE_MS);
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

export default createMeshWorker<Env>({
  gateways: ['GATEWAY'],
  auth: { secret: (env) => env.JWT_SECRET },
  // Development login: POST /auth/dev-token {"sub"} → {"access_token"}. Never enable this in production.
  devLogin: true,
  fetch: (request) => serveStatic(request),
});
