/** The development login: POST /auth/dev-token {"sub"} → {"access_token"}. Only mounted when `devLogin` is set. */
import { SignJWT } from 'jose';
import { identityProblem } from './auth.js';

export const DEV_TOKEN_PATH = '/auth/dev-token';

/** localhost, *.localhost, 127.0.0.0/8 and [::1]: where a development server answers, never a deployed Worker. */
export function isLoopbackHost(hostname: string): boolean {
  return hostname === 'localhost' || hostname.endsWith('.localhost') || /^127(\.\d{1,3}){3}$/.test(hostname) || hostname === '[::1]';
}

export async function issueDevToken(request: Request, secret: string, ttlSeconds: number): Promise<Response> {
  // A deployed Worker with devLogin left on must not sign tokens for anyone who asks.
  const { hostname } = new URL(request.url);
  if (!isLoopbackHost(hostname)) {
    return Response.json({ error: `The development login answers only on localhost (this request came for "${hostname}"). Turn devLogin off outside development and issue tokens from your identity provider.` }, { status: 403 });
  }
  if (request.method !== 'POST') return Response.json({ error: 'POST {"sub": "alice"} to get a development token.' }, { status: 405 });
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    return Response.json({ error: 'Body must be JSON: {"sub": "alice"}.' }, { status: 400 });
  }
  const sub = (body as { sub?: unknown })?.sub;
  const problem = identityProblem(sub);
  if (problem) return Response.json({ error: `The body ${problem} (e.g. {"sub": "alice"}).` }, { status: 400 });
  const token = await new SignJWT({ dev: true })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub as string)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(new TextEncoder().encode(secret));
  return Response.json({ access_token: token, expires_in: ttlSeconds });
}

/** What the login's path answers (404), on a development host, while the login is off. */
export function devLoginOff(devLogin: unknown): string {
  return typeof devLogin === 'function'
    ? 'No development login here: createMeshWorker\'s devLogin(env) returned false for this env. Does it read a variable that is not set (for wrangler dev, in .dev.vars)?'
    : 'No development login here: createMeshWorker\'s devLogin is off for this Worker. Turn it on for local development only (devLogin: true, or a function of env).';
}

/** Why the login cannot sign when `auth.secret` gives nothing. */
export function devLoginWithoutSecret(secret: unknown): string {
  return typeof secret === 'function'
    ? 'devLogin needs auth.secret, and it gave none for this env: is the variable it reads set (for wrangler dev, in .dev.vars)?'
    : 'devLogin needs auth.secret, and none is set.';
}

/** When the development login was last logged as misconfigured (per isolate): a page retrying its login must not flood the log. */
let devLoginLoggedAt = -Infinity;

/** The login's 500, and one line a minute in the server's log, since a page's refresh may swallow the answer. */
export function devLoginMisconfigured(problem: string): Response {
  if (Date.now() - devLoginLoggedAt >= 60_000) {
    devLoginLoggedAt = Date.now();
    console.error(`meshgate: the development login cannot sign tokens: ${problem} (logged at most once a minute)`);
  }
  return Response.json({ error: problem }, { status: 500 });
}
