/** The development login: POST /auth/dev-token {"sub"} → {"access_token"}. Only mounted when `devLogin` is set. */
import { SignJWT } from 'jose';
import { SUB_PATTERN } from './auth.js';

export const DEV_TOKEN_PATH = '/auth/dev-token';

export async function issueDevToken(request: Request, secret: string, ttlSeconds: number): Promise<Response> {
  if (request.method !== 'POST') return Response.json({ error: 'POST {"sub": "alice"} to get a development token.' }, { status: 405 });
  let body: unknown;
  try {
    body = await request.json();
  } catch {
    return Response.json({ error: 'Body must be JSON: {"sub": "alice"}.' }, { status: 400 });
  }
  const sub = (body as { sub?: unknown })?.sub;
  if (typeof sub !== 'string' || !SUB_PATTERN.test(sub)) {
    return Response.json({ error: '"sub" must be 1–128 letters, digits, _, -, @ or + (no dots).' }, { status: 400 });
  }
  const token = await new SignJWT({ dev: true })
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
    .sign(new TextEncoder().encode(secret));
  return Response.json({ access_token: token, expires_in: ttlSeconds });
}
