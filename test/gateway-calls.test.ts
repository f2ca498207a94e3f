/**
 * Client → mesh calls through the gateway on real workerd: the call context
 * comes from the verified token only, only @mesh methods are callable, only
 * mesh nodes are reachable, values keep their types end to end, and the
 * gateway gives up on a node only after its deadline and the caller's.
 */
import { describe, expect, test } from 'vitest';
import { decodeValue, encodeValue } from '../src/protocol/codec.js';
import { MethodNotExposedError, ProtocolError, UnknownBindingError } from '../src/protocol/errors.js';
import { RawSocket, callOver, useTestMesh, waitFor, withTestMesh } from './support/mesh.js';

const suite = useTestMesh();
const { sockets } = suite;

// ── helpers ───────────────────────────────────────────────────────────────────

const counter = (instance: string) => ({ binding: 'COUNTER', instance });

/** Opens a socket for `instance` with a token for its `{sub}` carrying `claims`, and waits until it is ready. */
async function connect(instance: string, claims: Record<string, unknown> = {}) {
  const sock = new RawSocket(suite.mesh.wsUrl(instance), await suite.mesh.token(instance.split('.')[0]!, claims));
  sockets.push(sock);
  await sock.ofType('connection_status');
  return sock;
}

/** The origin the gateway must build for a client connected as `instance`. */
const clientOrigin = (instance: string) => ({ kind: 'client', gateway: 'GATEWAY', instance, sub: instance.split('.')[0] });

// ── call context ──────────────────────────────────────────────────────────────

describe('the call context comes from the verified token only', () => {
  const forged = {
    origin: { kind: 'client', gateway: 'GATEWAY', instance: 'mallory.t1', sub: 'mallory' },
    caller: { kind: 'node', binding: 'ADMIN' },
    chain: [{ kind: 'node', binding: 'ADMIN' }, { kind: 'client', gateway: 'GATEWAY', instance: 'mallory.t1', sub: 'mallory' }],
    originAuth: { sub: 'mallory', claims: { admin: true } },
    context: { originAuth: { sub: 'mallory' } },
    state: { role: 'admin', theme: 'dark' },
  };

  test('forged origin, chain, originAuth and a reserved state key in the frame are replaced', async () => {
    const sock = await connect('alice.ctx1', { plan: 'pro' });
    const { ok, value: context } = await callOver(sock, counter('ctx1'), 'whoCalled', [], forged);
    expect(ok).toBe(true);

    expect(context.origin).toEqual(clientOrigin('alice.ctx1'));
    expect(context.caller).toEqual(clientOrigin('alice.ctx1'));
    expect(context.chain).toHaveLength(1);
    expect(context.chain[0]).toEqual(clientOrigin('alice.ctx1'));
    expect(context.originAuth.sub).toBe('alice');
    expect(context.originAuth.claims.sub).toBe('alice');
    expect(context.originAuth.claims.plan).toBe('pro'); // from the token
    expect(context.originAuth.claims.admin).toBeUndefined(); // not from the frame
    expect(context.state).toEqual({ theme: 'dark' }); // `role` is reserved in TestGateway
    expect(JSON.stringify(context)).not.toContain('mallory');
  });

  test('the context survives await inside the handler', async () => {
    const sock = await connect('alice.ctx2');
    expect(await callOver(sock, counter('ctx2'), 'contextAfterAwait', [], forged)).toMatchObject({ ok: true, value: 'alice' });
  });

  test('a relay hop extends the chain to 2 and keeps the origin', async () => {
    const sock = await connect('alice.ctx3');
    const { ok, value: context } = await callOver(sock, counter('ctx3'), 'relay', ['ECHO_WORKER', undefined, 'context'], forged);
    expect(ok).toBe(true);

    expect(context.origin).toEqual(clientOrigin('alice.ctx3'));
    expect(context.chain).toHaveLength(2);
    expect(context.chain[0]).toEqual(clientOrigin('alice.ctx3'));
    expect(context.chain[1]).toEqual({ kind: 'node', binding: 'COUNTER', instance: 'ctx3' });
    expect(context.caller).toEqual(context.chain[1]);
    expect(context.originAuth.sub).toBe('alice');
    expect(context.state).toEqual({ theme: 'dark' });
  });
});

// ── the allowlist ─────────────────────────────────────────────────────────────

