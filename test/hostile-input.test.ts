/**
 * Hostile input on real workerd: every kind of bad frame gets its documented
 * answer and the connection keeps working, no prototype pollution on either
 * side, answers to incoming calls that are not waiting, and the trust
 * boundary (internal headers, odd routes). Forged context, unmarked and
 * prototype methods and unknown bindings are in gateway-calls.test.ts; the
 * token's claims in edge-claims.test.ts and edge-auth.test.ts.
 */
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { MeshClient } from '../src/client/index.js';
import { decodeValue, encodeValue } from '../src/protocol/codec.js';
import { ClientTimeoutError, ProtocolError } from '../src/protocol/errors.js';
import { DEFAULTS } from '../src/protocol/limits.js';
import { MAX_STATE_DEPTH } from '../src/protocol/wire.js';
import { FakeSocket } from './support/fake-socket.js';
import { RawSocket, callOver, callResponse, closeFrame, sendCall, useTestMesh } from './support/mesh.js';

const suite = useTestMesh();
const { sockets } = suite;

// ── helpers ───────────────────────────────────────────────────────────────────

const counter = (instance: string) => ({ binding: 'COUNTER', instance });
let socketSeq = 0;

async function connect(instance = `eve.h${++socketSeq}`, headers?: Record<string, string>) {
  const sock = new RawSocket(suite.mesh.wsUrl(instance), await suite.mesh.token(instance.split('.')[0]!), undefined, headers);
  sockets.push(sock);
  const status = await sock.ofType('connection_status');
  return { sock, status, instance };
}

/** Frames after connection_status. */
const replies = (sock: RawSocket) => sock.frames.filter((f) => f.type !== 'connection_status');

/** The socket still serves calls, and nothing but `expected` replies arrived before. */
async function stillWorks(sock: RawSocket, expectedReplies: number) {
  expect(await callOver(sock, counter('still-works'), 'echo', ['alive'])).toMatchObject({ ok: true, value: 'alive' });
  expect(replies(sock)).toHaveLength(expectedReplies + 1);
}

/** A call frame (to a Durable Object of its own per socket) with `fields` changed. */
const call = (fields: Record<string, unknown>) => JSON.stringify({ type: 'call', to: counter(`bad-${socketSeq}`), method: 'increment', args: encodeValue([1]), ...fields });
const without = (key: string, fields: Record<string, unknown>) => {
  const frame = JSON.parse(call(fields));
  delete frame[key];
  return JSON.stringify(frame);
};
const deepJson = (depth: number, leaf = '1') => '{"a":'.repeat(depth) + leaf + '}'.repeat(depth);

// ── the catalogue ─────────────────────────────────────────────────────────────

