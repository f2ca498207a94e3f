/**
 * Access-token verification with jose: an HS256 secret for development, a
 * public key or a JWKS URL for production. Each failure maps to the close
 * code the client acts on.
 */
import { createRemoteJWKSet, errors, importJWK, importSPKI, jwtVerify, type CryptoKey, type JWK, type JWTPayload } from 'jose';
import { WS_CLOSE_FORBIDDEN, WS_CLOSE_INTERNAL, WS_CLOSE_TOKEN_EXPIRED } from '../protocol/close-codes.js';

type FromEnv<Env, T> = T | ((env: Env) => T | undefined);

export interface AuthOptions<Env> {
  /** HS256 shared secret (development, or simple deployments). */
  secret?: FromEnv<Env, string>;
  /** A public key: a JWK object or an SPKI PEM string. */
  publicKey?: FromEnv<Env, JWK | string>;
  /** A JWKS endpoint URL (production identity providers). */
  jwksUrl?: FromEnv<Env, string>;
  /**
   * Algorithms accepted for public keys / JWKS (default RS256, ES256, EdDSA).
   * With `publicKey`, only those the key can verify are accepted (its `alg`,
   * or its type: an RSA key accepts RS256 of the defaults); a token claiming
   * another is refused with 4403.
   */
  algorithms?: string[];
  issuer?: FromEnv<Env, string>;
  audience?: FromEnv<Env, string>;
  /**
   * Seconds a token's `nbf` may lie in the future, for clocks
   * that run a little apart (default 60). `exp` is checked without slack: the
   * gateway closes a socket when its token expires, by its own clock.
   */
  clockToleranceSeconds?: number;
  /**
   * Tokens without `exp` are refused (4403) unless this is set. Then they are
   * accepted and treated as expiring this many seconds after the upgrade: the
   * gateway closes such a socket with 4401 at its first frame past that, and
   * the client refreshes its token and reconnects.
   */
  noExpMaxAgeSeconds?: FromEnv<Env, number>;
  /**
   * The client identity from the verified claims, when your provider's `sub`
   * is not what the app wants (e.g. `(claims) => claims.email` or a custom
   * claim). Default: `sub`. The same rules apply to what it returns, and the
   * client must derive the same (MeshClient's `identity` option).
   */
  identity?: (claims: JWTPayload & Record<string, unknown>) => unknown;
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

/** The longest identity (`sub`) accepted, in UTF-16 code units: room for any provider's subject or an e-mail address. */
export const MAX_SUB_LENGTH = 512;

// C0 and C1 control characters, and a UTF-16 surrogate without its pair.
const UNPRINTABLE = /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/**
 * Why a value cannot be a client identity, or undefined if it can. Any
 * printable string a provider issues works (`auth0|5f7c…`, `alice@example.com`,
 * `github:12345`, dots and unicode included): the instance name
 * `{sub}.{tabId}` is split at its last dot, since a tab id has none.
 */
export function identityProblem(sub: unknown): string | undefined {
  if (typeof sub !== 'string' || sub === '') return 'has no "sub" claim (a non-empty string)';
  if (sub.length > MAX_SUB_LENGTH) return `has a "sub" of ${sub.length} characters; at most ${MAX_SUB_LENGTH} are accepted`;
  if (UNPRINTABLE.test(sub)) return 'has a "sub" with a control character or a broken surrogate pair';
  return undefined;
}

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

const DEFAULT_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'];

let lastFailureLog = 0;
let failuresNotLogged = 0;

/**
 * The server cannot verify tokens right now: close with 1011 so the client
 * backs off and retries. The cause is logged at most once a minute, so a
 * flood of upgrades cannot flood the logs.
 */
function serverFailure(cause: unknown): AuthFailure {
  if (Date.now() - lastFailureLog >= 60_000) {
    const skipped = failuresNotLogged ? ` (${failuresNotLogged} more since the last report)` : '';
    console.error(`meshgate: cannot verify access tokens${skipped}:`, cause);
    lastFailureLog = Date.now();
    failuresNotLogged = 0;
  } else {
    failuresNotLogged++;
  }
  return new AuthFailure(WS_CLOSE_INTERNAL, 'Cannot verify tokens now');
}

/** The shortest HS256 secret accepted, in bytes: the hash's own size (RFC 7518 §3.2); a shorter one can be brute-forced offline from any token. */
export const MIN_SECRET_BYTES = 32;

/** Why `secret` cannot sign tokens, or undefined when it can. */
export function weakSecretProblem(secret: string): string | undefined {
  const bytes = new TextEncoder().encode(secret).length;
  if (bytes >= MIN_SECRET_BYTES) return undefined;
  return `auth.secret is ${bytes} bytes; HS256 needs at least ${MIN_SECRET_BYTES}. Generate one (e.g. \`openssl rand -base64 32\`), `
    + 'put it in .dev.vars for wrangler dev and set it with `wrangler secret put JWT_SECRET` for production.';
}

/** The HS256 key; a weak secret refuses every token (1011, logged) rather than accept forgeable ones. */
function secretKey(secret: string): Uint8Array {
  const problem = weakSecretProblem(secret);
  if (problem) throw serverFailure(new Error(problem));
  return new TextEncoder().encode(secret);
}

/** A public key imported once per algorithm it can verify. */
interface PublicKeySet {
  byAlg: Map<string, CryptoKey | Uint8Array>;
  algorithms: string[];
}

const publicKeys = new Map<string, Promise<PublicKeySet>>();
const MAX_CACHED_PUBLIC_KEYS = 8;

/** The key imported for every candidate algorithm it fits; an algorithm the key's type cannot serve fails to import and is left out. */
async function importPublicKey(publicKey: JWK | string, configured: string[] | undefined): Promise<PublicKeySet> {
  const jwkAlg = typeof publicKey === 'string' ? undefined : publicKey.alg;
  const candidates = jwkAlg === undefined ? configured ?? DEFAULT_ALGORITHMS : (configured ?? [jwkAlg]).filter((alg) => alg === jwkAlg);
  const byAlg = new Map<string, CryptoKey | Uint8Array>();
  const failures: string[] = [];
  for (const alg of candidates) {
    try {
      byAlg.set(alg, typeof publicKey === 'string' ? await importSPKI(publicKey, alg) : await importJWK(publicKey, alg));
    } catch (error) {
      failures.push(`${alg}: ${(error as Error).message}`);
    }
  }
  if (byAlg.size === 0) {
    throw new Error(`auth.publicKey verifies none of the algorithms ${JSON.stringify(candidates)} (set auth.algorithms to the key's algorithm, or the key's "alg"): ${failures.join('; ')}`);
  }
  return { byAlg, algorithms: [...byAlg.keys()] };
}

/** Imported once per isolate and key (a failure too: a misconfigured key is reported once, not per upgrade). */
async function publicKeySet(publicKey: JWK | string, configured: string[] | undefined): Promise<PublicKeySet> {
  const cacheKey = `${typeof publicKey === 'string' ? publicKey : JSON.stringify(publicKey)}\n${configured?.join(',') ?? ''}`;
  let keys = publicKeys.get(cacheKey);
  if (!keys) {
    if (publicKeys.size >= MAX_CACHED_PUBLIC_KEYS) publicKeys.delete(publicKeys.keys().next().value!);
    keys = importPublicKey(publicKey, configured);
    publicKeys.set(cacheKey, keys);
    keys.catch((error) => serverFailure(error)); // logged once, when the import fails
  }
  try {
    return await keys;
  } catch {
    throw new AuthFailure(WS_CLOSE_INTERNAL, 'Cannot verify tokens now');
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
    const algorithms = options.algorithms ?? DEFAULT_ALGORITHMS;
    if (jwksUrl) {
      let jwks = jwksCache.get(jwksUrl);
      if (!jwks) jwksCache.set(jwksUrl, (jwks = createRemoteJWKSet(new URL(jwksUrl))));
      ({ payload } = await jwtVerify(token, jwks, { ...checks, algorithms }));
    } else if (publicKey) {
      // Only algorithms the key fits: a token claiming another is refused (JOSEAlgNotAllowed) before any key is used.
      const keys = await publicKeySet(publicKey, options.algorithms);
      ({ payload } = await jwtVerify(token, (header) => keys.byAlg.get(header.alg!)!, { ...checks, algorithms: keys.algorithms }));
    } else if (secret) {
      ({ payload } = await jwtVerify(token, secretKey(secret), { ...checks, algorithms: ['HS256'] }));
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
  const claims = payload as VerifiedToken['claims'];
  const sub = options.identity ? identityFromClaims(options.identity, claims) : payload.sub;
  const problem = identityProblem(sub);
  if (problem) throw new AuthFailure(WS_CLOSE_FORBIDDEN, options.identity ? `The identity auth.identity derived ${problem.replace(/"sub"/g, 'value')}` : `Token ${problem}`);
  return { sub: sub as string, claims, exp: expiryOf(payload, read(options.noExpMaxAgeSeconds, env)) };
}

function identityFromClaims(identity: NonNullable<AuthOptions<unknown>['identity']>, claims: VerifiedToken['claims']): unknown {
  try {
    return identity(claims);
  } catch (error) {
    throw serverFailure(new Error(`auth.identity threw: ${(error as Error)?.message ?? 'a non-error'}`));
  }
}

/** A socket lives no longer than its token: one without `exp` is refused, or given `noExpMaxAgeSeconds` from now. */
function expiryOf(payload: JWTPayload, noExpMaxAgeSeconds: number | undefined): number {
  if (payload.exp !== undefined) return payload.exp;
  if (noExpMaxAgeSeconds === undefined) throw new AuthFailure(WS_CLOSE_FORBIDDEN, 'Token has no exp claim; tokens must expire');
  if (!(noExpMaxAgeSeconds > 0) || !Number.isFinite(noExpMaxAgeSeconds)) {
    throw serverFailure(new RangeError(`auth.noExpMaxAgeSeconds must be a positive number of seconds, got ${String(noExpMaxAgeSeconds)}`));
  }
  return Math.floor(Date.now() / 1000) + noExpMaxAgeSeconds;
}
