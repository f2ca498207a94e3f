/** MeshClient around its connection core, over a fake socket and fake timers (connection.test.ts checks the core's table on its own). */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { MeshClient, type ConnectionState, type MeshClientOptions } from '../../src/client/index.js';
import { Backoff } from '../../src/client/backoff.js';
import { encodeValue, decodeValue } from '../../src/protocol/codec.js';
import { CallTimeoutError, LimitExceededError, OutcomeUnknownError, SupersededError, ClientClosedError, LoginRequiredError, TokenExpiredError } from '../../src/protocol/errors.js';
import { FakeSocket } from '../support/fake-socket.js';

// A JWT-shaped token with sub "alice" and no exp (the client only reads it).
const TOKEN = `e30.${Buffer.from(JSON.stringify({ sub: 'alice' })).toString('base64url')}.sig`;

function makeClient(extra: Partial<MeshClientOptions> = {}) {
  const states: ConnectionState[] = [];
  const events: string[] = [];
  const client = new MeshClient({
    url: 'ws://mesh.test',
    accessToken: TOKEN,
    instanceName: 'alice.tab',
    WebSocket: FakeSocket,
    browserEvents: false,
    onStateChange: (s) => states.push(s),
    onSubscriptionRequired: () => void events.push('subscribe'),
    onSuperseded: () => void events.push('superseded'),
    onLoginRequired: (reason) => void events.push(`login:${reason}`),
    ...extra,
  });
  return { client, states, events };
}

/** Lets the client's awaited token/tab promises run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

/** Opens the socket and sends the gateway's status with an epoch. */
function sendStatus(socket: FakeSocket, epoch: string, subscriptionRequired = false): void {
  socket.readyState = 1;
  socket.onopen?.({});
  socket.serverSend({ type: 'connection_status', subscriptionRequired, instanceName: 'alice.tab', sub: 'alice', protocol: 1, epoch });
}

beforeEach(() => {
  vi.useFakeTimers();
  FakeSocket.reset();
});
afterEach(() => {
  vi.useRealTimers();
});

describe("a replaced socket's late events", () => {
  it("an old socket's 4409 close does not clobber the new connection", async () => {
    const { client, states } = makeClient();
    await settle();
    const first = FakeSocket.last;
    first.serverOpen();
    // The network drops silently; the heartbeat finds it dead and the client reconnects.
    first.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    const second = FakeSocket.last;
    expect(second).not.toBe(first);
    second.serverOpen(false);
    expect(client.state).toBe('connected');
    // The gateway closes the old socket with 4409 late: nothing changes.
    first.onclose?.({ code: 4409, reason: 'Superseded by new connection' });
    first.onmessage?.({ data: JSON.stringify({ type: 'superseded', reason: 'x' }) });
    expect(client.state).toBe('connected');
    expect(states).not.toContain('superseded');
    expect(FakeSocket.instances).toHaveLength(2);
    client.disconnect();
  });

  it('a normal close on the current socket schedules a reconnect', async () => {
    const { client } = makeClient();
    await settle();
    FakeSocket.last.serverOpen();
    FakeSocket.last.serverClose(1001, 'going away');
    expect(client.state).toBe('reconnecting');
    expect(FakeSocket.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeSocket.instances).toHaveLength(2);
    client.disconnect();
  });
});

describe('onConnected', () => {
  it('reports every connection, the first one marked, before onSubscriptionRequired', async () => {
    const seen: string[] = [];
    const { client } = makeClient({
      onConnected: ({ subscriptionRequired, firstConnection }) => void seen.push(`connected:${firstConnection}:${subscriptionRequired}`),
      onSubscriptionRequired: () => void seen.push('subscribe'),
    });
    await settle();
    FakeSocket.last.serverOpen(false); // a reload: the gateway still remembers this tab id
    FakeSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    FakeSocket.last.serverOpen(true);
    expect(seen).toEqual(['connected:true:false', 'connected:false:true', 'subscribe']);
    client.disconnect();
  });
});

describe('backoff', () => {
  it('doubles to the cap, with jitter inside [base/2, base]', () => {
    for (const r of [0, 0.5, 0.999]) {
      const backoff = new Backoff(1000, 30_000, () => r);
      const delays = Array.from({ length: 8 }, () => backoff.next());
      const bases = [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
      delays.forEach((d, i) => {
        expect(d).toBeGreaterThanOrEqual(bases[i]! / 2);
        expect(d).toBeLessThanOrEqual(bases[i]!);
      });
    }
    const randomBackoff = new Backoff(1000, 30_000);
    const seen = new Set(Array.from({ length: 20 }, () => { randomBackoff.reset(); return randomBackoff.next(); }));
    expect(seen.size).toBeGreaterThan(1); // jitter really varies
  });

  it('the client waits longer after each failed attempt and resets after connecting', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.999);
    const { client } = makeClient();
    await settle();
    const waits: number[] = [];
    for (let i = 0; i < 4; i++) {
      const before = FakeSocket.instances.length;
      FakeSocket.last.serverClose(1006);
      let waited = 0;
      while (FakeSocket.instances.length === before && waited < 60_000) {
        await vi.advanceTimersByTimeAsync(100);
        waited += 100;
      }
      waits.push(waited);
    }
    expect(waits).toEqual([1000, 2000, 4000, 8000]);
    FakeSocket.last.serverOpen();
    FakeSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(999);
    const count = FakeSocket.instances.length;
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeSocket.instances.length).toBe(count + 1);
    client.disconnect();
    vi.mocked(Math.random).mockRestore();
  });
});