describe('frames that are not a usable call get an error frame naming the problem; the connection keeps working', () => {
  const cases: Array<[string, string | Buffer, string, string | undefined]> = [
    // name, frame, error code, id echoed
    ['invalid JSON', '{"type":"call",', 'bad_json', undefined],
    ['text that is not JSON', 'hello gateway', 'bad_json', undefined],
    ['an empty text frame', '', 'bad_json', undefined],
    ['JSON null', 'null', 'bad_frame', undefined],
    ['a JSON number', '42', 'bad_frame', undefined],
    ['a JSON string', '"call"', 'bad_frame', undefined],
    ['a JSON boolean', 'true', 'bad_frame', undefined],
    ['an empty JSON array', '[]', 'bad_frame', undefined],
    ['a batch holding a number (a batch is an array of frames: docs/protocol.md §2)', '[7]', 'bad_frame', undefined],
    ['an unknown type (with an id)', '{"type":"hello","id":"u1"}', 'unknown_type', 'u1'],
    ['a server frame type sent by the client', '{"type":"call_response","id":"u2","ok":true,"result":"[1]"}', 'unknown_type', 'u2'],
    ['"incoming_call" from the client', '{"type":"incoming_call","id":"u3","method":"x","args":"[[]]"}', 'unknown_type', 'u3'],
    ['no type', '{"id":"u4"}', 'unknown_type', 'u4'],
    ['an empty object', '{}', 'unknown_type', undefined],
    ['a numeric type', '{"type":42}', 'unknown_type', undefined],
    ['a type with the wrong case', call({ type: 'CALL', id: 'u5' }), 'unknown_type', 'u5'],
    ['a type supplied through __proto__', '{"__proto__":{"type":"call"},"id":"u6"}', 'unknown_type', 'u6'],
    ['a type whose toString is not a function', '{"type":{"toString":0},"id":"u7"}', 'unknown_type', 'u7'],
    ['a call without an id', without('id', {}), 'bad_field', undefined],
    ['a call with a numeric id', call({ id: 7 }), 'bad_field', undefined],
    ['a call with a null id', call({ id: null }), 'bad_field', undefined],
    ['a call with an empty id', call({ id: '' }), 'bad_field', undefined],
    ['a call with an id one over the limit', call({ id: 'i'.repeat(DEFAULTS.maxCallIdLength + 1) }), 'bad_field', undefined],
    ['a call with a huge id (100 000 characters)', call({ id: 'i'.repeat(100_000) }), 'bad_field', undefined],
    ['an incoming_call_response without ok', '{"type":"incoming_call_response","id":"r1","result":"[1]"}', 'bad_field', 'r1'],
    ['an incoming_call_response with ok "true"', '{"type":"incoming_call_response","id":"r2","ok":"true","result":"[1]"}', 'bad_field', 'r2'],
    ['an incoming_call_response ok without result', '{"type":"incoming_call_response","id":"r3","ok":true}', 'bad_field', 'r3'],
    ['an incoming_call_response with a numeric result', '{"type":"incoming_call_response","id":"r4","ok":true,"result":1}', 'bad_field', 'r4'],
    ['a failed incoming_call_response without error', '{"type":"incoming_call_response","id":"r5","ok":false}', 'bad_field', 'r5'],
    ['an incoming_call_response without an id', '{"type":"incoming_call_response","ok":true,"result":"[1]"}', 'bad_field', undefined],
    ['a binary frame', Buffer.from(call({ id: 'bin' })), 'binary_not_supported', undefined],
    ['an empty binary frame', Buffer.alloc(0), 'binary_not_supported', undefined],
  ];

  it.each(cases)('%s → error frame %s', async (_name, frame, code, id) => {
    const { sock } = await connect();
    sock.ws.send(frame, { binary: Buffer.isBuffer(frame) });
    const reply = await sock.next((f) => f.type !== 'connection_status');
    expect(reply.type).toBe('error');
    expect(reply.code).toBe(code);
    expect(reply.message).toEqual(expect.any(String));
    expect((reply.message as string).length).toBeGreaterThan(10);
    if (id === undefined) expect(reply).not.toHaveProperty('id');
    else expect(reply.id).toBe(id);
    await stillWorks(sock, 1);
  });
});

