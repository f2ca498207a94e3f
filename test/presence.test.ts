/** Presence on real workerd: snapshot on join, join/update/leave to the others, duplicate tabs, departures told by the gateway, bounds. */
import { describe, expect, it } from 'vitest';
import { MeshClient, Topics, type PresenceEvent, type PresenceMember } from '../src/client/index.js';
import { createNetwork, waitFor } from './support/network.js';
import { useSubscriptionsMesh, type Topic } from './support/subscriptions-mesh.js';
// @ts-expect-error plain ESM helper shared with the benchmark
import { EvictionWatcher } from '../scripts/eviction.mjs';

const GRACE_MS = 2_000;
const mesh = useSubscriptionsMesh({ GRACE_MS: String(GRACE_MS) });
/** waitFor with room for a loaded machine: these wait on sockets, alarms and fan-outs of several objects. */
const until = <T>(check: () => Promise<T> | T, what: string, timeoutMs = 15_000, intervalMs = 50) => waitFor(check, what, timeoutMs, intervalMs);

type Meta = { name: string; typing?: boolean };

/** A client present in `topic` of TOPIC `room` through the Topics helper, recording presence as it sees it. */
async function member(sub: string, room: string, topic: string, meta: Meta, extra: { network?: ReturnType<typeof createNetwork>; instanceName?: string } = {}) {
  const events: Array<PresenceEvent & { at: number }> = [];
  let members: PresenceMember<Meta>[] = [];
  const topics = new Topics();
  let connected!: (client: MeshClient) => void;
  const ready = new Promise<MeshClient>((resolve) => (connected = resolve));
  const handle = topics.topic(topic, {
    subscribe: async (since) => (await ready).node<Topic>('TOPIC', room).enter(topic, since, meta),
    onPresence: (now, event) => {
      members = now as PresenceMember<Meta>[];
      if (event) events.push({ ...event, at: Date.now() });
    },
  });
  const client = await mesh.client(sub, topics.handlers, {
    onSubscriptionRequired: () => topics.resubscribe(),
    ...(extra.network ? { WebSocket: extra.network.WebSocket } : {}),
    ...(extra.instanceName ? { instanceName: extra.instanceName } : {}),
  });
  connected(client);
  await until(() => members.length > 0, `${sub} to see itself present`);
  return { client, topics, events, handle, get members() { return members; }, room: () => client.node<Topic>('TOPIC', room) };
}

const subs = (members: PresenceMember[]) => members.map((m) => `${m.sub}×${m.connections.length}`);

