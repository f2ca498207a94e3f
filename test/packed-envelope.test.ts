/**
 * The packed envelope (src/nodes/packed-envelope.ts): a client's call reaches
 * a node of this version with its context as one JSON text, a node of an
 * earlier version with the context as objects, and either way the handler
 * sees the same context. Packing never changes a value: a context JSON would
 * not carry unchanged travels as objects.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeValue, encodeValue } from '../src/protocol/codec.js';
import type { CallContext, MeshResult } from '../src/nodes/envelope.js';
import { answerText, callText, envelopeOfText, packContext, packedContext, packedIdentity, resultOfAnswer, unpackEnvelope } from '../src/nodes/packed-envelope.js';
import { ProtocolError } from '../src/protocol/errors.js';
import { RawSocket, startTestMesh, type TestMesh } from './support/mesh.js';

const ENTRY = new URL('./fixtures/envelope-worker.ts', import.meta.url);
const NODES = { LEGACY: 'LegacyEnvelopeDO', PACKED_ONLY: 'PackedOnlyDO', PROBE: 'PackedProbeDO' };
const WORKERS = { LEGACY_WORKER: 'LegacyEnvelopeWorker', PROBE_WORKER: 'PackedProbeWorker' };

const origin = { kind: 'client' as const, gateway: 'GATEWAY', instance: 'ana.t1', sub: 'ana' };
const clientContext = (state: Record<string, unknown> = {}): CallContext => ({
  origin, caller: origin, chain: [origin], originAuth: { sub: 'ana', claims: { sub: 'ana', roles: ['a', 'b'], exp: 2 } }, state,
});
const envelopeOf = (context: string) => ({ target: { binding: 'PROBE', instance: 'p' }, method: 'context', args: '[[]]', context, deadlineMs: 1_000 });

describe('packing a context', () => {
  it('unpacks to the context it was packed from, cached identity or whole', () => {
    const context = clientContext({ n: 1, nested: { list: [1, 'two', null] } });
    const whole = packContext(context)!;
    const cached = packedContext(packedIdentity(context.origin, context.originAuth!)!, context.state);
    for (const packed of [whole, cached]) {
      const { context: unpacked } = unpackEnvelope(envelopeOf(packed));
      expect(unpacked).toEqual(context);
      expect(unpacked.caller).toBe(unpacked.origin);
      expect(unpacked.chain[0]).toBe(unpacked.origin);
    }
  });

  it('refuses what JSON would change or a chain longer than one: that context travels as objects', () => {
    const node = { kind: 'node' as const, binding: 'ROOM', instance: 'r' };
    expect(packContext({ ...clientContext(), caller: node, chain: [origin, node] })).toBeUndefined();
    expect(packContext({ ...clientContext(), extra: 1 } as CallContext)).toBeUndefined();
    for (const odd of [new Date(0), new Map(), undefined, Number.NaN, -0, 1n, [1, , 3], Object.create({ inherited: 1 })]) {
      expect(packContext(clientContext({ odd }))).toBeUndefined();
      expect(packedIdentity(origin, { sub: 'ana', claims: { odd } })).toBeUndefined();
    }
  });

  it('a packed envelope that does not unpack is a ProtocolError, not a TypeError deeper in', () => {
    for (const context of ['not json', '{"state":{}}', '{"origin":{}}', 'null', 7 as unknown as string]) {
      expect(() => unpackEnvelope(envelopeOf(context))).toThrow(ProtocolError);
    }
  });
});

describe('a call as one text', () => {
  it('reads back as the envelope it was written from, with or without an instance and a deadline', () => {
    const context = packContext(clientContext({ n: 1, quote: 'say "hi"\n' }))!;
    const args = encodeValue(['a "quoted" arg', 2, { deep: ['x'] }]);
    for (const target of [{ binding: 'PROBE', instance: 'p "1"' }, { binding: 'WORKER' }]) {
      for (const deadlineMs of [1_000, undefined]) {
        const packed = { target, method: 'context', args, context, ...(deadlineMs === undefined ? {} : { deadlineMs }) };
        expect(envelopeOfText(callText(packed))).toEqual(unpackEnvelope(packed));
      }
    }
  });

  it('a text that is not a call is a ProtocolError', () => {
    const context = packContext(clientContext())!;
    for (const text of ['not json', '[]', '{}', `["B",null,"m",null,"[[]]"]`, `["B",1,"m",null,"[[]]",${context}]`, `["B",null,"m","soon","[[]]",${context}]`,
      `["B",null,"m",null,[],${context}]`, '["B",null,"m",null,"[[]]",{"state":{}}]', 7]) {
      expect(() => envelopeOfText(text), String(text)).toThrow(ProtocolError);
    }
  });

  it('answers as one text that reads back as the result, whether the class takes bursts or not; a stream is answered as itself', () => {
    const results: MeshResult[] = [
      { ok: true, result: encodeValue('r or e') }, { ok: false, error: encodeValue(new Error('no')) },
      { ok: true, result: '[1]', acceptsBursts: true }, { ok: false, error: '[2]', acceptsBursts: true }, { ok: true, result: '' },
    ];
    for (const result of results) expect(resultOfAnswer(answerText(result))).toEqual(result);
    const stream = { ok: true as const, result: '', stream: { next: async () => ({ chunks: [] }), cancel: async () => {} } };
    expect(answerText(stream)).toBe(stream);
    expect(resultOfAnswer(stream)).toBe(stream);
    for (const answer of ['', 'x[1]', 7, null, { ok: true, result: '[1]' }]) expect(() => resultOfAnswer(answer), String(answer)).toThrow(ProtocolError);
  });
});

/** Opens a socket to the gateway of `instance` and gives a function that makes one call over it. */
async function caller(mesh: TestMesh, sockets: RawSocket[], instance: string, token: string) {
  const socket = new RawSocket(mesh.wsUrl(instance), token);
  sockets.push(socket);
  await socket.opened;
  let next = 0;
  return async (binding: string, method: string, state?: Record<string, unknown>, cancellable = false) => {
    const id = `c${next++}`;
    socket.send({ type: 'call', id, to: { binding, instance: 'one' }, method, args: encodeValue([]), ...(state ? { state } : {}), ...(cancellable ? { cancellable } : {}) });
    const answer = await socket.next((f) => f.id === id && f.type === 'call_response');
    if (!answer.ok) throw decodeValue(answer.error as string);
    return decodeValue(answer.result as string) as Record<string, unknown>;
  };
}

