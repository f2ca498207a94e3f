/** The real client in Node against the gateway on workerd. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MeshClient, MeshClientOptions } from '../../src/client/index.js';
import { startTestMesh, type TestMesh } from '../support/mesh.js';
import { waitFor } from '../support/network.js';

type Counter = {
  increment(by?: number): number;
  echo<T>(value: T): T; // generic methods lose T through Stub: cast at the call site
  returnsFunction(): unknown;
  callClient(instance: string, method: string, args: unknown[], options?: { timeoutMs?: number; ownChain?: boolean }): { ok: boolean; value?: unknown; error?: Error; isDisconnected?: boolean };
};

let mesh: TestMesh;

beforeAll(async () => {
  mesh = await startTestMesh({ graceMs: 600 });
});
afterAll(() => mesh?.dispose());

/** A client from meshgate/testing (it disconnects them all at dispose), with its callbacks logged. */
async function client(sub: string, extra: Partial<MeshClientOptions> & { connected?: boolean } = {}) {
  const events: string[] = [];
  const c = await mesh.testing.client({
    sub,
    reconnectMinDelayMs: 50,
    reconnectMaxDelayMs: 200,
    onSubscriptionRequired: () => void events.push('subscriptionRequired'),
    onSuperseded: () => void events.push('superseded'),
    onStateChange: (s) => void events.push(`state:${s}`),
    ...extra,
  });
  return { c, events };
}

/** Waits for the client to reach a state, bounded. */
async function until(c: MeshClient, state: MeshClient['state'], timeoutMs = 5000): Promise<void> {
  await mesh.testing.clientState(c, state, timeoutMs);
}