describe('a call with a usable id but a bad field is answered as a call, so the caller settles', () => {
  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['no to', { to: undefined }, 'to.binding'],
    ['to as a string', { to: 'COUNTER' }, 'to.binding'],
    ['to as an array', { to: ['COUNTER', 'x'] }, 'to.binding'],
    ['a numeric binding', { to: { binding: 5, instance: 'x' } }, 'to.binding'],
    ['a binding with a dot', { to: { binding: 'COUNTER.x', instance: 'x' } }, 'to.binding'],
    ['a binding named __proto__.x', { to: { binding: '__proto__.x' } }, 'to.binding'],
    ['an empty instance', { to: { binding: 'COUNTER', instance: '' } }, 'to.instance'],
    ['an instance over 256 characters', { to: { binding: 'COUNTER', instance: 'x'.repeat(257) } }, 'to.instance'],
    ['a numeric instance', { to: { binding: 'COUNTER', instance: 5 } }, 'to.instance'],
    ['no method', { method: undefined }, 'method'],
    ['a method as an array', { method: ['increment'] }, 'method'],
    ['no args', { args: undefined }, 'args'],
    ['args as a JSON array, not a codec string', { args: [1] }, 'args'],
    ['numeric args', { args: 5 }, 'args'],
    ['state as an array', { state: ['a'] }, 'state'],
    ['state as a string', { state: 'admin' }, 'state'],
    ['state as null', { state: null }, 'state'],
  ];

  it.each(cases)('%s → call_response ProtocolError bad_field', async (_name, fields, field) => {
    const { sock } = await connect();
    const id = `f-${socketSeq}`;
    sock.send(call({ id, ...fields }));
    const { ok, error } = await callResponse(sock, id);
    expect(ok).toBe(false);
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error.code).toBe('bad_field');
    expect(error.message).toContain(`"${field}"`);
    await stillWorks(sock, 1);
  });

  it.each([
    [`state ${MAX_STATE_DEPTH + 1} levels deep`, deepJson(MAX_STATE_DEPTH + 1)],
    ['state 100 000 levels deep', deepJson(100_000)],
  ])('%s is refused, answered as the call (bad_frame), without a stack overflow', async (_name, state) => {
    const { sock } = await connect();
    sock.send(call({ id: 'deep-state' }).replace(/}$/, `,"state":${state}}`));
    const { ok, error } = await callResponse(sock, 'deep-state');
    expect(ok).toBe(false);
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error.code).toBe('bad_frame');
    expect(error.message).toContain('"state"');
    await stillWorks(sock, 1);
  });

  it(`state exactly ${MAX_STATE_DEPTH} levels deep is accepted and reaches the callee`, async () => {
    const { sock } = await connect();
    const state = JSON.parse(deepJson(MAX_STATE_DEPTH, '"leaf"'));
    const { ok, value } = await callOver(sock, counter('deep-ok'), 'whoCalled', [], { state });
    expect(ok).toBe(true);
    expect(value.state).toEqual(state);
  });

  it('an id of exactly the maximum length is served', async () => {
    const { sock } = await connect();
    const id = 'm'.repeat(DEFAULTS.maxCallIdLength);
    sock.send(call({ id }));
    expect(await callResponse(sock, id)).toMatchObject({ ok: true, value: 1 });
  });

  it('deep nesting in a field the gateway ignores is refused too: no frame is parsed past 33 levels', async () => {
    const { sock } = await connect();
    sock.send(call({ id: 'deep-extra' }).replace(/}$/, `,"extra":${deepJson(100_000)}}`));
    const { ok, error } = await callResponse(sock, 'deep-extra');
    expect(ok).toBe(false);
    expect(error.code).toBe('bad_frame');
    await stillWorks(sock, 1);
  });

  it('a frame of a MiB of small nested arrays (each cheap to send, costly to parse) is refused by its id, unparsed', async () => {
    const { sock } = await connect();
    const filler = `,"x":[${Array(40_000).fill('[[[[[[[1]]]]]]]').join(',')}]`;
    sock.send(call({ id: 'many-arrays' }).replace(/}$/, `${filler}}`));
    const { ok, error } = await callResponse(sock, 'many-arrays');
    expect(ok).toBe(false);
    expect(error.code).toBe('bad_frame');
    expect(error.message).toContain('arrays and objects');
    await stillWorks(sock, 1);
  });

  it('in a batch, a frame nested too deep is refused by its id and the frames beside it run', async () => {
    const { sock } = await connect();
    const deep = call({ id: 'batch-deep' }).replace(/}$/, `,"state":${deepJson(50_000)}}`);
    sock.send(`[${call({ id: 'batch-a' })},${deep},${call({ id: 'batch-b' })}]`);
    const [a, refused, b] = await Promise.all(['batch-a', 'batch-deep', 'batch-b'].map((id) => callResponse(sock, id)));
    expect(a).toMatchObject({ ok: true });
    expect(refused!.ok).toBe(false);
    expect(refused!.error.code).toBe('bad_frame');
    expect(b).toMatchObject({ ok: true });
  });
});