/** Sends `count` calls to a Worker on one socket at once (all but the first go out as one burst) and returns their answers in order. */
async function burst(mesh: TestMesh, sockets: RawSocket[], instance: string, binding: string, method: string, count: number): Promise<unknown[]> {
  const socket = new RawSocket(mesh.wsUrl(instance), await mesh.token(instance.split('.')[0]!));
  sockets.push(socket);
  await socket.opened;
  // One batch message: the gateway reads it in one turn, so every call after the first arrives while the one before runs.
  socket.send(Array.from({ length: count }, (_, n) => ({ type: 'call', id: `b${n}`, to: { binding }, method, args: encodeValue([]), state: { n } })));
  const answers: unknown[] = [];
  for (let n = 0; n < count; n++) {
    const answer = await socket.next((f) => f.id === `b${n}` && f.type === 'call_response');
    answers.push(answer.ok ? decodeValue(answer.result as string) : decodeValue(answer.error as string));
  }
  return answers;
}

for (const [gateway, what] of [['TestGateway', 'with an onBeforeCallToMesh hook'], ['PlainGateway', 'with no hooks']] as const) {
  describe(`a gateway ${what}`, () => {
    let mesh: TestMesh;
    const sockets: RawSocket[] = [];
    beforeAll(async () => {
      mesh = await startTestMesh({ entry: ENTRY, durableObjects: { ...NODES, GATEWAY: gateway }, services: WORKERS });
    });
    afterAll(async () => {
      for (const s of sockets) s.ws.terminate();
      await mesh?.dispose();
    });

    it('sends a node of this version the call as one text, and its handler sees the whole context; a cancellable call goes as the packed envelope', async () => {
      const call = await caller(mesh, sockets, 'ana.t1', await mesh.token('ana', { roles: ['reader'] }));
      const context = await call('PROBE', 'context', { room: 'lobby', enrich: true }) as unknown as CallContext;
      const self = { kind: 'client', gateway: 'GATEWAY', instance: 'ana.t1', sub: 'ana' };
      expect(context.origin).toEqual(self);
      expect(context.caller).toEqual(self);
      expect(context.chain).toEqual([self]);
      expect(context.originAuth).toMatchObject({ sub: 'ana', claims: { sub: 'ana', roles: ['reader'] } });
      // TestGateway's hook adds to the state when asked to: what it added arrives too.
      expect(context.state).toEqual(gateway === 'TestGateway' ? { room: 'lobby', enrich: true, enrichedByHook: 'ana' } : { room: 'lobby', enrich: true });
      expect(await call('PROBE', 'arrivals')).toEqual({ text: 2, packed: 0, objects: 0 });
      // its cancel watch is a stub beside the envelope, which no text can carry
      expect((await call('PROBE', 'context', { n: 1 }, true) as unknown as CallContext).state).toMatchObject({ n: 1 });
      expect(await call('PROBE', 'arrivals')).toEqual({ text: 3, packed: 1, objects: 0 });
    });

    it('sends a node of the version before call texts the packed envelope: every call runs once, with its context', async () => {
      const call = await caller(mesh, sockets, 'cy.t1', await mesh.token('cy'));
      for (let n = 0; n < 3; n++) expect(await call('PACKED_ONLY', 'whoCalled', { n })).toEqual({ sub: 'cy', state: { n } });
      expect(await call('PACKED_ONLY', 'runs')).toBe(3);
    });

    it('sends a node of an earlier version (no packed entry) the context as objects: every call runs once, with its context', async () => {
      const call = await caller(mesh, sockets, 'ben.t1', await mesh.token('ben'));
      for (let n = 0; n < 3; n++) {
        const seen = await call('LEGACY', 'whoCalled', { n });
        expect(seen).toMatchObject({ contextType: 'object', origin: { kind: 'client', sub: 'ben' }, sub: 'ben', state: { n } });
        expect(seen.chain).toEqual([seen.origin]);
      }
      expect(await call('LEGACY', 'runs')).toBe(3);
    });

    it('sends a burst to a Worker of this version packed, and each call sees its own context', async () => {
      // each from its own tab: the same call id again on one gateway would get the remembered answer
      const arrivals = async (tab: string) => (await burst(mesh, sockets, `dee.${tab}`, 'PROBE_WORKER', 'arrivals', 1))[0] as { packed: number; text: number; packedBursts: number; objectBursts: number };
      const before = await arrivals('t0');
      expect(await burst(mesh, sockets, 'dee.t1', 'PROBE_WORKER', 'sub', 20)).toEqual(Array(20).fill('dee'));
      const after = await arrivals('t2');
      // Calls that arrive while another runs go out together: all 20 arrive packed, most of them in bursts,
      // and the first, which went alone, as a call text (so did each `arrivals`).
      expect(after.packed - before.packed).toBe(20 + 1);
      expect(after.text - before.text).toBe(1 + 1);
      expect(after.packedBursts).toBeGreaterThan(before.packedBursts);
      expect(after.objectBursts).toBe(0);
    });

    it('sends a burst to a Worker of an earlier version as objects: every call runs once, with its own state', async () => {
      const before = ((await burst(mesh, sockets, 'eve.t0', 'LEGACY_WORKER', 'runs', 1))[0] as string[]).length;
      expect(await burst(mesh, sockets, 'eve.t1', 'LEGACY_WORKER', 'count', 6)).toEqual([0, 1, 2, 3, 4, 5]);
      const runs = ((await burst(mesh, sockets, 'eve.t2', 'LEGACY_WORKER', 'runs', 1))[0] as string[]).slice(before);
      expect(runs.sort()).toEqual([0, 1, 2, 3, 4, 5].map((n) => `object:eve:${n}`));
    });
  });
}

describe('a gateway whose hook puts a Date in the state', () => {
  let mesh: TestMesh;
  const sockets: RawSocket[] = [];
  beforeAll(async () => {
    mesh = await startTestMesh({ entry: ENTRY, durableObjects: { ...NODES, GATEWAY: 'DateHookGateway' } });
  });
  afterAll(async () => {
    for (const s of sockets) s.ws.terminate();
    await mesh?.dispose();
  });

  it('sends that context as objects, so the node gets the Date, not its JSON string', async () => {
    const call = await caller(mesh, sockets, 'cy.t1', await mesh.token('cy'));
    const context = await call('PROBE', 'context') as unknown as CallContext;
    expect(context.state.at).toEqual(new Date(86_400_000));
    expect(await call('PROBE', 'arrivals')).toEqual({ text: 0, packed: 0, objects: 2 });
  });
});
