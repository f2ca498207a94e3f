/**
 * The per-tab client behind meshgate/react, without React: handler
 * registration (latest wins, the provider's own as fallback) and the
 * deferred dispose that a new holder cancels.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ClientClosedError } from '../src/client/index.js';
import type { SocketClass } from '../src/client/socket.js';
import { SharedClient, sharedClient } from '../src/react/shared-client.js';

const options = { url: 'ws://127.0.0.1:9', accessToken: 'e30.eyJzdWIiOiJhIn0.x', WebSocket: WebSocket as unknown as SocketClass, browserEvents: false };

function disposed(delayMs: number) {
  let done!: () => void;
  const gone = new Promise<void>((resolve) => (done = resolve));
  return { shared: new SharedClient(options, delayMs, done), gone };
}

describe('SharedClient', () => {
  it('a client nobody holds is disposed after the delay; its calls then reject with ClientClosedError', async () => {
    const { shared, gone } = disposed(20);
    await gone;
    expect(shared.disposed).toBe(true);
    await expect(shared.client.connect()).rejects.toBeInstanceOf(ClientClosedError);
  });

  it('a holder cancels the dispose; the last release schedules it again; a second release is a no-op', async () => {
    const { shared, gone } = disposed(30);
    const release = shared.hold();
    const second = shared.hold();
    release();
    release();
    await new Promise((resolve) => setTimeout(resolve, 80)); // well past the delay: still held by `second`
    expect(shared.disposed).toBe(false);
    second();
    await gone;
    expect(shared.disposed).toBe(true);
  });

  it('one client per key until it is disposed, then a new one', async () => {
    const first = sharedClient('key-a', options, 20);
    expect(sharedClient('key-a', { ...options, url: 'ws://ignored' }, 20)).toBe(first);
    expect(sharedClient('key-b', options, 20)).not.toBe(first);
    await new Promise<void>((resolve) => {
      const check = setInterval(() => first.disposed && (clearInterval(check), resolve()), 5);
    });
    expect(sharedClient('key-a', options, 20)).not.toBe(first);
  });

  it('registrations: the latest wins, an ended one gives the name back, the provider\'s handler is the fallback', async () => {
    const shared = new SharedClient({ ...options, handlers: { ping: () => 'from options' } }, 10_000, () => undefined);
    shared.hold(); // held for the whole test: no dispose timer left behind
    const handlers = shared.handlers as Record<string, (...args: unknown[]) => unknown>;
    expect(handlers.ping!()).toBe('from options');
    const a = { current: () => 'a' };
    const b = { current: () => 'b' };
    const endA = shared.register('ping', a);
    const endB = shared.register('ping', b);
    expect(handlers.ping!()).toBe('b');
    b.current = () => 'b, newer closure';
    expect(handlers.ping!()).toBe('b, newer closure');
    endB();
    expect(handlers.ping!()).toBe('a');
    endA();
    expect(handlers.ping!()).toBe('from options');
    const endOther = shared.register('other', { current: () => 1 });
    endOther();
    expect(Object.keys(handlers)).toEqual(['ping']);
    shared.client.disconnect();
  });
});