describe('codec payloads that do not decode get a ProtocolError bad_payload answer', () => {
  const cases: Array<[string, string, RegExp]> = [
    ['not JSON', 'definitely not devalue', /does not decode/],
    ['truncated', encodeValue([1, 2, 3]).slice(0, -2), /does not decode/],
    ['an empty string', '', /does not decode/],
    ['a reference to a missing index', '[[5]]', /does not decode|array/],
    ['an unknown type tag', '[["NoSuchType",1],"x"]', /does not decode/],
    ['a value that is not an array', encodeValue(5), /must encode an array/],
    ['an object, not an array', encodeValue({ 0: 1, length: 1 }), /must encode an array/],
    ['an object with a __proto__ key', '[[1],{"__proto__":2},{"polluted":3},"yes"]', /__proto__/],
  ];

  it.each(cases)('args %s', async (_name, args, message) => {
    const { sock } = await connect();
    const id = sendCall(sock, counter('payload'), 'echo', [], { args });
    const { ok, error } = await callResponse(sock, id);
    expect(ok).toBe(false);
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error.code).toBe('bad_payload');
    expect(error.message).toMatch(message);
    await stillWorks(sock, 1);
  });
});

// ── prototype pollution ───────────────────────────────────────────────────────

describe('no prototype pollution on the server', () => {
  type Fresh = { keys: string[]; polluted: unknown; protoNames: string[] };
  let baseline: Fresh;

  beforeAll(async () => {
    const { sock } = await connect();
    baseline = (await callOver(sock, counter('pollution'), 'freshObject', [])).value;
    expect(baseline.keys).toEqual([]);
  });

  async function expectClean(sock: RawSocket, instance: string) {
    const { value } = await callOver(sock, counter('pollution'), 'freshObject', []);
    expect(value).toEqual(baseline);
    const gateway = (await suite.mesh.state(instance)) as unknown as { freshObject: Fresh };
    expect(gateway.freshObject).toEqual(baseline);
  }

  it('constructor / prototype keys in args arrive as plain data', async () => {
    const { sock, instance } = await connect();
    const value = { constructor: { prototype: { polluted: 'yes' } }, prototype: { polluted: 'yes' }, nested: [{ constructor: 'x' }] };
    const { ok, value: back } = await callOver(sock, counter('pollution'), 'echo', [value]);
    expect(ok).toBe(true);
    expect(back).toEqual(value);
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(Object.keys(back)).toEqual(['constructor', 'prototype', 'nested']);
    await expectClean(sock, instance);
  });

  it('__proto__, constructor and prototype keys in state, at the top and nested, pollute nothing; a top-level __proto__ is dropped', async () => {
    const { sock, instance } = await connect();
    const state = '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"prototype":{"polluted":"yes"},"theme":"dark"}';
    sock.send(call({ id: 'proto-state', method: 'whoCalled' }).replace(/}$/, `,"state":${state}}`));
    const { ok, value } = await callResponse(sock, 'proto-state');
    expect(ok).toBe(true);
    expect(Object.prototype.hasOwnProperty.call(value.state, '__proto__')).toBe(false);
    expect(value.state).toEqual({ constructor: { prototype: { polluted: 'yes' } }, prototype: { polluted: 'yes' }, theme: 'dark' });

    sock.send(call({ id: 'proto-nested', method: 'freshObject' }).replace(/}$/, ',"state":{"a":{"__proto__":{"polluted":"yes"}},"b":[{"__proto__":{"polluted":"yes"}}]}}'));
    expect((await callResponse(sock, 'proto-nested')).ok).toBe(true);
    await expectClean(sock, instance);
  });

  it('an incoming answer whose error carries constructor / prototype properties keeps its class', async () => {
    const target = await connect();
    const caller = await connect();
    const id = sendCall(caller.sock, counter('pollution'), 'callClient', [target.instance, 'applyChange', []]);
    const incoming = await target.sock.ofType('incoming_call');
    // an encoded TypeError whose own properties are { constructor: 'Object', prototype: { polluted: 'yes' }, code: 'E_X' }
    const error = '[["Error",1],[2,3,-1,4],"TypeError","bad",{"constructor":5,"prototype":6,"code":8},"Object",{"polluted":7},"yes","E_X"]';
    target.sock.send({ type: 'incoming_call_response', id: incoming.id, ok: false, error });
    const { value } = await callResponse(caller.sock, id);
    expect(value.ok).toBe(false);
    expect(value.error).toBeInstanceOf(TypeError);
    expect(value.error.constructor).toBe(TypeError);
    expect(value.error.code).toBe('E_X');
    expect(Object.prototype.hasOwnProperty.call(value.error, 'prototype')).toBe(false);
    await expectClean(caller.sock, caller.instance);
  });
});

