/**
 * The chat example without a browser: `npm run example:node` processes, as a
 * person runs them, against the example Worker on workerd.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// @ts-expect-error plain ESM helper shared with scripts
import { startChat } from '../scripts/example-build.mjs';
import { startTerminal, type Terminal } from './support/terminal.js';

let server: { url: URL; dispose(): Promise<void> };
const terminals: Terminal[] = [];

beforeAll(async () => {
  server = await startChat({ port: 0, graceMs: 3000 });
});
afterAll(async () => {
  for (const t of terminals) t.kill();
  await server?.dispose();
});

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
