/**
 * Streams across a pause longer than workerd takes to evict an idle Durable
 * Object (about 10 s after its last event): a client drops mid-stream inside
 * a long grace period, nothing happens for longer than that, it reconnects
 * and reads on; another client stops reading for as long, connected, and
 * reads on where it stopped. Meanwhile a third client's stream that ended
 * leaves nothing behind: its gateway and node leave memory as an idle object
 * does. (One wait for all three.)
 */
import { describe, expect, it } from 'vitest';
import type { StreamDO } from './fixtures/streams-worker.js';
import { waitFor } from './support/mesh.js';
import { createNetwork } from './support/network.js';
import { useStreamMesh } from './support/stream-mesh.js';
// @ts-expect-error plain ESM helper shared with the hibernation tests
import { EvictionWatcher } from '../scripts/eviction.mjs';

const GRACE_MS = 20_000;
/** How long after its last event local workerd evicts an idle object (10 s), plus polling and a loaded machine. */
const EVICTION_BOUND_MS = 11_000;

const suite = useStreamMesh({ graceMs: GRACE_MS });

async function idOf(binding: string, name: string): Promise<string> {
  const namespace = await suite.mesh.mf.getDurableObjectNamespace(binding);
  return namespace.idFromName(name).toString();
}

describe('a gateway idle in its grace period with a stream open', () => {
  it('stays in memory (so does its node): the client back after more than 10 s reads on from the next chunk, none lost or twice; a connected reader that paused as long reads on too', async () => {
    const network = createNetwork();
    const client = await suite.connected('eve', { WebSocket: network.WebSocket, reconnectMinDelayMs: 30, reconnectMaxDelayMs: 100 });
    const iterator = (await client.node<StreamDO>('STREAMS', 'evict').count('evict'))[Symbol.asyncIterator]();
    const values: number[] = [];
    for (let i = 0; i < 40; i++) values.push((await iterator.next()).value as number);

    // Another client stops reading, connected, for as long.
    const paused = await suite.connected('pia');
    const pausedIterator = (await paused.node<StreamDO>('STREAMS', 'pause').count('pause'))[Symbol.asyncIterator]();
    for (let i = 0; i < 40; i++) expect((await pausedIterator.next()).value).toBe(i);
    // And another reads a stream to its end and stays connected: its gateway and node must be free to go.
    const done = await suite.connected('dan');
    const ended: number[] = [];
    for await (const value of done.node<StreamDO>('STREAMS', 'ended').count('ended', 50)) ended.push(value);
    expect(ended).toHaveLength(50);

    network.offline = true;
    network.drop();
    await waitFor(() => client.state === 'reconnecting', 'the drop to be noticed');
    const droppedAt = Date.now();
    const watcher = EvictionWatcher.forThisProcess();
    const gateway = await idOf('GATEWAY', client.instanceName!);
    const node = await idOf('STREAMS', 'evict');
    // Eviction works meanwhile: the other client's gateway and node, their stream over, leave memory.
    await watcher.evicted(await idOf('GATEWAY', done.instanceName!), EVICTION_BOUND_MS);
    await watcher.evicted(await idOf('STREAMS', 'ended'), EVICTION_BOUND_MS);
    // Ours had its last event at the drop: by now workerd would have evicted it, but the open stream holds it (and its node).
    const evicted = await watcher.evicted(gateway, Math.max(0, droppedAt + EVICTION_BOUND_MS - Date.now())).then(() => true, () => false);
    expect(evicted).toBe(false);
    expect(watcher.isInMemory(node)).toBe(true);
    expect(Date.now() - droppedAt).toBeGreaterThanOrEqual(EVICTION_BOUND_MS);
    network.offline = false;
    await waitFor(() => client.state === 'connected', 'the reconnect');
    for (let i = 40; i < 200; i++) values.push((await iterator.next()).value as number);
    await iterator.return!();
    expect(values).toEqual(Array.from({ length: 200 }, (_, i) => i));
    for (let i = 40; i < 140; i++) expect((await pausedIterator.next()).value).toBe(i);
    await pausedIterator.return!();
  }, 40_000);
});
