/**
 * Access-token verification with jose: an HS256 secret for development, a
 * public key or a JWKS URL for production. Each failure maps to the close
 * code the client acts on.
 */
import { createRemoteJWKSet, errors, importJWK, importSPKI, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { WS_CLOSE_FORBIDDEN, WS_CLOSE_INTERNAL, WS_CLOSE_TOKEN_EXPIRED } from '../protocol/close-codes.js';

type FromEnv<Env, T> = T | ((env: Env) => T | undefined);

export interface AuthOptions<Env> {
  /** HS256 shared secret (development, or simple deployments). */
  secret?: FromEnv<Env, string>;
  /** A public key: a JWK object or an SPKI PEM string. */
  publicKey?: FromEnv<Env, JWK | string>;
  /** A JWKS endpoint URL (production identity providers). */
  jwksUrl?: FromEnv<Env, string>;
  /** Algorithms accepted for public keys / JWKS (default RS256, ES256, EdDSA). */
  algorithms?: string[];
  issuer?: FromEnv<Env, string>;
  audience?: FromEnv<Env, string>;
  /**
   * Seconds a token's `nbf` may lie in the future, for clocks
   * that run a little apart (default 60). `exp` is checked without slack: the
   * gateway closes a socket when its token expires, by its own clock.
   */
  clockToleranceSeconds?: number;
}

export interface VerifiedToken {
  sub: string;
  claims: JWTPayload & Record<string, unknown>;
  exp?: number;
}

export class AuthFailure extends Error {
  constructor(readonly closeCode: number, message: string) {
    super(message);
  }
}

/** A `sub` that can be part of an instance name and a DO name: no dots, slashes or odd characters. */
export const SUB_PATTERN = /^[A-Za-z0-9_@-][A-Za-z0-9_@+-]{0,127}$/;

function read<Env, T>(value: FromEnv<Env, T> | undefined, env: Env): T | undefined {
  return typeof value === 'function' ? (value as (env: Env) => T | undefined)(env) : value;
}

const DEFAULT_CLOCK_TOLERANCE_SECONDS = 60;

const jwksCache = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

/** Failures that are the token's fault: the client's user must log in again (4403). */
const TOKEN_FAULTS = [
  errors.JWSInvalid, errors.JWSSignatureVerificationFailed, errors.JWTInvalid, errors.JOSEAlgNotAllowed,
  errors.JOSENotSupported, errors.JWKSNoMatchingKey, errors.JWKSMultipleMatchingKeys,
];

/** The server cannot verify tokens right now: close with 1011 so the client backs off and retries; log the cause. */
function serverFailure(cause: unknown): AuthFailure {
  console.error('meshgate: cannot verify access tokens:', cause);
  return new AuthFailure(WS_CLOSE_INTERNAL, 'Cannot verify tokens now');
}

async function importPublicKey(publicKey: JWK | string, algorithms: string[]) {
  const alg = typeof publicKey === 'string' ? algorithms[0]! : publicKey.alg ?? algorithms[0]!;
  try {
    return typeof publicKey === 'string' ? await importSPKI(publicKey, alg) : await importJWK(publicKey, alg);
  } catch (error) {
    throw serverFailure(new Error(`auth.publicKey does not import as ${alg} (set auth.algorithms to the key's algorithm): ${(error as Error).message}`));
  }
}

export async function verifyAccessToken<Env>(token: string, options: AuthOptions<Env>, env: Env): Promise<VerifiedToken> {
  const issuer = read(options.issuer, env);
  const audience = read(options.audience, env);
  const checks = { ...(issuer ? { issuer } : {}), ...(audience ? { audience } : {}), clockTolerance: options.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS };
  let payload: JWTPayload;
  try {
    const secret = read(options.secret, env);
    const publicKey = read(options.publicKey, env);
    const jwksUrl = read(options.jwksUrl, env);
    const algorithms = options.algorithms ?? ['RS256', 'ES256', 'EdDSA'];
    if (jwksUrl) {
      let jwks = jwksCache.get(jwksUrl);
      if (!jwks) jwksCache.set(jwksUrl, (jwks = createRemoteJWKSet(new URL(jwksUrl))));
      ({ payload } = await jwtVerify(token, jwks, { ...checks, algorithms }));
    } else if (publicKey) {
      ({ payload } = await jwtVerify(token, await importPublicKey(publicKey, algorithms), { ...checks, algorithms }));
    } else if (secret) {
      ({ payload } = await jwtVerify(token, new TextEncoder().encode(secret), { ...checks, algorithms: ['HS256'] }));
    } else {
      throw serverFailure('no key configured: set auth.secret, auth.publicKey or auth.jwksUrl');
    }
  } catch (error) {
    if (error instanceof AuthFailure) throw error;
    if (error instanceof errors.JWTExpired) throw new AuthFailure(WS_CLOSE_TOKEN_EXPIRED, 'Token expired');
    if (error instanceof errors.JWTClaimValidationFailed) throw new AuthFailure(WS_CLOSE_FORBIDDEN, `Token claim "${error.claim}" invalid`);
    if (TOKEN_FAULTS.some((fault) => error instanceof fault)) throw new AuthFailure(WS_CLOSE_FORBIDDEN, 'Token invalid');
    // Anything else is the server's side: the JWKS endpoint is down or slow, a key is misconfigured.
    // The client must retry later, not send its user to log in.
    throw serverFailure(error);
  }
  // The tolerance above applies to exp too; the gateway would close such a socket at once (4401), so refuse it here.
  if (payload.exp !== undefined && payload.exp * 1000 <= Date.now()) throw new AuthFailure(WS_CLOSE_TOKEN_EXPIRED, 'Token expired');
  if (typeof payload.sub !== 'string' || !SUB_PATTERN.test(payload.sub)) {
    throw new AuthFailure(WS_CLOSE_FORBIDDEN, 'Token has no usable sub');
  }
  return { sub: payload.sub, claims: payload as VerifiedToken['claims'], ...(payload.exp === undefined ? {} : { exp: payload.exp }) };
}