describe('Presence on workerd', () => {
  it('a snapshot on join, then join, update and leave events to the others; duplicate tabs are one member', async () => {
    const ann = await member('pr-ann', 'presence', 'lobby', { name: 'Ann' });
    expect(subs(ann.members)).toEqual(['pr-ann×1']);
    const bob = await member('pr-bob', 'presence', 'lobby', { name: 'Bob' });
    expect(subs(bob.members)).toEqual(['pr-ann×1', 'pr-bob×1']);
    await until(() => ann.events.length === 1, 'ann to see bob join');
    expect(ann.events[0]).toMatchObject({ kind: 'join', sub: 'pr-bob', member: { connections: [{ meta: { name: 'Bob' } }] } });

    // Bob's second tab: still one member, now with two connections — an update, not a join.
    const bobTab2 = await member('pr-bob', 'presence', 'lobby', { name: 'Bob' });
    await until(() => ann.events.length === 2, 'ann to see bob\'s second tab');
    expect(ann.events[1]).toMatchObject({ kind: 'update', sub: 'pr-bob' });
    expect(subs(ann.members)).toEqual(['pr-ann×1', 'pr-bob×2']);

    // Metadata: who is typing.
    await bobTab2.room().presenceUpdate('lobby', { name: 'Bob', typing: true });
    await until(() => ann.events.length === 3, 'the typing update');
    const bobNow = ann.members.find((m) => m.sub === 'pr-bob')!;
    expect(bobNow.connections.map((c) => c.meta.typing ?? false)).toEqual([false, true]);
    // Unchanged metadata sends nothing; a change faster than minUpdateIntervalMs (100 ms) is refused.
    await bobTab2.room().presenceUpdate('lobby', { name: 'Bob', typing: true });
    await expect(bobTab2.room().presenceUpdate('lobby', { name: 'Bob', typing: false })).rejects.toMatchObject({ name: 'LimitExceededError', limit: 'presence.minUpdateIntervalMs' });

    expect(await bobTab2.room().presenceLeave('lobby')).toBe(true);
    await until(() => subs(ann.members).join() === 'pr-ann×1,pr-bob×1', 'one of bob\'s tabs to leave');
    expect(await bob.room().presenceLeave('lobby')).toBe(true);
    await until(() => ann.events.at(-1)?.kind === 'leave', 'bob to leave');
    expect(subs(ann.members)).toEqual(['pr-ann×1']);
    expect(ann.events.map((e) => e.kind)).toEqual(['join', 'update', 'update', 'update', 'leave']);
  });

  it('a client gone for good leaves within a second of its grace period ending, with no polling and no fan-out', async () => {
    const watcher = await member('gone-watcher', 'departures', 'room', { name: 'W' });
    const network = createNetwork();
    const leaver = await member('gone-leaver', 'departures', 'room', { name: 'L' }, { network });
    await until(() => subs(watcher.members).length === 2, 'both present');

    // Away and back inside the grace period (2 s): no leave, and the departure watch follows it to the new socket.
    network.offline = true;
    network.drop();
    await until(() => leaver.client.state === 'reconnecting', 'the client to see the drop');
    network.offline = false;
    await until(() => leaver.client.state === 'connected', 'the reconnect');
    expect(await mesh.gatewayMemory(leaver.client.instanceName!)).toMatchObject({ alarm: null, graceEndedAt: null }); // it never ended
    expect(subs(watcher.members)).toEqual(['gone-watcher×1', 'gone-leaver×1']);

    // Gone for good: nobody publishes, nothing polls; the gateway's grace alarm tells the room.
    network.offline = true;
    network.drop();
    await until(() => watcher.events.some((e) => e.kind === 'leave' && e.sub === 'gone-leaver'), 'the leave');
    const leftAt = watcher.events.find((e) => e.kind === 'leave')!.at;
    const { graceEndedAt } = await mesh.gatewayMemory(leaver.client.instanceName!);
    const afterGrace = leftAt - graceEndedAt!;
    console.log(`presence: leave seen ${afterGrace} ms after the grace period ended`);
    expect(afterGrace).toBeGreaterThanOrEqual(0);
    expect(afterGrace).toBeLessThan(1000);
    expect(subs(watcher.members)).toEqual(['gone-watcher×1']);
    expect(subs((await watcher.room().presenceSnapshot('room')).members)).toEqual(['gone-watcher×1']);
    leaver.client.disconnect();
  });

  it('the departure watch survives a supersession and the gateway leaving memory while connected', async () => {
    const watcher = await member('evict-watcher', 'evictions', 'room', { name: 'W' });
    const network = createNetwork();
    const leaver = await member('evict-leaver', 'evictions', 'room', { name: 'L' }, { network });
    const name = leaver.client.instanceName!;
    // A second connection of the same identity supersedes the first: it carries the watch on.
    const successor = await mesh.client('evict-leaver', leaver.topics.handlers, { WebSocket: network.WebSocket, instanceName: name });
    await until(() => leaver.client.state === 'superseded', 'the first connection to be superseded');
    // Held only in the socket's attachment now: wait until workerd evicts the gateway (about 10 s idle).
    const ns = await mesh.namespace('GATEWAY');
    await EvictionWatcher.forThisProcess().evicted(ns.idFromName(name).toString(), 20_000);
    network.offline = true;
    network.drop();
    await until(() => watcher.events.some((e) => e.kind === 'leave' && e.sub === 'evict-leaver'), 'the leave after the eviction', 10_000);
    expect(subs(watcher.members)).toEqual(['evict-watcher×1']);
    successor.disconnect();
  }, 40_000);

  it('two Presences in one object share the departure watch: leaving one keeps the other told', async () => {
    const network = createNetwork();
    const leaver = await member('shared-leaver', 'shared', 'room', { name: 'L' }, { network });
    expect(subs(await leaver.room().cursorJoin('canvas', { x: 1 }).then((s) => s.members))).toEqual(['shared-leaver×1']);
    // Leaving the first Presence must not stop the watch the second still needs.
    expect(await leaver.room().presenceLeave('room')).toBe(true);
    network.offline = true;
    network.drop();
    const { graceEndedAt } = await until(async () => {
      const memory = await mesh.gatewayMemory(leaver.client.instanceName!);
      return memory.graceEndedAt !== null && memory;
    }, 'the grace period to end');
    const observer = await mesh.client('shared-observer');
    await until(async () => (await observer.node<Topic>('TOPIC', 'shared').cursorSnapshot('canvas')).members.length === 0, 'the cursor to leave', 5_000);
    expect(Date.now() - graceEndedAt!).toBeLessThan(5_000);
  });

  it('bounds what a client can put in and make the topic send', async () => {
    const ann = await member('bound-ann', 'bounds', 'b', { name: 'A' });
    await expect(ann.room().enter('b2', undefined, { name: 'x'.repeat(300) })).rejects.toMatchObject({ name: 'LimitExceededError', limit: 'presence.maxMetaBytes', max: 256 });
    await expect(ann.room().presenceUpdate('not-joined', { name: 'A' })).rejects.toMatchObject({ name: 'ForbiddenError' });
    // Leaving starts the update interval: an immediate rejoin is refused, so leave and join cannot flap events at the call rate.
    expect(await ann.room().presenceLeave('b')).toBe(true);
    const left = Date.now();
    await expect(ann.room().enter('b', undefined, { name: 'A' })).rejects.toMatchObject({ name: 'LimitExceededError', limit: 'presence.minUpdateIntervalMs' });
    await until(() => ann.room().enter('b', undefined, { name: 'A' }).then(() => true, () => false), 'the rejoin once the interval is over');
    expect(Date.now() - left).toBeGreaterThanOrEqual(100);
    await expect(ann.room().enter('x'.repeat(300), undefined, null)).rejects.toThrow(/A topic must be a string of 1 to 256/);

    // One user's connections share one budget (a change per 100 ms, bursts of 16): many tabs changing at once cannot multiply the events.
    const tabs = await Promise.all(Array.from({ length: 8 }, () => mesh.client('bound-many')));
    const rooms = tabs.map((tab) => tab.node<Topic>('TOPIC', 'budget'));
    const started = Date.now();
    await Promise.all(rooms.map((room) => room.enter('b', undefined, { n: 0 })));
    let accepted = 8;
    let refusal: unknown;
    // Each round waits out the per-connection interval (100 ms), so only the user's shared budget can refuse.
    for (let round = 1; round <= 6 && !refusal; round++) {
      await new Promise((resolve) => setTimeout(resolve, 110));
      const updates = await Promise.allSettled(rooms.map((room) => room.presenceUpdate('b', { n: round })));
      accepted += updates.filter((u) => u.status === 'fulfilled').length;
      refusal = updates.find((u): u is PromiseRejectedResult => u.status === 'rejected')?.reason;
    }
    expect(refusal).toMatchObject({ name: 'LimitExceededError', message: expect.stringMatching(/connections of "bound-many" changed their presence/) });
    expect(accepted).toBeLessThanOrEqual(16 + Math.ceil((Date.now() - started) / 100));

    // Topics that empty keep no row: naming topic after topic leaves nothing behind.
    const wanderer = (await mesh.client('bound-wanderer')).node<Topic>('TOPIC', 'wander');
    for (let i = 0; i < 20; i++) {
      await wanderer.enter(`w${i}`, undefined, null);
      await wanderer.presenceLeave(`w${i}`);
    }
    expect(await wanderer.presenceRows()).toEqual({ members: 0, versions: 0 });

    // maxConnections 8 in the fixture: the 9th connection is refused, nothing stored.
    const others = await Promise.all(Array.from({ length: 7 }, (_, i) => mesh.client(`bound-${i}`)));
    for (const c of others) await c.node<Topic>('TOPIC', 'bounds').enter('b', undefined, null);
    const ninth = await mesh.client('bound-ninth');
    await expect(ninth.node<Topic>('TOPIC', 'bounds').enter('b', undefined, null)).rejects.toMatchObject({ name: 'LimitExceededError', limit: 'presence.maxConnections', max: 8 });
    expect((await ninth.node<Topic>('TOPIC', 'bounds').presenceSnapshot('b')).members).toHaveLength(8);

    // One client can be watched by at most 16 rooms: the 17th join is refused before anything is stored.
    const roamer = await mesh.client('bound-roamer');
    for (let i = 0; i < 16; i++) await roamer.node<Topic>('TOPIC', `roam-${i}`).enter('r', undefined, null);
    await expect(roamer.node<Topic>('TOPIC', 'roam-16').enter('r', undefined, null)).rejects.toMatchObject({ name: 'LimitExceededError', limit: 'maxDepartureWatchers', max: 16 });
    expect((await roamer.node<Topic>('TOPIC', 'roam-16').presenceSnapshot('r')).members).toEqual([]);
    // Leaving a room frees its place: the 17th room can then be joined.
    expect(await roamer.node<Topic>('TOPIC', 'roam-0').presenceLeave('r')).toBe(true);
    expect((await roamer.node<Topic>('TOPIC', 'roam-16').enter('r', undefined, null)).presence!.members).toHaveLength(1);
  });
});
