/**
 * The gateway's application hooks on real workerd: onBeforeAccept,
 * onBeforeCallToMesh and onBeforeCallToClient.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeValue, encodeValue } from '../src/protocol/codec.js';
import { closeFrame, RawSocket, startTestMesh, type TestMesh } from './support/mesh.js';

const sockets: RawSocket[] = [];
afterAll(() => {
  for (const s of sockets) s.ws.terminate();
});

function open(mesh: TestMesh, instance: string, token: string): RawSocket {
  const socket = new RawSocket(mesh.wsUrl(instance), token);
  sockets.push(socket);
  return socket;
}

async function call(socket: RawSocket, id: string, method: string, args: unknown[], state?: Record<string, unknown>) {
  socket.send({ type: 'call', id, to: { binding: 'COUNTER', instance: 'hooks' }, method, args: encodeValue(args), ...(state ? { state } : {}) });
  const answer = await socket.next((f) => f.id === id && f.type === 'call_response');
  return answer.ok ? { ok: true, value: decodeValue(answer.result as string) } : { ok: false, error: decodeValue(answer.error as string) as Error };
}

describe('gateway hooks', () => {
  let mesh: TestMesh;
  beforeAll(async () => {
    mesh = await startTestMesh();
  });
  afterAll(async () => {
    await mesh?.dispose();
  });

  it('onBeforeAccept refuses a socket with 4403 and its message, and adds claims to the ones it accepts', async () => {
    const banned = open(mesh, 'mallory.t', await mesh.token('mallory', { banned: true }));
    expect(await closeFrame(banned)).toEqual({ code: 4403, reason: 'Account suspended' });
    expect((await mesh.state('mallory.t')).open).toBe(0);

    const ok = open(mesh, 'hana.t', await mesh.token('hana'));
    await ok.ofType('connection_status');
    const context = (await call(ok, 'w', 'whoCalled', [])).value as { originAuth: { claims: Record<string, unknown> } };
    expect(context.originAuth.claims.addedByHook).toBe(true);
  });

  it('onBeforeCallToMesh rejects a call with its error, or enriches the state the callee sees', async () => {
    const socket = open(mesh, 'ivan.t', await mesh.token('ivan'));
    await socket.ofType('connection_status');
    const blocked = await call(socket, 'b', 'increment', [1], { blockMe: true });
    expect(blocked.ok).toBe(false);
    expect(blocked.error!.name).toBe('ForbiddenError');
    expect(blocked.error!.message).toBe('Blocked by onBeforeCallToMesh');
    const enriched = (await call(socket, 'e', 'whoCalled', [], { enrich: true })).value as { state: Record<string, unknown> };
    expect(enriched.state).toEqual({ enrich: true, enrichedByHook: 'ivan' });
    expect((await call(socket, 'after', 'increment', [1])).ok).toBe(true); // the connection keeps working
  });

  it('onBeforeCallToClient rejects a mesh → client call before the client sees it', async () => {
    const callee = open(mesh, 'judy.t', await mesh.token('judy'));
    await callee.ofType('connection_status');
    const caller = open(mesh, 'ken.t', await mesh.token('ken'));
    await caller.ofType('connection_status');
    const result = (await call(caller, 'c', 'callClient', ['judy.t', 'forbiddenOnClient', [], { ownChain: true }])).value as { ok: boolean; error: Error };
    expect(result.ok).toBe(false);
    expect(result.error.name).toBe('ForbiddenError');
    expect(result.error.message).toBe('Blocked by onBeforeCallToClient');
    expect(callee.frames.some((f) => f.type === 'incoming_call')).toBe(false);
  });
});
