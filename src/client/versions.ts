/** The client's side of version negotiation: what it offers, and whether it speaks what the server chose. */
import type { ConnectionStatusFrame } from '../protocol/frames.js';
import { checkedVersions, subprotocolOf, SUPPORTED_PROTOCOL_VERSIONS, TOKEN_SUBPROTOCOL_PREFIX, versionOf } from '../protocol/wire.js';

export class OfferedVersions {
  readonly versions: readonly number[];

  constructor(versions: readonly number[] = SUPPORTED_PROTOCOL_VERSIONS) {
    this.versions = checkedVersions(versions, 'MeshClient option protocolVersions');
  }

  /** The subprotocols a socket offers: every version, newest first, then the token. */
  subprotocols(token: string): string[] {
    return [...this.versions.map(subprotocolOf), `${TOKEN_SUBPROTOCOL_PREFIX}${token}`];
  }

  /** Why this client cannot speak what the server chose, or undefined. `selected` is the socket's `protocol` ('' or absent: not told). */
  problem(status: ConnectionStatusFrame, selected: string | undefined): string | undefined {
    const chosen = selected ? versionOf(selected) : status.protocol;
    if (chosen === undefined || !this.versions.includes(chosen)) return `server selected subprotocol "${String(selected).slice(0, 40)}", which this client does not speak`;
    if (status.protocol !== chosen) return `server selected v${chosen} but its status says v${String(status.protocol).slice(0, 12)}`;
    return undefined;
  }
}