describe('supersession', () => {
  it('4409 on the current socket ends in superseded, with no reconnect', async () => {
    const { client, events } = makeClient();
    await settle();
    FakeSocket.last.serverOpen();
    FakeSocket.last.serverClose(4409, 'Superseded by new connection');
    expect(client.state).toBe('superseded');
    expect(events).toContain('superseded');
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeSocket.instances).toHaveLength(1);
    await expect(client.node<{ call(): void }>('COUNTER', 'x').call()).rejects.toBeInstanceOf(SupersededError);
    client.disconnect();
  });

  it('the in-band superseded frame acts at once; the late close is then ignored', async () => {
    const { client, events } = makeClient();
    await settle();
    const socket = FakeSocket.last;
    socket.serverOpen();
    const pending = client.node<{ slow(): number }>('COUNTER', 'x').slow();
    socket.serverSend({ type: 'superseded', reason: 'Superseded by new connection' });
    expect(client.state).toBe('superseded');
    await expect(pending).rejects.toBeInstanceOf(SupersededError);
    socket.serverClose(4409);
    expect(events.filter((e) => e === 'superseded')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.instances).toHaveLength(1);
  });
});

describe('heartbeat', () => {
  it('pings every interval; a missing pong closes the socket and reconnects', async () => {
    const { client } = makeClient({ heartbeatIntervalMs: 30_000, heartbeatTimeoutMs: 10_000 });
    await settle();
    const socket = FakeSocket.last;
    socket.serverOpen();
    // one ping at once on open (a refusing edge closes at the first frame), then one per interval
    expect(socket.sent.filter((s) => s === 'meshgate:ping')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(socket.sent.filter((s) => s === 'meshgate:ping')).toHaveLength(2);
    socket.serverSend('meshgate:pong');
    await vi.advanceTimersByTimeAsync(30_000);
    expect(socket.sent.filter((s) => s === 'meshgate:ping')).toHaveLength(3);
    // no pong this time
    await vi.advanceTimersByTimeAsync(10_000);
    expect(socket.closedWith?.code).toBe(4000);
    expect(client.state).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeSocket.instances).toHaveLength(2);
    // the dead socket's close arriving later changes nothing
    socket.serverClose(1006);
    FakeSocket.last.serverOpen(false);
    expect(client.state).toBe('connected');
    client.disconnect();
  });
});

