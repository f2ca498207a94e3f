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

export class TokenSource {
  #token: string | undefined;
  readonly #refresh: RefreshSource | undefined;
  readonly #fetch: typeof fetch | undefined;
  /** a refresh that has not settled by then counts as failed (and is retried): a server that hangs must not hold the client in `connecting` unreported */
  readonly #timeoutMs: number;
  /** stops the refresh under way (its timer, a URL's fetch): the client was disposed while it ran */
  #stopPending: (() => void) | undefined;

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
    if (this.#token && !this.#expiresSoon(this.#token)) return this.#token;
    if (!this.#refresh) {
      if (this.#token) return this.#token; // let the server decide; it answers 4401 if it is expired
      throw new LoginRequiredError('no access token');
    }
    this.#token = await this.#fetchToken();
    return this.#token;
  }

  /** Forget the current token (the server said it expired). */
  invalidate(): void {
    if (this.#refresh) this.#token = undefined;
  }

  get canRefresh(): boolean {
    return this.#refresh !== undefined;
  }

  #expiresSoon(token: string): boolean {
    const exp = readTokenPayload(token)?.exp;
    return typeof exp === 'number' && exp * 1000 - Date.now() < 10_000;
  }

  /**
   * `work`'s result, or past the refresh timeout a TransientRefreshError
   * saying `what` did not settle (`abort` then stops it, if it can be
   * stopped). The timer goes as soon as either settles.
   */
  async #bounded<T>(work: Promise<T>, what: string, abort?: () => void): Promise<T> {
    if (!Number.isFinite(this.#timeoutMs)) return work;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        abort?.();
        reject(new TransientRefreshError(`${what} did not settle within ${this.#timeoutMs} ms (connectTimeoutMs); retrying. Is the login server answering?`));
      }, this.#timeoutMs);
    });
    const stop = (this.#stopPending = () => {
      clearTimeout(timer);
      abort?.();
    });
    try {
      return await Promise.race([work, late]);
    } finally {
      clearTimeout(timer);
      if (this.#stopPending === stop) this.#stopPending = undefined;
    }
  }

  /** The client is disposed: a refresh still under way keeps no timer (its late answer is ignored). */
  abandon(): void {
    this.#stopPending?.();
    this.#stopPending = undefined;
  }

  async #fetchToken(): Promise<string> {
    const refresh = this.#refresh!;
    if (typeof refresh === 'function') {
      let result: string | { access_token: string };
      try {
        result = await this.#bounded(Promise.resolve().then(() => refresh()), 'the refresh function');
      } catch (error) {
        // The app's function decides "log in again" by throwing LoginRequiredError; anything else is retried.
        if (error instanceof LoginRequiredError || error instanceof TransientRefreshError) throw error;
        throw new TransientRefreshError(`the refresh function threw: ${(error as Error)?.message ?? String(error)}${corsHint(error)}`, { cause: error });
      }
      const token = typeof result === 'string' ? result : result?.access_token;
      if (!token) throw new LoginRequiredError(`the refresh function returned no token${reasonIn(result)}`);
      return token;
    }
    if (!this.#fetch) throw new TypeError('No fetch available to call the refresh URL; pass a refresh function instead.');
    const abort = new AbortController();
    return this.#bounded(this.#fetchFrom(refresh, this.#fetch, abort.signal), `Token refresh from ${refresh}`, () => abort.abort());
  }

  /** A token from a refresh URL: POST, then `{ access_token }` from a 2xx (401/403: log in again). */
  async #fetchFrom(url: string, fetchImpl: typeof fetch, signal: AbortSignal): Promise<string> {
    let response: Response;
    try {
      response = await fetchImpl(url, { method: 'POST', credentials: 'include', signal });
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
