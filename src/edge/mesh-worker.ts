/**
 * The edge Worker: the only public entry. It verifies the access token,
 * strips client-supplied internal headers and routes
 * `GET /gateway/{binding}/{instance}` upgrades to the gateway DO `{instance}`
 * — only for bindings configured as gateways.
 */
import { WS_CLOSE_FORBIDDEN, WS_CLOSE_NO_TOKEN, WS_CLOSE_UNSUPPORTED_PROTOCOL } from '../protocol/close-codes.js';
import { DEFAULT_GATEWAY_BINDING } from '../protocol/limits.js';
import { checkedVersions, SUBPROTOCOL, SUPPORTED_PROTOCOL_VERSIONS, TOKEN_SUBPROTOCOL_PREFIX } from '../protocol/wire.js';
import { negotiate, refusedVersionReason } from '../upgrade/versions.js';
import { admitIdentity, type IdentityLimitOptions } from '../identities/admission.js';
import { IDENTITY_HEADER, INTERNAL_HEADER_PREFIX, type VerifiedIdentity } from '../upgrade/identity.js';
import { isUpgrade, offeredSubprotocols, REFUSAL_LINGER_MS, refuseUpgrade } from '../upgrade/responses.js';
import { AuthFailure, verifyAccessToken, weakSecretProblem, type AuthOptions } from './auth.js';
import { DEV_TOKEN_PATH, devLoginMisconfigured, devLoginOff, devLoginWithoutSecret, isLoopbackHost, issueDevToken } from './dev-token.js';
import { isNamespace, type Namespace } from '../bindings/kinds.js';
import { contextStorage } from '../nodes/context.js';
import { CorsPolicy, type CorsOptions } from './cors.js';
import { consoleEdgeLogger, type EdgeLogger, type RefusedUpgrade } from './refusals.js';

export interface MeshWorkerOptions<Env> {
  /** Durable Object bindings that are client gateways (default ['GATEWAY']). */
  gateways?: string[];
  auth: AuthOptions<Env>;
  /**
   * The cap on live identities per user, kept by an IdentityLimiter Durable
   * Object bound as `binding` (default IDENTITY_LIMITER, at most 32 per sub).
   * Without that binding upgrades are not capped (one warning is logged);
   * `false` turns the cap off on purpose.
   */
  identities?: IdentityLimitOptions<Env> | false;
  /**
   * Serve POST /auth/dev-token signed with `auth.secret`. For local development only:
   * the route does not exist unless this returns true.
   */
  devLogin?: boolean | ((env: Env) => boolean);
  /** Lifetime of development tokens, seconds (default 3600). */
  devTokenTtlSeconds?: number;
  /** Everything that is not a gateway route (your app, static files). Default: 404. */
  fetch?: (request: Request, env: Env, ctx: ExecutionContext) => Response | Promise<Response>;
  /**
   * Lets pages on other origins (a Vite dev server, your app's own domain) use the
   * development login and your `fetch` routes, e.g. a token refresh URL. Off by default.
   */
  cors?: CorsOptions<Env>;
  /**
   * Told of every upgrade the edge refuses, with the close code (or HTTP status) and why; never the token.
   * Default: one `console.warn` line each, at most 60 a minute. `false` silences it.
   */
  logger?: EdgeLogger<Env> | false;
  /**
   * The protocol versions this edge accepts (default SUPPORTED_PROTOCOL_VERSIONS).
   * The newest one the client offers is selected. Only tests list the reserved
   * next version, to play a gateway released after this one.
   */
  protocolVersions?: readonly number[] | ((env: Env) => readonly number[] | undefined);
}

const TAB_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

