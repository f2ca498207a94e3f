/**
 * The chat example without a browser: `npm run example:node` processes, as a
 * person runs them, against the example Worker on workerd.
 */
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
// @ts-expect-error plain ESM helper shared with scripts
import { startChat } from '../scripts/example-build.mjs';
import { MeshClient } from '../src/client/index.js';
import type { SocketClass } from '../src/client/socket.js';
import type { Publication } from '../src/protocol/topics.js';
import type { ChatMessage, RoomApi } from '../examples/chat/shared.js';
import { startTerminal, type Terminal } from './support/terminal.js';
import { waitFor } from './support/network.js';

const SECRET = 'chat-example-test-secret-long-enough-for-hs256';
let server: { url: URL; dispose(): Promise<void> };
const terminals: Terminal[] = [];
const clients: MeshClient[] = [];

beforeAll(async () => {
  server = await startChat({ port: 0, graceMs: 3000, secret: SECRET });
});
afterAll(async () => {
  for (const t of terminals) t.kill();
  for (const c of clients) c.disconnect();
  await server?.dispose();
});

/** A connected client of the example, with its own handlers for what the room pushes (messages and presence come as meshgatePublication, meshgatePresence). */
async function chatClient(sub: string, handlers: object = {}): Promise<MeshClient> {
  const accessToken = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(sub).setIssuedAt().setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
  const ignore = () => {};
  const c = new MeshClient({
    url: server.url.origin, accessToken, WebSocket: WebSocket as unknown as SocketClass,
    handlers: { meshgatePublication: ignore, meshgatePresence: ignore, counter: ignore, ...handlers },
  });
  clients.push(c);
  await c.connect();
  return c;
}

describe('chat example from a terminal', () => {
  it('two Node clients join a room, talk, share the counter and see a drop healed inside the grace period', async () => {
    const bob = startTerminal(server.url.origin, 'bob', 'terminal');
    const carl = startTerminal(server.url.origin, 'carl', 'terminal');
    terminals.push(bob, carl);
    await bob.wait(/Joined room "terminal"/);
    await carl.wait(/Joined room "terminal"/);
    await bob.wait(/in the room: bob, carl/);

    bob.type('hello from bob');
    await carl.wait(/bob: hello from bob/);
    // A mistyped command is refused, not posted; "//" posts a leading slash.
    bob.type('/join lobby');
    await bob.wait(/unknown command \/join: the commands are/);
    bob.type('//join is not a command');
    await carl.wait(/bob: \/join is not a command/);
    expect(carl.output).not.toMatch(/bob: \/join lobby/);
    // Typed before the terminal has joined (the process just started): it waits for the join instead of being refused.
    const dana = startTerminal(server.url.origin, 'dana', 'terminal');
    terminals.push(dana);
    dana.type('typed at once');
    await bob.wait(/dana: typed at once/);
    expect(dana.output).not.toMatch(/not sent/);
    dana.type('/quit');
    expect(await dana.exited()).toBe(0);
    carl.type('/inc');
    await bob.wait(/counter 1 \(\+1 by carl\)/);

    bob.type('/drop');
    await bob.wait(/Reconnected after .* inside the grace period, subscriptions kept/);
    carl.type('still there?');
    await bob.wait(/carl: still there\?/);
    expect(bob.output).not.toMatch(/Resubscribed/);

    carl.type('/quit');
    expect(await carl.exited()).toBe(0);
    await bob.wait(/in the room: bob\n/); // carl left the room on /quit
  }, 60_000);
});

describe('chat example from a pipe', () => {
  it('lines piped in at once, then the end of input: each is posted and the counter moves before the process exits', async () => {
    const listener = startTerminal(server.url.origin, 'lena', 'piped');
    terminals.push(listener);
    await listener.wait(/Joined room "piped"/);
    const piped = startTerminal(server.url.origin, 'pete', 'piped');
    terminals.push(piped);
    piped.type('first piped line');
    piped.type('/inc');
    piped.type('second piped line');
    piped.endInput(); // before it has even connected
    expect(await piped.exited()).toBe(0);
    await listener.wait(/pete: second piped line/);
    expect(listener.output).toMatch(/pete: first piped line/);
    await listener.wait(/counter 1 \(\+1 by pete\)/);
    expect(piped.output).not.toMatch(/not sent|not changed/);
  }, 30_000);
});

