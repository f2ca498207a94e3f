/** Checked methods (guards and Standard Schema argument/result schemas, with zod and valibot) on real workerd, from real clients. */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { MeshClient } from '../src/client/index.js';
import type { SocketClass } from '../src/client/socket.js';
import { ValidationError } from '../src/protocol/errors.js';
import type { ShopWorker, VaultDO } from './fixtures/checked-worker.js';
// @ts-expect-error plain ESM helper shared with scripts
import { startWorkerd } from '../scripts/workerd.mjs';

const SECRET = 'checked-methods-secret-long-enough-for-hs256';
let server: { url: URL; dispose(): Promise<void> };
const clients: MeshClient[] = [];

beforeAll(async () => {
  server = await startWorkerd({
    entry: new URL('./fixtures/checked-worker.ts', import.meta.url).pathname,
    durableObjects: { GATEWAY: 'CheckedGateway', VAULT: 'VaultDO', IDENTITY_LIMITER: { className: 'IdentityLimiter', useSQLite: true } },
    services: { SHOP: 'ShopWorker' },
    bindings: { JWT_SECRET: SECRET },
  });
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await server?.dispose();
});

async function client(sub: string, claims: Record<string, unknown> = {}, handlers: object = {}): Promise<MeshClient> {
  const token = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(SECRET));
  const c = new MeshClient({ url: server.url.origin, accessToken: token, WebSocket: WebSocket as unknown as SocketClass, handlers });
  clients.push(c);
  await c.connect();
  return c;
}

type Loose = Record<string, (...args: unknown[]) => Promise<unknown>>;

describe('argument schemas', () => {
  it('zod on a Durable Object: valid calls run with the schema\'s output, invalid ones answer ValidationError with paths', async () => {
    const vault = (await client('ann')).node<VaultDO>('VAULT', 'v1');
    expect(await vault.add({ name: 'pen', qty: 2 }, 'blue')).toBe('2×pen (blue)');
    expect(await (vault as unknown as Loose).add!({ name: 'pen', qty: 2 })).toBe('2×pen (none)'); // the schema's default
    const error = await (vault as unknown as Loose).add!({ name: 'x'.repeat(21), qty: -1 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ValidationError);
    expect(error).toMatchObject({ name: 'ValidationError', code: 'validation_failed', method: 'add', what: 'arguments', issueCount: 2 });
    expect((error as ValidationError).issues.map((i) => i.path)).toEqual([[0, 'name'], [0, 'qty']]);
    expect((error as ValidationError).message).toMatch(/arguments of "add" failed its schema: at \[0\]\["name"\]/);
    await expect((vault as unknown as Loose).add!({ name: 'a', qty: 1 }, 'n', 'extra')).rejects.toThrow(/expects at most 2 arguments, got 3/);
  });

  it('valibot on a Worker, from a client and from another node', async () => {
    const c = await client('bob');
    const shop = c.node<ShopWorker>('SHOP');
    expect(await shop.order('tea', 3)).toBe('3 tea by client');
    await expect((shop as unknown as Loose).order!('', 1.5)).rejects.toMatchObject({ name: 'ValidationError', issueCount: 2 });
    expect(await (shop as unknown as Loose).length!('four')).toBe(4); // a transform: the method gets the output
    const vault = c.node<VaultDO>('VAULT', 'v2');
    expect(await vault.relay(2)).toBe('2 relayed by client');
    const fromNode = await vault.relay('two').catch((e: unknown) => e);
    expect(fromNode).toBeInstanceOf(ValidationError);
    expect(fromNode).toMatchObject({ method: 'order', issues: [{ path: [1] }] });
  });

  it('issues from a hostile value are bounded in count and size', async () => {
    const vault = (await client('cat')).node<VaultDO>('VAULT', 'v3');
    const many = Array.from({ length: 5000 }, () => 'not a number');
    const error = (await (vault as unknown as Loose).sum!(many).catch((e: unknown) => e)) as ValidationError;
    expect(error.name).toBe('ValidationError');
    expect(error.issueCount).toBe(5000);
    expect(error.issues).toHaveLength(10);
    expect(JSON.stringify(error.issues).length).toBeLessThan(3000);
    const longKey = await (vault as unknown as Loose).add!({ ['k'.repeat(10_000)]: 1, name: 1, qty: 1 }).catch((e: unknown) => e);
    expect(JSON.stringify((longKey as ValidationError).issues).length).toBeLessThan(3000);
    expect(await vault.sum([1, 2, 3])).toBe(6);
  });
});

describe('guards and result schemas', () => {
  it('a method guard refuses with ForbiddenError before the method runs; the class guard covers the rest', async () => {
    const user = (await client('dan')).node<VaultDO>('VAULT', 'v4');
    await expect(user.secret()).rejects.toMatchObject({ name: 'ForbiddenError', message: expect.stringMatching(/guard of "secret" refused/) });
    const admin = (await client('eve', { role: 'admin' })).node<VaultDO>('VAULT', 'v4');
    expect(await admin.secret()).toBe('the admin secret');
  });

  it('a result schema stops a node\'s bad answer, and a client handler\'s bad answer', async () => {
    const vault = (await client('fay')).node<VaultDO>('VAULT', 'v5');
    await expect(vault.broken()).rejects.toMatchObject({ name: 'ValidationError', what: 'result', method: 'broken' });
    const yes = (await client('gus', {}, { confirm: () => true })).node<VaultDO>('VAULT', 'v5');
    expect(await yes.ask('ok?')).toBe(true);
    const liar = (await client('hal', {}, { confirm: () => 'yes' })).node<VaultDO>('VAULT', 'v5');
    await expect(liar.ask('ok?')).rejects.toMatchObject({ name: 'ValidationError', what: 'result', method: 'confirm' });
  });
});