describe('disconnect is final', () => {
  it('a disposed client stays disposed after an online event, timers and late socket events', async () => {
    const listeners = new Map<string, () => void>();
    const fakeWindow = {
      addEventListener: (type: string, fn: () => void) => listeners.set(type, fn),
      removeEventListener: (type: string) => listeners.delete(type),
    };
    vi.stubGlobal('window', fakeWindow);
    try {
      const { client, states } = makeClient({ browserEvents: true });
      await settle();
      expect(listeners.has('online')).toBe(true);
      const socket = FakeSocket.last;
      socket.serverOpen();
      socket.serverClose(1006);
      const online = listeners.get('online')!;
      client[Symbol.dispose]();
      expect(listeners.size).toBe(0); // listeners removed
      online(); // a late event from a listener captured before removal
      socket.serverClose(1006);
      await vi.advanceTimersByTimeAsync(120_000);
      expect(FakeSocket.instances).toHaveLength(1);
      expect(client.state).toBe('disconnected');
      expect(states.at(-1)).toBe('disconnected');
      await expect(client.connect()).rejects.toBeInstanceOf(ClientClosedError);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('an online event reconnects at once instead of waiting out the backoff', async () => {
    const listeners = new Map<string, () => void>();
    vi.stubGlobal('window', { addEventListener: (t: string, f: () => void) => listeners.set(t, f), removeEventListener: (t: string) => listeners.delete(t) });
    try {
      const { client } = makeClient({ browserEvents: true, reconnectMinDelayMs: 20_000 });
      await settle();
      FakeSocket.last.serverOpen();
      FakeSocket.last.serverClose(1006);
      expect(FakeSocket.instances).toHaveLength(1);
      listeners.get('online')!();
      await settle();
      expect(FakeSocket.instances).toHaveLength(2);
      client.disconnect();
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('focus and visibilitychange to visible reconnect at once; a hidden tab waits out the backoff', async () => {
    const listeners = new Map<string, () => void>();
    const target = { addEventListener: (t: string, f: () => void) => listeners.set(t, f), removeEventListener: (t: string) => listeners.delete(t) };
    const doc = { ...target, visibilityState: 'hidden' };
    vi.stubGlobal('window', target);
    vi.stubGlobal('document', doc);
    try {
      const { client } = makeClient({ browserEvents: true, reconnectMinDelayMs: 20_000 });
      await settle();
      FakeSocket.last.serverOpen();
      FakeSocket.last.serverClose(1006);
      listeners.get('visibilitychange')!(); // still hidden: nothing
      await settle();
      expect(FakeSocket.instances).toHaveLength(1);
      doc.visibilityState = 'visible';
      listeners.get('visibilitychange')!();
      await settle();
      expect(FakeSocket.instances).toHaveLength(2);
      FakeSocket.last.serverOpen();
      FakeSocket.last.serverClose(1006);
      listeners.get('focus')!();
      await settle();
      expect(FakeSocket.instances).toHaveLength(3);
      client.disconnect();
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('disconnect() called from onStateChange leaves no timer and opens no socket', async () => {
    const holder: { client?: MeshClient } = {};
    const { client } = makeClient({ onStateChange: (s) => { if (s === 'reconnecting') holder.client?.disconnect(); } });
    holder.client = client;
    await settle();
    FakeSocket.last.serverOpen();
    FakeSocket.last.serverClose(1006);
    expect(client.state).toBe('disconnected');
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeSocket.instances).toHaveLength(1);
  });

  it('a refresh that resolves after disconnect() opens no socket', async () => {
    let release!: (token: string) => void;
    const { client } = makeClient({ accessToken: undefined, refresh: () => new Promise<string>((r) => (release = r)) });
    await settle();
    client.disconnect();
    release(TOKEN);
    await settle();
    expect(FakeSocket.instances).toHaveLength(0);
  });

  it('two overlapping connect() calls open one socket', async () => {
    const { client } = makeClient({ autoConnect: false });
    await Promise.all([client.connect(), client.connect(), settle().then(() => FakeSocket.last.serverOpen())]);
    expect(FakeSocket.instances).toHaveLength(1);
    void client.connect();
    await settle();
    expect(FakeSocket.instances).toHaveLength(1);
    client.disconnect();
  });
});

describe('tokens', () => {
  it('4401 refreshes the token and reconnects with the new one', async () => {
    let n = 0;
    const refresh = vi.fn(async () => `e30.${Buffer.from(JSON.stringify({ sub: 'alice', n: ++n })).toString('base64url')}.sig`);
    const { client } = makeClient({ accessToken: undefined, refresh });
    await settle();
    FakeSocket.last.serverOpen();
    FakeSocket.last.serverClose(4401, 'Token expired');
    await vi.advanceTimersByTimeAsync(1000);
    expect(refresh).toHaveBeenCalledTimes(2);
    const protocols = FakeSocket.last.protocols as string[];
    expect(protocols[0]).toBe('meshgate');
    expect(protocols[1]).toContain(Buffer.from(JSON.stringify({ sub: 'alice', n: 2 })).toString('base64url'));
    client.disconnect();
  });

  it('a transient refresh failure (5xx) is retried; 401 from the refresh means login required', async () => {
    const answers = [500, 503, 401];
    const fetchImpl = vi.fn(async () => new Response('{}', { status: answers.shift() ?? 401 }));
    const { client, events } = makeClient({ accessToken: undefined, refresh: 'https://auth.test/refresh', fetch: fetchImpl as unknown as typeof fetch });
    await settle();
    expect(client.state).toBe('reconnecting');
    await vi.advanceTimersByTimeAsync(1000);
    await vi.advanceTimersByTimeAsync(2000);
    expect(fetchImpl).toHaveBeenCalledTimes(3);
    expect(client.state).toBe('disconnected');
    expect(events.some((e) => e.startsWith('login:'))).toBe(true);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(fetchImpl).toHaveBeenCalledTimes(3);
    expect(FakeSocket.instances).toHaveLength(0);
  });

  it('a refresh that keeps failing is reported once through onError after three tries in a row, with what the URL must answer; the client keeps retrying', async () => {
    const fetchImpl = vi.fn(async () => new Response('{"error":"Body must be JSON"}', { status: 400 }));
    const errors: unknown[] = [];
    const { client } = makeClient({ accessToken: undefined, refresh: 'https://auth.test/refresh', fetch: fetchImpl as unknown as typeof fetch, onError: (e) => void errors.push(e) });
    await settle();
    for (let i = 0; i < 6; i++) await vi.advanceTimersByTimeAsync(30_000);
    expect(fetchImpl.mock.calls.length).toBeGreaterThanOrEqual(5);
    expect(errors).toHaveLength(1);
    expect(String((errors[0] as Error).message)).toBe('meshgate: 3 token refreshes in a row failed (last: Token refresh answered 400); still retrying. '
      + 'If this persists, check the refresh option: a URL must answer a POST with JSON { "access_token": "..." } (401/403 means "log in again"); '
      + 'a function must resolve to the token or { access_token } (throw LoginRequiredError for "log in again").');
    expect(client.state).toBe('reconnecting');
    client.disconnect();
  });

  it('a refresh function that keeps throwing is reported once after three tries in a row, like a URL; LoginRequiredError from it means login required', async () => {
    const refresh = vi.fn(async (): Promise<string> => {
      throw new Error('identity provider unreachable');
    });
    const errors: unknown[] = [];
    const { client } = makeClient({ accessToken: undefined, refresh, onError: (e) => void errors.push(e) });
    await settle();
    for (let i = 0; i < 6; i++) await vi.advanceTimersByTimeAsync(30_000);
    expect(refresh.mock.calls.length).toBeGreaterThanOrEqual(5);
    expect(errors).toHaveLength(1);
    expect(String((errors[0] as Error).message)).toMatch(/^meshgate: 3 token refreshes in a row failed \(last: the refresh function threw: identity provider unreachable\)/);
    expect(client.state).toBe('reconnecting');
    client.disconnect();

    const loggedOut = makeClient({ accessToken: undefined, refresh: async () => { throw new LoginRequiredError('session ended'); } });
    await settle();
    expect(loggedOut.client.state).toBe('disconnected');
    expect(loggedOut.events).toContain('login:session ended');
    loggedOut.client.disconnect();
  });

  it('a refresh that never settles counts as failed after connectTimeoutMs, is retried and reported; its timer goes when it settles', async () => {
    const refresh = vi.fn((): Promise<string> => new Promise<string>(() => {})); // a login server that accepts and never answers
    const errors: unknown[] = [];
    const { client } = makeClient({ accessToken: undefined, refresh, connectTimeoutMs: 2000, onError: (e) => void errors.push(e) });
    await settle();
    expect(client.state).toBe('connecting');
    for (let i = 0; i < 6; i++) await vi.advanceTimersByTimeAsync(30_000);
    // Each attempt waits for the same refresh again: never a second one while the first runs (a login popup, a rotating refresh token).
    expect(refresh).toHaveBeenCalledTimes(1);
    expect(errors).toHaveLength(1);
    expect(String((errors[0] as Error).message)).toMatch(/^meshgate: 3 token refreshes in a row failed \(last: the refresh function did not settle within 2000 ms \(connectTimeoutMs\); the next attempt waits for it again\./);
    client.disconnect();
    expect(vi.getTimerCount()).toBe(0);

    // Disposed while a refresh hangs: the refresh's timer goes with the client.
    const hanging = makeClient({ accessToken: undefined, refresh: () => new Promise<string>(() => {}), connectTimeoutMs: 2000 });
    await settle();
    expect(hanging.client.state).toBe('connecting');
    expect(vi.getTimerCount()).toBeGreaterThan(0);
    hanging.client.disconnect();
    expect(vi.getTimerCount()).toBe(0);

    // One that answers in time leaves no timer behind either.
    const quick = makeClient({ accessToken: undefined, refresh: async () => TOKEN, connectTimeoutMs: 2000 });
    await settle();
    FakeSocket.last.serverOpen();
    expect(quick.client.state).toBe('connected');
    quick.client.disconnect();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a refresh slower than connectTimeoutMs is waited for again, not started again, and its token is used once it comes', async () => {
    let answer!: (token: string) => void;
    const refresh = vi.fn(() => new Promise<string>((resolve) => (answer = resolve)));
    const { client } = makeClient({ accessToken: undefined, refresh, connectTimeoutMs: 2000 });
    await settle();
    await vi.advanceTimersByTimeAsync(5000); // an attempt or two gave up waiting
    expect(client.state).not.toBe('connected');
    answer(TOKEN); // the user finished logging in
    for (let i = 0; i < 10 && FakeSocket.instances.length === 0; i++) await vi.advanceTimersByTimeAsync(1000);
    FakeSocket.last.serverOpen();
    expect(client.state).toBe('connected');
    expect(refresh).toHaveBeenCalledTimes(1);
    client.disconnect();
  });

  it('a token a subprotocol cannot carry ends in login required, saying why without quoting the token', async () => {
    const { client, events } = makeClient({ accessToken: undefined, refresh: async () => `Bearer ${TOKEN}` });
    await settle();
    expect(client.state).toBe('disconnected');
    expect(events).toContain('login:the access token has characters a WebSocket subprotocol cannot carry (a "Bearer " prefix, whitespace or quotes?): pass the bare token');
    expect(FakeSocket.instances).toHaveLength(0);
    client.disconnect();
  });

  it('a refresh function whose answer has no token but an error says what the server said', async () => {
    // What `(await fetch(devTokenUrl)).json()` gives when the development login is misconfigured.
    const { client, events } = makeClient({ accessToken: undefined, refresh: async () => ({ error: 'devLogin needs auth.secret.' }) as never });
    await settle();
    expect(client.state).toBe('disconnected');
    expect(events).toContain('login:the refresh function returned no token (its answer says: "devLogin needs auth.secret.")');
    client.disconnect();
  });

  it('a relative refresh URL with no page to resolve it against is refused at construction', () => {
    expect(() => makeClient({ accessToken: undefined, refresh: '/auth/token' })).toThrow(
      'The refresh URL "/auth/token" is relative and there is no page to resolve it against: pass an absolute URL (https://…) or a refresh function.');
  });

  it('a token that is not a JWT, or has no sub, ends in login required with a reason that says which (once, not "Login required: Login required:")', async () => {
    for (const [token, reason] of [
      ['not-a-jwt', 'the access token is not a JWT (three base64url parts: header.payload.signature)'],
      [`e30.${Buffer.from('{}').toString('base64url')}.sig`, 'the access token has no "sub" claim; pass instanceName, or issue tokens with a sub'],
    ] as const) {
      FakeSocket.reset();
      const { client, events } = makeClient({ accessToken: token, instanceName: undefined });
      await settle();
      expect(events).toEqual([`login:${reason}`]);
      expect(client.state).toBe('disconnected');
      const call = client.node<{ a(): void }>('X', 'y').a();
      await expect(call).rejects.toThrow(new LoginRequiredError(reason).message);
      await expect(call).rejects.toMatchObject({ message: `Login required: ${reason}`, reason });
      expect(FakeSocket.instances).toHaveLength(0);
    }
  });

  it('4400 and 4403 end in disconnected + onLoginRequired, with no reconnect loop', async () => {
    for (const code of [4400, 4403]) {
      FakeSocket.reset();
      const { client, events } = makeClient();
      await settle();
      const pending = client.node<{ a(): void }>('X', 'y').a();
      FakeSocket.last.serverClose(code, 'Token invalid');
      expect(client.state).toBe('disconnected');
      expect(events).toContain('login:Token invalid');
      await expect(pending).rejects.toBeInstanceOf(LoginRequiredError);
      await vi.advanceTimersByTimeAsync(120_000);
      expect(FakeSocket.instances).toHaveLength(1);
    }
  });
});

describe('calls', () => {
  it('queue while disconnected and go out in order once connection_status arrives', async () => {
    const { client } = makeClient();
    await settle();
    const stub = client.node<{ put(n: number): number }>('COUNTER', 'c');
    const results = [stub.put(1), stub.put(2), stub.put(3)];
    const socket = FakeSocket.last;
    expect(socket.sent).toHaveLength(0);
    socket.serverOpen();
    const calls = socket.frames().filter((f) => f.type === 'call');
    expect(calls.map((f) => decodeValue(f.args as string))).toEqual([[1], [2], [3]]);
    for (const f of calls) socket.serverSend({ type: 'call_response', id: f.id, ok: true, result: encodeValue((decodeValue(f.args as string) as number[])[0]! * 10) });
    expect(await Promise.all(results)).toEqual([10, 20, 30]);
    expect(client.pendingCalls).toBe(0);
    client.disconnect();
  });

  it('a full queue rejects the new call at once with a clear error', async () => {
    const { client } = makeClient({ maxQueuedCalls: 2 });
    await settle();
    const stub = client.node<{ put(n: number): number }>('COUNTER', 'c');
    const kept = [stub.put(1), stub.put(2)];
    const error = await stub.put(3).catch((e) => e);
    expect(error).toBeInstanceOf(LimitExceededError);
    expect(error.message).toMatch(/queue is full/);
    client.disconnect();
    await Promise.allSettled(kept);
  });

  it('every call has a deadline; nothing is left behind after it settles', async () => {
    const { client } = makeClient({ callTimeoutMs: 5000 });
    await settle();
    FakeSocket.last.serverOpen();
    const call = client.node<{ never(): void }>('COUNTER', 'c').never().catch((e) => e);
    expect(client.pendingCalls).toBe(1);
    await vi.advanceTimersByTimeAsync(5000);
    expect(await call).toBeInstanceOf(CallTimeoutError);
    expect(client.pendingCalls).toBe(0);
    client.disconnect();
  });

  it('a call that times out without ever leaving says so, since a longer timeout would not help; a sent one says to raise it', async () => {
    const { client } = makeClient({ callTimeoutMs: 5000 });
    await settle();
    // the socket never opens: not connected
    const unsent = client.node<{ never(): void }>('COUNTER', 'c').never().catch((e) => e);
    await vi.advanceTimersByTimeAsync(5000);
    const error = await unsent;
    expect(error).toBeInstanceOf(CallTimeoutError);
    expect(error.sent).toBe(false);
    // about this client's call only: rethrown by a handler into the mesh, it must not tell another caller its call never left
    expect(decodeValue(encodeValue(error))).not.toHaveProperty('sent');
    expect(error.message).toBe('Call to "never" was never sent in 5000 ms, so it ran nowhere: the client was not connected in that time; '
      + 'check the url and the server, and pass onError to see why it cannot connect.');
    client.disconnect();

    // A problem reported while connected (a repeated connection_status) is not why a later call waits: not quoted.
    const errors: unknown[] = [];
    const { client: dropped } = makeClient({ callTimeoutMs: 5000, onError: (e) => void errors.push(e) });
    await settle();
    sendStatus(FakeSocket.last, 'e1');
    sendStatus(FakeSocket.last, 'e1');
    expect(String((errors[0] as Error).message)).toMatch(/connection_status repeated/);
    FakeSocket.last.serverClose(1006);
    const waiting = dropped.node<{ never(): void }>('COUNTER', 'c').never().catch((e) => e);
    await vi.advanceTimersByTimeAsync(5000);
    expect((await waiting).message).toMatch(/was never sent in 5000 ms, so it ran nowhere: the client was not connected in that time; check the url/);
    dropped.disconnect();

    const { client: connected } = makeClient({ callTimeoutMs: 5000 });
    await settle();
    sendStatus(FakeSocket.last, 'e1');
    const sent = connected.node<{ never(): void }>('COUNTER', 'c').never().catch((e) => e);
    await vi.advanceTimersByTimeAsync(5000);
    const late = await sent;
    expect(late).toBeInstanceOf(CallTimeoutError);
    expect(late.sent).toBeUndefined();
    expect(late.message).toBe('Call to "never" got no answer within 5000 ms; raise the call timeout or check the target.');
    connected.disconnect();
  });

  it('in-flight calls are resent with the same id inside the grace period, and fail as outcome-unknown after it', async () => {
    const { client } = makeClient();
    await settle();
    FakeSocket.last.serverOpen();
    const stub = client.node<{ work(): number }>('COUNTER', 'c');
    const first = stub.work();
    const firstId = FakeSocket.last.frames().find((f) => f.type === 'call')!.id;
    FakeSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    FakeSocket.last.serverOpen(false); // grace period: gateway remembers
    const resent = FakeSocket.last.frames().find((f) => f.type === 'call')!;
    expect(resent.id).toBe(firstId);
    FakeSocket.last.serverSend({ type: 'call_response', id: firstId, ok: true, result: encodeValue(7) });
    expect(await first).toBe(7);

    const second = stub.work().catch((e) => e);
    FakeSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    FakeSocket.last.serverOpen(true); // after the grace period
    const error = await second;
    expect(error).toBeInstanceOf(OutcomeUnknownError);
    expect(error.name).toBe('OutcomeUnknownError');
    expect(FakeSocket.last.frames().filter((f) => f.type === 'call')).toHaveLength(0);
    client.disconnect();
  });

  it('incoming calls run only listed handlers, refuse client origins, and answer a redelivery from memory', async () => {
    let runs = 0;
    const { client } = makeClient({ handlers: { applyChange: (n: number) => { runs++; return n + 1; } } });
    await settle();
    const socket = FakeSocket.last;
    socket.serverOpen();
    const node = { kind: 'node', binding: 'DOC', instance: 'd' };
    const call = (id: string, method: string, origin: unknown = node) =>
      socket.serverSend({ type: 'incoming_call', id, method, args: encodeValue([1]), origin, chain: [origin] });
    call('i1', 'applyChange');
    call('i1', 'applyChange'); // redelivered while running / after
    call('i2', 'toString');
    call('i3', 'constructor');
    call('i4', 'applyChange', { kind: 'client', gateway: 'GATEWAY', instance: 'bob.t', sub: 'bob' });
    call('i5', 'applyChange', { kind: 'client', gateway: 'GATEWAY', instance: 'alice.tab', sub: 'alice' }); // its own chain, back to it
    call('i6', 'applyChange', { kind: 'client', gateway: 'OTHER_GATEWAY', instance: 'alice.tab', sub: 'alice' }); // the same name behind another gateway
    await settle();
    call('i1', 'applyChange');
    await settle();
    const answers = socket.frames().filter((f) => f.type === 'incoming_call_response');
    const byId = (id: string) => answers.filter((a) => a.id === id);
    expect(runs).toBe(2);
    expect(byId('i5')[0]).toMatchObject({ ok: true });
    expect((decodeValue(byId('i6')[0]!.error as string) as Error).name).toBe('ForbiddenError');
    expect(byId('i1').every((a) => a.ok === true && decodeValue(a.result as string) === 2)).toBe(true);
    expect(byId('i1').length).toBeGreaterThanOrEqual(1);
    expect((decodeValue(byId('i2')[0]!.error as string) as Error).name).toBe('MethodNotExposedError');
    expect((decodeValue(byId('i3')[0]!.error as string) as Error).name).toBe('MethodNotExposedError');
    expect((decodeValue(byId('i4')[0]!.error as string) as Error).name).toBe('ForbiddenError');
    client.disconnect();
  });

  it('disconnect() rejects every unsettled call with ClientClosedError', async () => {
    const { client } = makeClient();
    await settle();
    const pending = client.node<{ a(): void }>('X', 'y').a();
    client.disconnect();
    await expect(pending).rejects.toBeInstanceOf(ClientClosedError);
    expect(client.pendingCalls).toBe(0);
  });
});

describe('calls: resends, frame limits and refusals', () => {
  it('a call in flight is resent with its id, marked resentFrom the epoch it was sent under, so the gateway can tell a restart', async () => {
    const { client } = makeClient();
    await settle();
    sendStatus(FakeSocket.last, 'e1');
    const first = client.node<{ a(): number }>('C', 'x').a().catch((e) => e);
    const sent = FakeSocket.last.frames().find((f) => f.type === 'call')!;
    expect(sent.resentFrom).toBeUndefined();
    expect(sent.timeoutMs).toBe(30_000); // the deadline travels with the call
    FakeSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    sendStatus(FakeSocket.last, 'e2'); // the gateway restarted (it hibernated) and kept the socket's identity
    const resent = FakeSocket.last.frames().find((f) => f.type === 'call')!;
    expect(resent).toMatchObject({ id: sent.id, resentFrom: 'e1' });
    // The restarted gateway does not know the id: it answers that the outcome is unknown.
    FakeSocket.last.serverSend({ type: 'call_response', id: sent.id, ok: false, error: encodeValue(new OutcomeUnknownError('a')) });
    expect(await first).toBeInstanceOf(OutcomeUnknownError);
    // A call first sent under e2 is resent marked e2.
    const second = client.node<{ c(): number }>('C', 'x').c();
    const id = FakeSocket.last.frames().filter((f) => f.type === 'call').at(-1)!.id;
    FakeSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    sendStatus(FakeSocket.last, 'e2');
    expect(FakeSocket.last.frames().find((f) => f.type === 'call')).toMatchObject({ id, resentFrom: 'e2' });
    FakeSocket.last.serverSend({ type: 'call_response', id, ok: true, result: encodeValue(3) });
    expect(await second).toBe(3);
    client.disconnect();
  });

  /** A client connected under epoch e1 with one call sent, each call given up after 20 s. */
  async function oneCallSent() {
    const { client } = makeClient({ callTimeoutMs: 20_000 });
    await settle();
    sendStatus(FakeSocket.last, 'e1');
    const call = client.node<{ pay(): number }>('C', 'x').pay().catch((e) => e);
    return { client, call, id: FakeSocket.last.frames().find((f) => f.type === 'call')!.id };
  }
  /** The gateway's answer "token expired: send it again after the reconnect" (it ran nothing), then the socket drops. */
  function refusedForNow(id: unknown): void {
    FakeSocket.last.serverSend({ type: 'call_response', id, ok: false, error: encodeValue(new TokenExpiredError()), retryAfterReconnect: true });
    FakeSocket.last.serverClose(1006);
  }
  async function timedOutSent(call: Promise<unknown>): Promise<void> {
    await vi.advanceTimersByTimeAsync(20_000);
    const error = (await call) as CallTimeoutError;
    expect(error).toBeInstanceOf(CallTimeoutError);
    expect(error.sent).toBeUndefined();
    expect(error.message).toMatch(/got no answer within 20000 ms/);
  }

  it('a resend the gateway refuses for now (token expired) goes again marked with the epoch it may have run under, never as new', async () => {
    const { client, call, id } = await oneCallSent();
    FakeSocket.last.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1000);
    sendStatus(FakeSocket.last, 'e1');
    expect(FakeSocket.last.frames().find((f) => f.type === 'call')).toMatchObject({ id, resentFrom: 'e1' });
    refusedForNow(id);
    await vi.advanceTimersByTimeAsync(1000);
    sendStatus(FakeSocket.last, 'e2'); // a gateway without the memory of e1, where it may have run
    expect(FakeSocket.last.frames().find((f) => f.type === 'call')).toMatchObject({ id, resentFrom: 'e1' });
    // Unanswered until its deadline: it left the client, so the timeout does not say it ran nowhere.
    await timedOutSent(call);
    client.disconnect();
  });

  it('a first send the gateway refuses for now goes again as new, and a timeout of it does not say it never left', async () => {
    const { client, call, id } = await oneCallSent();
    refusedForNow(id);
    await vi.advanceTimersByTimeAsync(1000);
    sendStatus(FakeSocket.last, 'e2', true);
    const again = FakeSocket.last.frames().find((f) => f.type === 'call')!;
    expect(again.id).toBe(id);
    expect(again.resentFrom).toBeUndefined(); // it ran nowhere: even a gateway without memory may run it
    FakeSocket.last.serverSend({ type: 'call_response', id, ok: true, result: encodeValue(1) });
    expect(await call).toBe(1);
    client.disconnect();

    // Refused, and then the client never connects again: it did leave, so the timeout keeps the usual message.
    const stranded = await oneCallSent();
    refusedForNow(stranded.id);
    await timedOutSent(stranded.call);
    stranded.client.disconnect();
  });

  it("the gateway's frame limit from connection_status also bounds the client's calls", async () => {
    const { client } = makeClient();
    await settle();
    FakeSocket.last.readyState = 1;
    FakeSocket.last.onopen?.({});
    FakeSocket.last.serverSend({ type: 'connection_status', subscriptionRequired: true, instanceName: 'alice.tab', sub: 'alice', protocol: 1, epoch: 'e', maxFrameBytes: 500 });
    const error = await client.node<{ put(s: string): void }>('C', 'x').put('y'.repeat(600)).catch((e) => e);
    expect(error).toBeInstanceOf(LimitExceededError);
    client.disconnect();
  });

  it('a call too large for the gateway rejects at once instead of being sent', async () => {
    const { client } = makeClient({ maxFrameBytes: 1000 });
    await settle();
    FakeSocket.last.serverOpen();
    const error = await client.node<{ put(s: string): void }>('C', 'x').put('x'.repeat(2000)).catch((e) => e);
    expect(error).toBeInstanceOf(LimitExceededError);
    expect(error.message).toMatch(/maxFrameBytes/);
    expect(FakeSocket.last.frames().filter((f) => f.type === 'call')).toHaveLength(0);
    client.disconnect();
  });

  it('only a token-expired answer marked retryAfterReconnect is kept for a resend; an app error named the same is not', async () => {
    const { client } = makeClient();
    await settle();
    FakeSocket.last.serverOpen();
    const call = client.node<{ a(): void }>('C', 'x').a().catch((e) => e);
    const id = FakeSocket.last.frames().find((f) => f.type === 'call')!.id;
    FakeSocket.last.serverSend({ type: 'call_response', id, ok: false, error: encodeValue(new TokenExpiredError()) });
    expect(await call).toBeInstanceOf(TokenExpiredError);
    client.disconnect();
  });

  it('an argument the codec cannot carry rejects the call with a clear TypeError, and nothing is queued', async () => {
    const { client } = makeClient();
    await settle();
    const error = await client.node<{ put(f: unknown): void }>('C', 'x').put(() => 1).catch((e) => e);
    expect(error).toBeInstanceOf(TypeError);
    expect(error.message).toMatch(/^meshgate cannot send the arguments of "put": /);
    expect(client.pendingCalls).toBe(0);
    client.disconnect();
  });
});

describe('the handshake deadline', () => {
  it('a socket that never completes its handshake is dropped after connectTimeoutMs and retried', async () => {
    const { client } = makeClient({ connectTimeoutMs: 5000 });
    await settle();
    const hung = FakeSocket.last;
    await vi.advanceTimersByTimeAsync(5000);
    expect(hung.closedWith?.code).toBe(4000);
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeSocket.instances).toHaveLength(2);
    // An open socket whose status never comes is dropped the same way.
    FakeSocket.last.readyState = 1;
    FakeSocket.last.onopen?.({});
    await vi.advanceTimersByTimeAsync(5000);
    await vi.advanceTimersByTimeAsync(2000);
    expect(FakeSocket.instances).toHaveLength(3);
    FakeSocket.last.serverOpen();
    expect(client.state).toBe('connected');
    client.disconnect();
  });
});

describe('login required', () => {
  it('after login required, calls reject at once until connect() is called again', async () => {
    const { client } = makeClient({ callTimeoutMs: 60_000 });
    await settle();
    FakeSocket.last.serverClose(4403, 'Token invalid');
    const started = Date.now();
    await expect(client.node<{ a(): void }>('C', 'x').a()).rejects.toBeInstanceOf(LoginRequiredError);
    expect(Date.now() - started).toBe(0);
    void client.connect();
    await settle();
    expect(FakeSocket.instances).toHaveLength(2);
    const queued = client.node<{ a(): number }>('C', 'x').a();
    FakeSocket.last.serverOpen();
    const call = FakeSocket.last.frames().find((f) => f.type === 'call')!;
    FakeSocket.last.serverSend({ type: 'call_response', id: call.id, ok: true, result: encodeValue(1) });
    expect(await queued).toBe(1);
    client.disconnect();
  });
});

describe('reconnect()', () => {
  it('the socket kept by reconnect() is closed when its replacement fails', async () => {
    const { client } = makeClient();
    await settle();
    const old = FakeSocket.last;
    old.serverOpen();
    void client.reconnect();
    await settle();
    expect(old.closedWith).toBeUndefined(); // kept open while the new one connects
    FakeSocket.last.serverClose(1006);
    expect(old.closedWith?.code).toBe(1000);
    client.disconnect();
  });
});

describe('reports through onError', () => {
  it('three failed connection attempts in a row are reported once through onError, with the URL; the client keeps retrying', async () => {
    const errors: string[] = [];
    const { client } = makeClient({ onError: (e) => void errors.push((e as Error).message), connectTimeoutMs: 600_000 });
    await settle();
    for (let i = 0; i < 5; i++) {
      FakeSocket.last.serverClose(1006);
      await vi.advanceTimersByTimeAsync(30_000);
    }
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('ws://mesh.test/gateway/GATEWAY/alice.tab');
    expect(errors[0]).toContain('3 connection attempts');
    expect(FakeSocket.instances).toHaveLength(6); // still retrying
    FakeSocket.last.serverOpen();
    expect(client.state).toBe('connected');
    client.disconnect();
  });
});
