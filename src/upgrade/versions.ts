/** Version negotiation in the upgrade: which offered subprotocol is selected, and what a refused client is told. */
import { RESERVED_PROTOCOL_VERSION, subprotocolOf, SUPPORTED_PROTOCOL_VERSIONS, TOKEN_SUBPROTOCOL_PREFIX, versionOf } from '../protocol/wire.js';
import { offeredSubprotocols } from './responses.js';

/** The subprotocol of the newest accepted version the client offers, or undefined. */
export function negotiate(offered: readonly string[], accepted: readonly number[]): string | undefined {
  const versions = offered.map(versionOf).filter((v): v is number => v !== undefined && accepted.includes(v));
  return versions.length === 0 ? undefined : subprotocolOf(Math.max(...versions));
}

/** The 4426 reason (closeReason cuts it to 123 bytes): what the client offered, what the server speaks, what to do. */
export function refusedVersionReason(offered: readonly string[], accepted: readonly number[]): string {
  const names = offered.filter((p) => !p.startsWith(TOKEN_SUBPROTOCOL_PREFIX)).slice(0, 3).map((p) => p.slice(0, 24));
  const speaks = accepted.map((v) => `v${v}`).join(', ');
  return `Unsupported protocol (offered ${names.join(', ') || 'only the token'}; server speaks ${speaks}): reload the page to update`;
}

/** The version the edge negotiated, from the one subprotocol it forwards to the gateway; undefined if this code cannot speak it. */
export function forwardedVersion(request: Request): number | undefined {
  const [only, ...more] = offeredSubprotocols(request);
  const version = only === undefined || more.length > 0 ? undefined : versionOf(only);
  return version !== undefined && (SUPPORTED_PROTOCOL_VERSIONS.includes(version) || version === RESERVED_PROTOCOL_VERSION) ? version : undefined;
}
