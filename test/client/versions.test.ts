/** The client's side of negotiation, as a pure unit: what it offers, and what it refuses to speak. */
import { describe, expect, it } from 'vitest';
import { OfferedVersions } from '../../src/client/versions.js';
import type { ConnectionStatusFrame } from '../../src/protocol/frames.js';
import { negotiate } from '../../src/upgrade/versions.js';
import { versionOf } from '../../src/protocol/wire.js';

const status = (protocol: number): ConnectionStatusFrame => ({ type: 'connection_status', subscriptionRequired: true, instanceName: 'a.t', sub: 'a', protocol });

describe('versions', () => {
  it('the client offers every version newest first, then the token; the default is v1 (`meshgate`) only', () => {
    expect(new OfferedVersions().subprotocols('jwt')).toEqual(['meshgate', 'meshgate.token.jwt']);
    expect(new OfferedVersions([1, 2]).subprotocols('jwt')).toEqual(['meshgate.v2', 'meshgate', 'meshgate.token.jwt']);
  });

  it('a version this release cannot speak, a duplicate or an empty list fails at construction with what to do', () => {
    for (const bad of [[3], [1, 1], [], [0], [1.5]]) expect(() => new OfferedVersions(bad)).toThrow(/protocolVersions must list distinct protocol versions among 1, 2/);
  });

  it('the client accepts only what it offered, and a status that agrees with the selected subprotocol', () => {
    const v21 = new OfferedVersions([2, 1]);
    expect(v21.problem(status(2), 'meshgate.v2')).toBeUndefined();
    expect(v21.problem(status(1), 'meshgate')).toBeUndefined();
    expect(v21.problem(status(1), undefined)).toBeUndefined(); // a socket that does not tell: the status decides
    expect(new OfferedVersions([1]).problem(status(2), 'meshgate.v2')).toMatch(/selected subprotocol "meshgate.v2", which this client does not speak/);
    expect(v21.problem(status(1), 'meshgate.v2')).toMatch(/selected v2 but its status says v1/);
    expect(new OfferedVersions([1]).problem(status(3), '')).toMatch(/does not speak/);
  });

  it('the server picks the newest common version whatever the order offered; names that are no version never match', () => {
    expect(negotiate(['meshgate', 'meshgate.v2', 'meshgate.token.x'], [2, 1])).toBe('meshgate.v2');
    expect(negotiate(['meshgate.v2', 'meshgate'], [1])).toBe('meshgate');
    expect(negotiate(['meshgate.v2'], [1])).toBeUndefined();
    expect(['meshgate.v1', 'meshgate.v0', 'meshgate.v02', 'meshgate.v99999', 'meshgate.token.v2', 'Meshgate'].map(versionOf)).toEqual(Array(6).fill(undefined));
  });
});
