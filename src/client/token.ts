/**
 * Where the access token comes from: a fixed token, or a refresh function /
 * endpoint returning `{ access_token }`. Refresh failures are told apart:
 * 401/403 means the user must log in; anything else is transient and retried.
 */
import { LoginRequiredError } from '../protocol/errors.js';

export type RefreshSource = (() => Promise<string | { access_token: string }>) | string;

export class TransientRefreshError extends Error {
  override name = 'TransientRefreshError';
}

/** Reads a JWT's payload without verifying it (the server verifies); undefined if it is not a JWT. */
export function readTokenPayload(token: string): { sub?: string; exp?: number; [claim: string]: unknown } | undefined {
  const part = token.split('.')[1];
  if (!part) return undefined;
  try {
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const json = decodeURIComponent(Array.from(atob(base64), (c) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`).join(''));
    return JSON.parse(json) as { sub?: string; exp?: number };
  } catch {
    return undefined;
  }
}

/**
 * The identity for the default instance name: the token's sub, or what
 * `identity` derives from its claims (it must match the server's
 * `auth.identity`). The client only reads the token; the server verifies.
 */
export function readTokenSubject(token: string, identity?: (claims: Record<string, unknown>) => unknown): string {
  const payload = readTokenPayload(token);
  if (!payload) throw new LoginRequiredError('the access token is not a JWT (three base64url parts: header.payload.signature)');
  const sub = identity ? identity(payload) : payload.sub;
  if (typeof sub !== 'string' || sub === '') {
    throw new LoginRequiredError(identity
      ? 'the identity option returned no string for this token; it must derive the same identity as the server\'s auth.identity'
      : 'the access token has no "sub" claim; pass instanceName, or issue tokens with a sub');
  }
  return sub;
}

/**
 * A page's fetch() rejects with a bare TypeError ("Failed to fetch") when CORS
 * refused the answer, the same as when the server is down: say where to look.
 */
function corsHint(error: unknown): string {
  const inPage = typeof (globalThis as { document?: unknown }).document !== 'undefined';
  if (!inPage || !(error instanceof TypeError)) return '';
  return ' (from a page on another origin this is usually CORS: the login or refresh URL must allow this page\'s origin — '
    + 'with meshgate\'s edge, createMeshWorker({ cors: { origins: [...] } }))';
}

/**
 * What a refresh function's answer without a token said, if it carries an
 * `error` or `message` string (what a login endpoint answers when it fails,
 * e.g. a `response.json()` of a 500): the user sees the server's reason.
 */
function reasonIn(result: unknown): string {
  if (typeof result !== 'object' || result === null) return '';
  const { error, message } = result as { error?: unknown; message?: unknown };
  const reason = typeof error === 'string' ? error : typeof message === 'string' ? message : undefined;
  return reason === undefined ? '' : ` (its answer says: ${JSON.stringify(reason.slice(0, 300))})`;
}

/** RFC 6455's token characters: anything else cannot be a subprotocol, and a browser's error for it would quote the token. */
const SUBPROTOCOL_SAFE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function checkedToken(token: string): string {
  if (!SUBPROTOCOL_SAFE.test(token)) {
    throw new LoginRequiredError('the access token has characters a WebSocket subprotocol cannot carry (a "Bearer " prefix, whitespace or quotes?): pass the bare token');
  }
  return token;
}

export class TokenSource {
  #token: string | undefined;
  readonly #refresh: RefreshSource | undefined;
  readonly #fetch: typeof fetch | undefined;
  /** a refresh that has not settled by then counts as a failed attempt: a server that hangs must not hold the client in `connecting` unreported */
  readonly #timeoutMs: number;
  /** the refresh under way: the next attempt waits for it again rather than starting another (a login popup, a rotating refresh token) */
  #inflight: { work: Promise<string>; abort: AbortController | undefined } | undefined;
  /** ends the current wait for it (the client was disposed) */
  #stopWaiting: (() => void) | undefined;

  constructor(accessToken: string | undefined, refresh: RefreshSource | undefined, fetchImpl?: typeof fetch, timeoutMs = Number.POSITIVE_INFINITY) {
    if (!accessToken && !refresh) throw new TypeError('MeshClient needs an accessToken or a refresh function/URL.');
    if (typeof refresh === 'string' && !/^https?:\/\//i.test(refresh) && typeof (globalThis as { location?: unknown }).location === 'undefined') {
      throw new TypeError(`The refresh URL "${refresh}" is relative and there is no page to resolve it against: pass an absolute URL (https://…) or a refresh function.`);
    }
    this.#token = accessToken;
    this.#refresh = refresh;
    this.#fetch = fetchImpl ?? (globalThis.fetch ? globalThis.fetch.bind(globalThis) : undefined);
    this.#timeoutMs = timeoutMs;
  }

  /** A token believed valid: the current one unless it expires within 10 s, else a refreshed one. */
  async get(): Promise<string> {
    if (this.#token && !this.#expiresSoon(this.#token)) return checkedToken(this.#token);
    if (!this.#refresh) {
      if (this.#token) return checkedToken(this.#token); // let the server decide; it answers 4401 if it is expired
      throw new LoginRequiredError('no access token');
    }
    this.#token = checkedToken(await this.#refreshed());
    return this.#token;
  }

  /** Forget the current token (the server said it expired). */
  invalidate(): void {
    if (this.#refresh) this.#token = undefined;
  }

  get canRefresh(): boolean {
    return this.#refresh !== undefined;
  }

  /** The client is disposed: a wait for the refresh ends now, with no timer left, and a URL's fetch is aborted. */
  abandon(): void {
    this.#stopWaiting?.();
    this.#inflight?.abort?.abort();
  }

  #expiresSoon(token: string): boolean {
    const exp = readTokenPayload(token)?.exp;
    return typeof exp === 'number' && exp * 1000 - Date.now() < 10_000;
  }

  /** The refresh under way, or a new one; waited for at most the refresh timeout each time. */
  #refreshed(): Promise<string> {
    if (!this.#inflight) {
      const abort = typeof this.#refresh === 'string' ? new AbortController() : undefined;
      this.#inflight = { work: this.#fetchToken(abort?.signal), abort };
      // A token that comes after its attempt stopped waiting is kept for the next attempt.
      this.#inflight.work.then((token) => {
        this.#token = token;
        this.#inflight = undefined;
      }, () => {
        this.#inflight = undefined;
      });
    }
    return this.#waitFor(this.#inflight.work, typeof this.#refresh === 'string' ? `Token refresh from ${this.#refresh}` : 'the refresh function');
  }

  /** `work`'s result, or a TransientRefreshError past the timeout (the work goes on, for the next attempt); the timer goes either way. */
  async #waitFor(work: Promise<string>, what: string): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const ended = new Promise<never>((_, reject) => {
      this.#stopWaiting = () => {
        clearTimeout(timer);
        reject(new TransientRefreshError('the client was disposed while its token refresh ran'));
      };
      if (Number.isFinite(this.#timeoutMs)) {
        timer = setTimeout(() => reject(new TransientRefreshError(`${what} did not settle within ${this.#timeoutMs} ms (connectTimeoutMs); `
          + 'the next attempt waits for it again. Is the login server answering?')), this.#timeoutMs);
      }
    });
    try {
      return await Promise.race([work, ended]);
    } finally {
      clearTimeout(timer);
      this.#stopWaiting = undefined;
    }
  }

  async #fetchToken(signal: AbortSignal | undefined): Promise<string> {
    const refresh = this.#refresh!;
    if (typeof refresh === 'function') {
      let result: string | { access_token: string };
      try {
        result = await refresh();
      } catch (error) {
        // The app's function decides "log in again" by throwing LoginRequiredError; anything else is retried.
        if (error instanceof LoginRequiredError) throw error;
        throw new TransientRefreshError(`the refresh function threw: ${(error as Error)?.message ?? String(error)}${corsHint(error)}`, { cause: error });
      }
      const token = typeof result === 'string' ? result : result?.access_token;
      if (!token) throw new LoginRequiredError(`the refresh function returned no token${reasonIn(result)}`);
      return token;
    }
    if (!this.#fetch) throw new TypeError('No fetch available to call the refresh URL; pass a refresh function instead.');
    let response: Response;
    try {
      response = await this.#fetch(refresh, { method: 'POST', credentials: 'include', signal });
    } catch (error) {
      throw new TransientRefreshError(`Token refresh failed: ${(error as Error).message}${corsHint(error)}`);
    }
    if (response.status === 401 || response.status === 403) throw new LoginRequiredError(`token refresh answered ${response.status}`);
    if (!response.ok) throw new TransientRefreshError(`Token refresh answered ${response.status}`);
    const body = (await response.json().catch(() => undefined)) as { access_token?: unknown } | undefined;
    if (typeof body?.access_token !== 'string') throw new TransientRefreshError('Token refresh answered without access_token');
    return body.access_token;
  }
}