describe('only methods marked @mesh are callable', () => {
  const refused = [
    'notExposed', 'constructor', 'toString', '__proto__', 'fetch', 'alarm', '__meshgateCall', '__meshgateCallPacked',
    '__meshgateCallBatchPacked', 'hasOwnProperty', 'valueOf', 'webSocketMessage', 'noSuchMethod',
  ];

  test.each(refused)('%s is refused with MethodNotExposedError', async (method) => {
    const sock = await connect(`alice.m-${method.replace(/\W/g, '')}`);
    const { ok, error } = await callOver(sock, counter(`m-${method}`), method, []);
    expect(ok).toBe(false);
    expect(error).toBeInstanceOf(MethodNotExposedError);
    expect(error.method).toBe(method);
  });

  test('the same names are refused on a MeshWorker', async () => {
    const sock = await connect('alice.m-worker');
    for (const method of ['constructor', 'toString', 'fetch', '__meshgateCall', '__meshgateCallPacked', 'then']) {
      const { error } = await callOver(sock, { binding: 'ECHO_WORKER' }, method, []);
      expect(error, method).toBeInstanceOf(MethodNotExposedError);
    }
    expect(await callOver(sock, { binding: 'ECHO_WORKER' }, 'shout', ['hi'])).toMatchObject({ ok: true, value: 'HI!' });
  });

  test('names that are not method names get a protocol error answer', async () => {
    const sock = await connect('alice.m-pattern');
    for (const method of ['constructor.prototype', 'to-string', '', ' fetch', 'a'.repeat(101)]) {
      const { ok, error } = await callOver(sock, counter('m-pattern'), method, []);
      expect(ok, method).toBe(false);
      expect(error, method).toBeInstanceOf(ProtocolError);
      expect(error.code, method).toBe('bad_field');
    }
  });

  test('the connection keeps working after refused calls', async () => {
    const sock = await connect('alice.m-after');
    for (const method of ['constructor', '__proto__', 'notExposed', 'constructor.prototype']) {
      expect((await callOver(sock, counter('m-after'), method, [])).ok).toBe(false);
    }
    expect(await callOver(sock, counter('m-after'), 'increment', [2])).toMatchObject({ ok: true, value: 2 });
    expect(await callOver(sock, counter('m-after'), 'increment', [3])).toMatchObject({ ok: true, value: 5 });
    expect(sock.frames.filter((f) => f.type === 'error')).toEqual([]);
  });
});

describe('only mesh nodes are reachable', () => {
  test.each([
    ['PLAIN', 'a DO that is not a mesh node', { binding: 'PLAIN', instance: 'p1' } as { binding: string; instance?: string }],
    ['GATEWAY', 'another client\'s gateway', { binding: 'GATEWAY', instance: 'bob.t1' }],
    ['NOPE', 'a binding that does not exist', { binding: 'NOPE', instance: 'x' }],
    ['JWT_SECRET', 'a plain-text binding', { binding: 'JWT_SECRET' }],
    ['COUNTER', 'a DO namespace without an instance', { binding: 'COUNTER' }],
  ])('%s (%s) → UnknownBindingError', async (binding, _what, to) => {
    const sock = await connect(`alice.b-${binding.toLowerCase()}`);
    const { ok, error } = await callOver(sock, to, 'increment', [1]);
    expect(ok).toBe(false);
    expect(error).toBeInstanceOf(UnknownBindingError);
    expect(error.binding).toBe(binding);
    expect(error.message).not.toContain('test-secret'); // the binding's value never leaks
    expect(await callOver(sock, counter(`b-${binding}`), 'increment', [1])).toMatchObject({ ok: true, value: 1 });
  });
});

// ── values ────────────────────────────────────────────────────────────────────