describe('MeshClient on workerd', () => {
  it('call round trip with rich values', async () => {
    const { c } = await client('rich');
    const value = { when: new Date(5), tags: new Set(['a']), map: new Map([[1n, [NaN, -Infinity, undefined]]]), bytes: new Uint8Array([1, 2, 3]), re: /x+/gi };
    const back = (await c.node<Counter>('COUNTER', 'rich').echo(value)) as typeof value;
    expect(back).toEqual(value);
    expect(back.map.get(1n)![2]).toBeUndefined();
    expect(c.instanceName).toMatch(/^rich\./);
    expect(c.state).toBe('connected');
  });

  it('a value the codec cannot carry names its part of the call: the arguments here, the return value at the node', async () => {
    const { c } = await client('unsendable');
    const counter = c.node<Counter>('COUNTER', 'unsendable');
    await expect(counter.echo(() => 1)).rejects.toThrow(/^meshgate cannot send the arguments of "echo": Cannot stringify a function/);
    const returned = await counter.returnsFunction().catch((error: unknown) => error);
    expect(returned).toBeInstanceOf(TypeError);
    expect((returned as Error).message).toMatch(/^meshgate cannot send the value returned by "returnsFunction": Cannot stringify a function.* not functions or class instances/);
    expect(c.pendingCalls).toBe(0);
  });

  it('a wrong gateway binding: after three refused attempts onError names the URL and, in Node, the HTTP status the edge answered', async () => {
    const errors: string[] = [];
    const { c } = await client('wrongbinding', { gateway: 'GATEWAYS', connected: false, onError: (e) => void errors.push((e as Error).message) });
    const call = c.node<Counter>('COUNTER', 'wrongbinding', { timeoutMs: 3000 }).increment(1).catch((error: unknown) => error);
    await waitFor(() => errors.length > 0, 'the report', 10_000);
    expect(errors[0]).toContain('3 connection attempts to ws://');
    expect(errors[0]).toContain('/gateway/GATEWAYS/');
    expect(errors[0]).toContain('Unexpected server response: 404');
    expect(c.state).toBe('reconnecting');
    // The call waiting meanwhile never left: its timeout says so, with what onError was told.
    const timedOut = (await call) as Error & { sent?: boolean };
    expect(timedOut.name).toBe('CallTimeoutError');
    expect(timedOut.sent).toBe(false);
    expect(timedOut.message).toMatch(/^Call to "increment" was never sent in 3000 ms, so it ran nowhere: the client was not connected in that time\. Last connection problem: meshgate: 3 connection attempts .*Unexpected server response: 404/);
    c.disconnect();
  });

  it('a DO calls the client and gets the answer', async () => {
    const { c } = await client('callee', { handlers: { applyChange: (n: number) => ({ applied: n * 2 }) } });
    await c.connect();
    const { c: caller } = await client('caller', { handlers: { applyChange: (n: number) => ({ applied: n + 1 }) } });
    const counter = caller.node<Counter>('COUNTER', 'cb');
    // The node starts its own chain (a broadcast it decides on): the client answers.
    expect(await counter.callClient(c.instanceName!, 'applyChange', [21], { ownChain: true })).toEqual({ ok: true, value: { applied: 42 } });
    // Relaying another client's call: the origin is that client, refused by default, saying what either side can do.
    const relayed = await counter.callClient(c.instanceName!, 'applyChange', [21]);
    expect(relayed.ok).toBe(false);
    expect(relayed.error!.name).toBe('ForbiddenError');
    expect(relayed.error!.message).toMatch(/chain started at another client.*\{ ownChain: true \}.*allowClientOrigins: true/);
    // The caller's own chain, back to the caller: its own call, answered.
    expect(await counter.callClient(caller.instanceName!, 'applyChange', [1])).toEqual({ ok: true, value: { applied: 2 } });
  });

  it('reconnects after the socket drops: no resubscribe inside the grace period, one after it', async () => {
    const { c, events } = await client('drop');
    const instance = c.instanceName!;
    expect(events.filter((e) => e === 'subscriptionRequired')).toHaveLength(1);

    mesh.testing.drop(c);
    await until(c, 'reconnecting');
    await until(c, 'connected');
    expect(events.filter((e) => e === 'subscriptionRequired')).toHaveLength(1);
    expect(await c.node<Counter>('COUNTER', 'drop').increment(1)).toBe(1);

    // Stay away until the gateway's grace period (600 ms here) has run out.
    const closesBefore = ((await mesh.state(instance)) as unknown as { closesHandled: number[] }).closesHandled.length;
    const cut = mesh.testing.cutNetwork(c);
    await until(c, 'reconnecting');
    // The gateway saw the drop (its 600 ms grace period may be over already on a loaded machine: no polling for the alarm itself).
    await waitFor(async () => ((await mesh.state(instance)) as unknown as { closesHandled: number[] }).closesHandled.length > closesBefore, 'the gateway to see the drop');
    await waitFor(async () => (await mesh.state(instance)).alarm === null, 'the grace period to end');
    cut.restore();
    await until(c, 'connected', 8000);
    expect(events.filter((e) => e === 'subscriptionRequired')).toHaveLength(2);
    expect((await mesh.state(instance)).alarm).toBeNull();
  });

  it('two clients with one instance name: the first ends superseded, the second works, and there is no reconnect war', async () => {
    const first = await client('twin', { instanceName: 'twin.same' });
    const events: string[] = [];
    const second = { c: await mesh.testing.supersede(first.c, { onSuperseded: () => void events.push('superseded') }), events };
    expect(first.events.filter((e) => e === 'superseded')).toHaveLength(1);
    // Watch for 10 s: nobody takes the identity back.
    const started = Date.now();
    const seen = new Set<string>();
    while (Date.now() - started < 10_000) {
      seen.add(`${first.c.state}/${second.c.state}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect([...seen]).toEqual(['superseded/connected']);
    expect(first.events.filter((e) => e === 'superseded')).toHaveLength(1);
    expect(second.events.filter((e) => e === 'superseded')).toHaveLength(0);
    expect(await second.c.node<Counter>('COUNTER', 'twin').increment(5)).toBe(5);
    const state = await mesh.state('twin.same');
    expect(state.open).toBe(1);
  }, 20_000);
});