describe('chat example under hostile use', () => {
  it('send() returns promptly while 130 subscribed tabs never answer', async () => {
    const never = () => new Promise<void>(() => {});
    const tabs = await Promise.all(Array.from({ length: 130 }, (_, i) => chatClient(`mute${i}`, { meshgatePublication: never, meshgatePresence: never, counter: never })));
    await Promise.all(tabs.map((t) => t.node<RoomApi>('ROOM', 'hostage').join()));
    const heard: string[] = [];
    const listener = await chatClient('listener', { meshgatePublication: (p: Publication<ChatMessage>) => void heard.push(p.data.text) });
    await listener.node<RoomApi>('ROOM', 'hostage').join();

    const started = Date.now();
    const { delivery } = await listener.node<RoomApi>('ROOM', 'hostage').send('anyone there?');
    const took = Date.now() - started;
    console.log(`send() with 130 silent tabs took ${took} ms; delivery ${JSON.stringify(delivery)}`);
    expect(took).toBeLessThan(1000); // awaiting each tab's answer took the 5 s delivery timeout
    expect(delivery.total).toBeGreaterThanOrEqual(1);
    expect(delivery.delivered + delivery.timedOut + delivery.dropped + delivery.failed).toBe(delivery.total);
    await waitFor(() => heard.includes('anyone there?'), 'the listening tab to get the message');
    for (const t of tabs) t.disconnect();
  }, 60_000);

  it('every method checks its arguments\' types before touching them', async () => {
    const c = await chatClient('checker');
    const room = c.node<RoomApi>('ROOM', 'checks') as unknown as Record<string, (...args: unknown[]) => Promise<unknown>>;
    await room.join!();
    // 20 characters on the wire, 2^29 slots once decoded: String() of it is a 512 MB string.
    const sparse: unknown[] = [];
    sparse.length = 2 ** 29;
    const started = Date.now();
    await expect(room.send!(sparse)).rejects.toMatchObject({ name: expect.stringMatching(/^(ValidationError|ProtocolError|LimitExceededError)$/) });
    expect(Date.now() - started).toBeLessThan(1000);
    await expect(room.send!(42)).rejects.toThrow(/must be a string, got number/);
    await expect(room.send!(null)).rejects.toThrow(/must be a string, got null/);
    await expect(room.send!({ toString: 'boom' })).rejects.toThrow(/must be a string, got object/);
    await expect(room.send!('x'.repeat(501))).rejects.toThrow(/longer than 500/);
    await expect(room.send!('   ')).rejects.toThrow(/empty/);
    for (const by of ['5', 1.5, 0, 101, -101, Number.NaN, 2n, [3]]) {
      await expect(room.increment!(by), `increment(${String(by)})`).rejects.toThrow(/whole number from -100 to 100/);
    }
    // Still answering at once, and the checks let good values through.
    expect(((await room.send!('  fine  ')) as { message: { text: string } }).message.text).toBe('fine');
    expect(((await room.increment!()) as { counter: number }).counter).toBe(1);
    expect(((await room.increment!(-3)) as { counter: number }).counter).toBe(-2);
  });

  it('only members may post or move the counter: a user none of whose tabs joined is refused, and admitted once one does', async () => {
    const member = await chatClient('insider');
    await member.node<RoomApi>('ROOM', 'members-only').join();
    const outsider = await chatClient('outsider');
    const room = outsider.node<RoomApi>('ROOM', 'members-only');
    await expect(room.send('let me in')).rejects.toMatchObject({ name: 'ForbiddenError', message: expect.stringMatching(/Only members of room "members-only" may post to it: join it first/) });
    await expect(room.increment(1)).rejects.toMatchObject({ name: 'ForbiddenError' });
    expect((await room.snapshot()).messages).toEqual([]);
    await room.join();
    expect((await room.send('now a member')).message.from).toBe('outsider');
    await room.increment(2);
    expect(await room.snapshot()).toMatchObject({ counter: 2, counterBy: 'outsider' }); // a reloaded page can say who moved it
    await room.leave();
    await expect(room.send('gone')).rejects.toMatchObject({ name: 'ForbiddenError' });
  });
});