function decodedOr(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Removes every client-supplied internal header, whatever its case. */
export function stripInternalHeaders(headers: Headers): Headers {
  const clean = new Headers();
  headers.forEach((value, key) => {
    if (!key.toLowerCase().startsWith(INTERNAL_HEADER_PREFIX)) clean.append(key, value);
  });
  return clean;
}

function tokenFrom(offered: string[]): string | undefined {
  const entry = offered.find((p) => p.startsWith(TOKEN_SUBPROTOCOL_PREFIX));
  const token = entry?.slice(TOKEN_SUBPROTOCOL_PREFIX.length);
  return token ? token : undefined;
}

/**
 * The client speaks no version this edge accepts. Only an offered subprotocol
 * may be selected (RFC 6455), and clients fail a 101 that selects none: a
 * client offering other subprotocols gets one selected and the socket closed
 * at once with 4426; one offering nothing but the token (which is never
 * echoed) gets an HTTP 400.
 */
function refuseProtocol(request: Request, offered: string[], accepted: readonly number[], log: (refusal: Pick<RefusedUpgrade, 'as' | 'code' | 'reason'>) => void): Response {
  const reason = refusedVersionReason(offered, accepted);
  const other = offered.find((p) => !p.startsWith(TOKEN_SUBPROTOCOL_PREFIX));
  if (other === undefined) {
    log({ as: 'http', code: 400, reason: `${reason} (it offered none but the token)` });
    return new Response(`${reason}: Sec-WebSocket-Protocol: ${SUBPROTOCOL}, ${TOKEN_SUBPROTOCOL_PREFIX}<jwt>.`, { status: 400 });
  }
  log({ as: 'close', code: WS_CLOSE_UNSUPPORTED_PROTOCOL, reason });
  return refuseUpgrade(request, WS_CLOSE_UNSUPPORTED_PROTOCOL, reason, other, REFUSAL_LINGER_MS);
}

export function createMeshWorker<Env>(options: MeshWorkerOptions<Env>): ExportedHandler<Env> {
  contextStorage(); // fails the Worker's load with what to do when nodejs_compat is missing
  // A secret given as a string is checked at load: the Worker fails to start instead of accepting forgeable tokens.
  const weak = typeof options.auth.secret === 'string' ? weakSecretProblem(options.auth.secret) : undefined;
  if (weak) throw new Error(`meshgate: ${weak}`);
  const gateways = options.gateways ?? [DEFAULT_GATEWAY_BINDING];
  const cors = options.cors && new CorsPolicy(options.cors);
  const logger = options.logger === false ? undefined : (options.logger ?? (consoleEdgeLogger() as EdgeLogger<Env>));
  const fixedVersions = typeof options.protocolVersions === 'function' ? undefined : checkedVersions(options.protocolVersions ?? SUPPORTED_PROTOCOL_VERSIONS, 'protocolVersions');
  const acceptedVersions = (env: Env): readonly number[] =>
    fixedVersions ?? checkedVersions((options.protocolVersions as (env: Env) => readonly number[] | undefined)(env) ?? SUPPORTED_PROTOCOL_VERSIONS, 'protocolVersions');
  const handler = {
    async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
      const url = new URL(request.url);
      const devLogin = typeof options.devLogin === 'function' ? options.devLogin(env) : options.devLogin === true;
      if (devLogin && url.pathname === DEV_TOKEN_PATH) {
        const secret = typeof options.auth.secret === 'function' ? options.auth.secret(env) : options.auth.secret;
        const problem = !secret ? devLoginWithoutSecret(options.auth.secret) : weakSecretProblem(secret);
        if (problem) return devLoginMisconfigured(problem);
        return issueDevToken(request, secret!, options.devTokenTtlSeconds ?? 3600);
      }
      const route = /^\/gateway\/([^/]+)\/([^/]+)\/?$/.exec(url.pathname);
      if (!route) {
        if (options.fetch) return options.fetch(new Request(request, { headers: stripInternalHeaders(request.headers) }), env, ctx);
        // Someone expected the development login here: say why it is not, on a development host only (deployed, a plain 404 says nothing of the setup).
        if (url.pathname === DEV_TOKEN_PATH && isLoopbackHost(url.hostname)) return Response.json({ error: devLoginOff(options.devLogin) }, { status: 404 });
        return new Response('Not found', { status: 404 });
      }
      const binding = decodedOr(route[1]!); // malformed percent-encoding: no gateway has that name
      const log = (refusal: Pick<RefusedUpgrade, 'as' | 'code' | 'reason' | 'sub'>): void => logger?.refused({ ...refusal, binding, instance: decodedOr(route[2]!) }, env);
      const close = (code: number, reason: string, sub?: string): Response => {
        log({ as: 'close', code, reason, ...(sub === undefined ? {} : { sub }) });
        return refuseUpgrade(request, code, reason, selected, REFUSAL_LINGER_MS);
      };
      const candidate = gateways.includes(binding) ? (env as Record<string, unknown>)[binding] : undefined;
      if (!isNamespace(candidate)) {
        log({ as: 'http', code: 404, reason: `unknown gateway binding (configured: ${gateways.join(', ')})` });
        return new Response(`Unknown gateway binding "${binding.slice(0, 64)}"`, { status: 404 });
      }
      if (!isUpgrade(request)) {
        log({ as: 'http', code: 426, reason: 'not a WebSocket upgrade' });
        return new Response('Expected a WebSocket upgrade (Upgrade: websocket).', { status: 426 });
      }

      const offered = offeredSubprotocols(request);
      const accepted = acceptedVersions(env);
      const selected = negotiate(offered, accepted);
      if (selected === undefined) return refuseProtocol(request, offered, accepted, log);
      const token = tokenFrom(offered);
      if (!token) return close(WS_CLOSE_NO_TOKEN, 'No token');
      let instanceName: string;
      try {
        instanceName = decodeURIComponent(route[2]!);
      } catch {
        return close(WS_CLOSE_FORBIDDEN, 'Bad instance name');
      }
      let identity: VerifiedIdentity;
      let sub: string | undefined;
      try {
        const verified = await verifyAccessToken(token, options.auth, env);
        sub = verified.sub;
        const prefix = `${verified.sub}.`;
        if (!instanceName.startsWith(prefix) || !TAB_PATTERN.test(instanceName.slice(prefix.length))) {
          throw new AuthFailure(WS_CLOSE_FORBIDDEN, 'Instance name must be {sub}.{tabId}');
        }
        identity = { sub: verified.sub, claims: verified.claims, instanceName, gateway: binding, ...(verified.exp === undefined ? {} : { exp: verified.exp }) };
      } catch (error) {
        if (error instanceof AuthFailure) return close(error.closeCode, error.message, sub);
        throw error;
      }

      const refusal = await admitIdentity(options.identities, env, identity);
      if (refusal) return close(refusal.code, refusal.reason, identity.sub);

      const headers = stripInternalHeaders(request.headers);
      headers.set(IDENTITY_HEADER, JSON.stringify(identity));
      headers.set('Sec-WebSocket-Protocol', selected); // the negotiated version; the token goes no further than the edge
      const namespace = candidate as Namespace<{ fetch(request: Request): Promise<Response> }>;
      const stub = namespace.get(namespace.idFromName(instanceName));
      return stub.fetch(new Request(request.url, { method: 'GET', headers }));
    },
  };
  if (!cors) return handler;
  return {
    async fetch(request, env, ctx) {
      return cors.preflight(request, env) ?? cors.apply(request, env, await handler.fetch(request, env, ctx));
    },
  };
}
