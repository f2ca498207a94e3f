/**
 * The verified identity the edge Worker hands to the gateway in one internal
 * header. The edge strips any client-supplied copy, so the gateway can trust it.
 */
export const IDENTITY_HEADER = 'x-meshgate-identity';
/** Every header with this prefix is internal: the edge removes them from client requests. */
export const INTERNAL_HEADER_PREFIX = 'x-meshgate-';

export interface VerifiedIdentity {
  sub: string;
  claims: Record<string, unknown>;
  /** token expiry, seconds since the epoch */
  exp?: number;
  instanceName: string;
  /** the gateway binding the client connected through */
  gateway: string;
}

export function readIdentity(request: Request): VerifiedIdentity | undefined {
  const raw = request.headers.get(IDENTITY_HEADER);
  if (!raw) return undefined;
  try {
    const value = JSON.parse(raw) as VerifiedIdentity;
    return typeof value.sub === 'string' && typeof value.instanceName === 'string' ? value : undefined;
  } catch {
    return undefined;
  }
}