describe('no prototype pollution in the client, and malformed gateway frames are reported, never thrown', () => {
  const TOKEN = `e30.${Buffer.from(JSON.stringify({ sub: 'alice' })).toString('base64url')}.sig`;
  const origin = { kind: 'node', binding: 'DOC', instance: 'd' };
  const before = Object.getOwnPropertyNames(Object.prototype).sort();

  afterEach(() => {
    vi.useRealTimers();
  });

  async function settle() {
    for (let i = 0; i < 20; i++) await Promise.resolve();
  }

  async function connected(handlers: Record<string, (...args: any[]) => unknown> = {}) {
    vi.useFakeTimers();
    FakeSocket.reset();
    const reported: unknown[] = [];
    const client = new MeshClient({
      url: 'ws://suite.mesh.test', accessToken: TOKEN, instanceName: 'alice.tab', WebSocket: FakeSocket, browserEvents: false, handlers,
      onError: (error) => void reported.push(error),
    });
    await settle();
    FakeSocket.last.serverOpen();
    return { client, socket: FakeSocket.last, reported };
  }

  function expectClean() {
    const fresh: Record<string, unknown> = {};
    const keys: string[] = [];
    for (const key in fresh) keys.push(key);
    expect(keys).toEqual([]);
    expect(fresh.polluted).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(before);
  }

  it('incoming args with a __proto__ key are refused (bad_payload) without running the handler; constructor / prototype arrive as data', async () => {
    const seen: unknown[] = [];
    const { client, socket } = await connected({ apply: (value: unknown) => (seen.push(value), 'ran') });
    socket.serverSend({ type: 'incoming_call', id: 'p1', method: 'apply', args: '[[1],{"__proto__":2},{"polluted":3},"yes"]', origin, chain: [origin] });
    socket.serverSend({ type: 'incoming_call', id: 'p2', method: 'apply', args: encodeValue([{ constructor: { prototype: { polluted: 'yes' } }, prototype: 1 }]), origin, chain: [origin] });
    await settle();
    const answers = socket.frames().filter((f) => f.type === 'incoming_call_response');
    const refused = answers.find((a) => a.id === 'p1')!;
    expect(refused.ok).toBe(false);
    expect(decodeValue(refused.error as string)).toMatchObject({ name: 'ProtocolError', code: 'bad_payload' });
    expect(answers.find((a) => a.id === 'p2')).toMatchObject({ ok: true });
    expect(seen).toEqual([{ constructor: { prototype: { polluted: 'yes' } }, prototype: 1 }]);
    expectClean();
    client.disconnect();
  });

  it('a call_response whose result has a __proto__ key rejects the call with ProtocolError', async () => {
    const { client, socket } = await connected();
    const pending = client.call(counter('x'), 'get', []);
    const id = socket.frames().find((f) => f.type === 'call')!.id;
    socket.serverSend({ type: 'call_response', id, ok: true, result: '[{"__proto__":1},{"polluted":2},"yes"]' });
    const error = await pending.catch((e: ProtocolError) => e);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as ProtocolError).code).toBe('bad_payload');
    expect(client.pendingCalls).toBe(0);
    expectClean();
    client.disconnect();
  });

  it('malformed frames from the gateway are reported as ProtocolError; the connection keeps working', async () => {
    const { client, socket, reported } = await connected();
    const pending = client.call(counter('x'), 'get', []);
    const id = socket.frames().find((f) => f.type === 'call')!.id as string;
    const bad = [
      'not json', 'null', '[]', '{"type":"nope"}',
      `{"type":"call_response","id":"${id}","ok":false}`, // no error: must not settle the call or throw
      `{"type":"call_response","id":"${id}","ok":true,"result":5}`,
      '{"type":"call_response","ok":true,"result":"[1]"}',
      '{"type":"incoming_call","id":"x"}',
      '{"type":"incoming_call","id":"x","method":"apply","args":"[[]]","origin":null,"chain":[]}',
      '{"type":"connection_status"}',
      '{"type":"superseded"}',
      '{"type":"error"}',
      // well formed, but only the first frame of a socket may be connection_status
      '{"type":"connection_status","subscriptionRequired":true,"instanceName":"mallory.x","sub":"mallory","protocol":1}',
    ];
    for (const frame of bad) expect(() => socket.serverSend(frame)).not.toThrow();
    await settle();
    expect(reported).toHaveLength(bad.length);
    for (const error of reported) expect(error).toBeInstanceOf(ProtocolError);
    expect(client.state).toBe('connected');
    expect(client.instanceName).toBe('alice.tab');
    expect(socket.frames().filter((f) => f.type === 'call')).toHaveLength(1); // nothing resent
    expect(client.pendingCalls).toBe(1);
    socket.serverSend({ type: 'call_response', id, ok: true, result: encodeValue('fine') });
    expect(await pending).toBe('fine');
    expect(socket.frames().filter((f) => f.type === 'incoming_call_response')).toEqual([]);
    client.disconnect();
  });
});