describe('values keep their types through CounterDO.echo', () => {
  test('Date, Map, Set, BigInt, undefined, NaN, ±Infinity, -0, Uint8Array, RegExp', async () => {
    const sock = await connect('alice.v1');
    const sent = {
      date: new Date('2026-01-02T03:04:05.678Z'),
      map: new Map<unknown, unknown>([['a', 1], [2, { b: [3] }]]),
      set: new Set(['x', 1, 'y']),
      big: 2n ** 70n,
      missing: undefined,
      nan: NaN,
      inf: Infinity,
      negInf: -Infinity,
      negZero: -0,
      bytes: new Uint8Array([0, 1, 127, 128, 255]),
      regexp: /a+b?\//gi,
    };
    const { ok, value } = await callOver(sock, counter('v1'), 'echo', [sent]);
    expect(ok).toBe(true);

    expect(value.date).toBeInstanceOf(Date);
    expect(value.date.toISOString()).toBe('2026-01-02T03:04:05.678Z');
    expect(value.map).toBeInstanceOf(Map);
    expect([...value.map]).toEqual([['a', 1], [2, { b: [3] }]]);
    expect(value.set).toBeInstanceOf(Set);
    expect([...value.set]).toEqual(['x', 1, 'y']);
    expect(value.big).toBe(2n ** 70n);
    expect('missing' in value).toBe(true);
    expect(value.missing).toBeUndefined();
    expect(value.nan).toBeNaN();
    expect(value.inf).toBe(Infinity);
    expect(value.negInf).toBe(-Infinity);
    expect(Object.is(value.negZero, -0)).toBe(true);
    expect(value.bytes).toBeInstanceOf(Uint8Array);
    expect([...value.bytes]).toEqual([0, 1, 127, 128, 255]);
    expect(value.regexp).toBeInstanceOf(RegExp);
    expect(value.regexp.source).toBe('a+b?\\/');
    expect(value.regexp.flags).toBe('gi');
  });

  test('top-level undefined and BigInt', async () => {
    const sock = await connect('alice.v2');
    const undef = await callOver(sock, counter('v2'), 'echo', [undefined]);
    expect(undef.ok).toBe(true);
    expect(undef.value).toBeUndefined();
    expect(await callOver(sock, counter('v2'), 'echo', [-(2n ** 64n)])).toMatchObject({ ok: true, value: -(2n ** 64n) });
  });

  test('a cycle and shared references', async () => {
    const sock = await connect('alice.v3');
    const shared = { n: 1 };
    const node: Record<string, unknown> = { name: 'loop', shared, again: shared };
    node.self = node;
    node.list = [node, shared];
    const { value } = await callOver(sock, counter('v3'), 'echo', [node]);

    expect(value.name).toBe('loop');
    expect(value.self).toBe(value);
    expect(value.list[0]).toBe(value);
    expect(value.shared).toEqual({ n: 1 });
    expect(value.again).toBe(value.shared);
    expect(value.list[1]).toBe(value.shared);
  });

  test('an Error with a cause and custom properties', async () => {
    const sock = await connect('alice.v4');
    const sent = new TypeError('bad input', { cause: new Error('root cause') });
    Object.assign(sent, { code: 'E_BAD', detail: { field: 'name', at: new Date(0) } });
    const { ok, value } = await callOver(sock, counter('v4'), 'echo', [sent]);
    expect(ok).toBe(true);

    expect(value).toBeInstanceOf(TypeError);
    expect(value.name).toBe('TypeError');
    expect(value.message).toBe('bad input');
    expect(value.cause).toBeInstanceOf(Error);
    expect(value.cause.message).toBe('root cause');
    expect(value.code).toBe('E_BAD');
    expect(value.detail.field).toBe('name');
    expect(value.detail.at).toEqual(new Date(0));
  });

  test('a thrown RangeError keeps its class, cause and custom property (CounterDO.fail)', async () => {
    const sock = await connect('alice.v5');
    const { ok, error } = await callOver(sock, counter('v5'), 'fail', []);
    expect(ok).toBe(false);

    expect(error).toBeInstanceOf(RangeError);
    expect(error.name).toBe('RangeError');
    expect(error.message).toBe('out of range');
    expect(error.cause).toBeInstanceOf(Error);
    expect(error.cause.message).toBe('inner');
    expect(error.detail).toEqual({ limit: 3 });
  });
});

// ── deadlines ─────────────────────────────────────────────────────────────────

describe('a node that never answers', () => {
  test('is given up after callDeadlineMs: the call gets OutcomeUnknownError and its in-flight slot is freed', async () => {
    await withTestMesh({ env: { CALL_DEADLINE_MS: '300', MAX_IN_FLIGHT: '1' } }, async (slow) => {
      const socket = new RawSocket(slow.wsUrl('uma.t'), await slow.token('uma'));
      sockets.push(socket);
      await socket.ofType('connection_status');
      socket.send({ type: 'call', id: 'h', to: { binding: 'COUNTER', instance: 'stuck' }, method: 'hold', args: encodeValue(['forever', 60_000]) });
      const answer = await socket.next((f) => f.id === 'h', 5000);
      const error = decodeValue(answer.error as string) as Error;
      expect(error.name).toBe('OutcomeUnknownError');
      expect((error.cause as Error).message).toMatch(/did not answer within 300 ms/);
      // The only slot is free again: the next call runs.
      socket.send({ type: 'call', id: 'n', to: { binding: 'COUNTER', instance: 'stuck' }, method: 'increment', args: encodeValue([1]) });
      expect(decodeValue((await socket.next((f) => f.id === 'n')).result as string)).toBe(1);
      // A resend of the given-up call is answered from memory, not run again.
      socket.send({ type: 'call', id: 'h', to: { binding: 'COUNTER', instance: 'stuck' }, method: 'hold', args: encodeValue(['forever', 60_000]) });
      await waitFor(() => socket.frames.filter((f) => f.id === 'h').length === 2, 'the remembered answer');
      socket.send({ type: 'call', id: 'r', to: { binding: 'COUNTER', instance: 'stuck' }, method: 'release', args: encodeValue(['forever']) });
      await socket.next((f) => f.id === 'r');
    });
  });
});

describe('deadlines', () => {
  test("the gateway waits at least the caller's own deadline before giving up on the node", async () => {
    await withTestMesh({ env: { CALL_DEADLINE_MS: '200' } }, async (slow) => {
      const socket = new RawSocket(slow.wsUrl('walt.t'), await slow.token('walt'));
      sockets.push(socket);
      await socket.ofType('connection_status');
      socket.send({ type: 'call', id: 'h', to: { binding: 'COUNTER', instance: 'patient' }, method: 'hold', args: encodeValue(['k', 800]), timeoutMs: 3_000 });
      expect(decodeValue((await socket.next((f) => f.id === 'h', 5000)).result as string)).toBe('k');
    });
  });
});
