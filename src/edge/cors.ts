/**
 * Cross-origin access to the edge's HTTP routes (the development login and
 * the application's own routes, such as a token refresh URL), for pages
 * served from another origin — a Vite dev server, or an app on its own
 * domain. WebSocket upgrades are not subject to CORS and are not affected.
 *
 * Only listed origins are allowed, and each is echoed back with
 * credentials allowed: a wildcard would let any site read a token that a
 * cookie-authenticated refresh URL hands out.
 */
export interface CorsOptions<Env> {
  /** exact origins (`scheme://host[:port]`), or a function deciding per request */
  origins: readonly string[] | ((origin: string, env: Env) => boolean);
  /** request headers a page may send (default: content-type, authorization) */
  allowHeaders?: readonly string[];
  /** how long a browser may cache a preflight answer, seconds (default 600) */
  maxAgeSeconds?: number;
}

const DEFAULT_ALLOWED_HEADERS = ['content-type', 'authorization'];
const ALLOWED_METHODS = 'GET, POST, OPTIONS';

export class CorsPolicy<Env> {
  readonly #options: CorsOptions<Env>;

  constructor(options: CorsOptions<Env>) {
    if (!Array.isArray(options.origins) && typeof options.origins !== 'function') {
      throw new TypeError('cors.origins must be a list of origins (e.g. ["http://localhost:5173"]) or a function (origin, env) => boolean.');
    }
    for (const origin of Array.isArray(options.origins) ? options.origins : []) {
      if (origin === '*' || origin !== new URL(origin).origin) {
        throw new TypeError(`cors.origins: "${origin}" is not an origin; list each one as scheme://host[:port] with no path (a wildcard is not allowed: credentials are).`);
      }
    }
    this.#options = options;
  }

  /** The request's Origin if it is allowed, else undefined. */
  allowedOrigin(request: Request, env: Env): string | undefined {
    const origin = request.headers.get('Origin');
    if (!origin) return undefined;
    const { origins } = this.#options;
    const allowed = typeof origins === 'function' ? origins(origin, env) : origins.includes(origin);
    return allowed ? origin : undefined;
  }

  /** The answer to a preflight (OPTIONS with Access-Control-Request-Method), or undefined for any other request. */
  preflight(request: Request, env: Env): Response | undefined {
    if (request.method !== 'OPTIONS' || !request.headers.has('Access-Control-Request-Method')) return undefined;
    const origin = this.allowedOrigin(request, env);
    // An origin not listed gets no CORS headers: the browser then refuses the request and says so in its console.
    if (!origin) return new Response(null, { status: 204, headers: { Vary: 'Origin' } });
    return new Response(null, {
      status: 204,
      headers: {
        ...this.#originHeaders(origin),
        'Access-Control-Allow-Methods': ALLOWED_METHODS,
        'Access-Control-Allow-Headers': (this.#options.allowHeaders ?? DEFAULT_ALLOWED_HEADERS).join(', '),
        'Access-Control-Max-Age': String(this.#options.maxAgeSeconds ?? 600),
      },
    });
  }

  /** `response` with the CORS headers the request's origin is entitled to. */
  apply(request: Request, env: Env, response: Response): Response {
    const origin = this.allowedOrigin(request, env);
    if (response.status === 101) return response;
    // Responses from fetch() have immutable headers: copy.
    const answer = new Response(response.body, response);
    answer.headers.append('Vary', 'Origin');
    if (origin) for (const [name, value] of Object.entries(this.#originHeaders(origin))) answer.headers.set(name, value);
    return answer;
  }

  #originHeaders(origin: string): Record<string, string> {
    return { 'Access-Control-Allow-Origin': origin, 'Access-Control-Allow-Credentials': 'true', Vary: 'Origin' };
  }
}