// ── answers to incoming calls ─────────────────────────────────────────────────

describe('answers to incoming calls that are not waiting', () => {
  it('an answer to an id never sent gets unknown_call_id and changes nothing', async () => {
    const { sock, instance } = await connect();
    sock.send({ type: 'incoming_call_response', id: 'never-sent', ok: true, result: encodeValue(1) });
    expect(await sock.ofType('error')).toMatchObject({ code: 'unknown_call_id', id: 'never-sent' });
    expect(((await suite.mesh.state(instance)) as unknown as { memory: { waiting: number } }).memory.waiting).toBe(0);
    await stillWorks(sock, 1);
  });

  it('an answer sent twice: the first settles the caller, the second gets unknown_call_id', async () => {
    const target = await connect();
    const caller = await connect();
    const id = sendCall(caller.sock, counter('twice'), 'callClient', [target.instance, 'applyChange', [1]]);
    const incoming = await target.sock.ofType('incoming_call');
    const answer = { type: 'incoming_call_response', id: incoming.id, ok: true, result: encodeValue('first') };
    target.sock.send(answer);
    target.sock.send({ ...answer, result: encodeValue('second') });
    expect((await callResponse(caller.sock, id)).value).toEqual({ ok: true, value: 'first' });
    expect(await target.sock.ofType('error')).toMatchObject({ code: 'unknown_call_id', id: incoming.id });
    await stillWorks(target.sock, 2);
    expect(caller.sock.frames.filter((f) => f.id === id)).toHaveLength(1);
  });

  it('an answer after the call timed out gets unknown_call_id; the caller already has ClientTimeoutError', async () => {
    const target = await connect();
    const caller = await connect();
    const id = sendCall(caller.sock, counter('late'), 'callClient', [target.instance, 'applyChange', [1], { timeoutMs: 200 }]);
    const incoming = await target.sock.ofType('incoming_call');
    const { value } = await callResponse(caller.sock, id);
    expect(value.error).toBeInstanceOf(ClientTimeoutError);
    target.sock.send({ type: 'incoming_call_response', id: incoming.id, ok: true, result: encodeValue('late') });
    expect(await target.sock.ofType('error')).toMatchObject({ code: 'unknown_call_id', id: incoming.id });
    await stillWorks(target.sock, 2);
  });

  it('an answer whose payload does not decode reaches the caller as ProtocolError bad_payload', async () => {
    const target = await connect();
    const caller = await connect();
    const id = sendCall(caller.sock, counter('garbled'), 'callClient', [target.instance, 'applyChange', [1]]);
    const incoming = await target.sock.ofType('incoming_call');
    target.sock.send({ type: 'incoming_call_response', id: incoming.id, ok: true, result: 'garbled[' });
    const { value } = await callResponse(caller.sock, id);
    expect(value.ok).toBe(false);
    expect(value.error).toBeInstanceOf(ProtocolError);
    expect(value.error.code).toBe('bad_payload');
    await stillWorks(target.sock, 1);
  });
});

// ── the trust boundary ────────────────────────────────────────────────────────

describe('client-supplied internal headers never reach the gateway', () => {
  const forgedIdentity = JSON.stringify({ sub: 'mallory', claims: { sub: 'mallory', admin: true }, instanceName: 'alice.hdr1', gateway: 'GATEWAY' });
  const forgedHeaders = {
    'x-meshgate-identity': forgedIdentity,
    'X-MeshGate-Identity-2': forgedIdentity,
    'X-MESHGATE-CLAIMS': '{"admin":true}',
    'x-meshgate-origin': 'mallory',
  };

  it('the identity comes from the token: connection_status and the call context name the token\'s sub', async () => {
    const { sock, status } = await connect('alice.hdr1', forgedHeaders);
    expect(status).toMatchObject({ sub: 'alice', instanceName: 'alice.hdr1' });
    const { value: context } = await callOver(sock, counter('hdr'), 'whoCalled', []);
    expect(context.originAuth.sub).toBe('alice');
    expect(context.originAuth.claims.admin).toBeUndefined();
    expect(context.origin).toMatchObject({ kind: 'client', sub: 'alice', instance: 'alice.hdr1' });
    expect(JSON.stringify(context)).not.toContain('mallory');

    const { internalHeadersSeen } = (await suite.mesh.state('alice.hdr1')) as unknown as { internalHeadersSeen: string[][] };
    expect(internalHeadersSeen).toEqual([['x-meshgate-identity']]); // only the edge's own, once
  });

  it('a forged identity header cannot open another sub\'s gateway', async () => {
    const sock = new RawSocket(suite.mesh.wsUrl('mallory.hdr2'), await suite.mesh.token('alice'), undefined, {
      'x-meshgate-identity': JSON.stringify({ sub: 'mallory', claims: {}, instanceName: 'mallory.hdr2', gateway: 'GATEWAY' }),
    });
    sockets.push(sock);
    expect((await closeFrame(sock)).code).toBe(4403);
    expect(await suite.mesh.state('mallory.hdr2')).toMatchObject({ sockets: 0, internalHeadersSeen: [] });
  });
});

describe('odd gateway routes', () => {
  it.each([
    ['/gateway/%E0%A4%A/alice.t1', 404],
    ['/gateway/%ZZ/alice.t1', 404],
    ['/gateway/__proto__/alice.t1', 404],
    ['/gateway/hasOwnProperty/alice.t1', 404],
    ['/gateway/GATEWAY%00/alice.t1', 404],
  ])('%s → %i, not a crash', async (path, status) => {
    const res = await fetch(new URL(path, suite.mesh.url));
    expect(res.status).toBe(status);
    expect(await res.text()).toMatch(/^Unknown gateway binding/);
  });

  it('an upgrade with a malformed instance name is refused with 4403; a good one still connects', async () => {
    const bad = new RawSocket(`ws://${suite.mesh.url.host}/gateway/GATEWAY/%E0%A4%A`, await suite.mesh.token('alice'));
    sockets.push(bad);
    expect(await closeFrame(bad)).toEqual({ code: 4403, reason: 'Bad instance name' });
    const { status } = await connect('alice.route1');
    expect(status.sub).toBe('alice');
  });
});
