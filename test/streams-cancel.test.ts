/**
 * Cancellation on real workerd: an AbortSignal rejects the call at once with
 * CancelledError and reaches the node (`this.mesh.signal`); breaking out of a
 * stream's `for await` stops its producer (its `finally` runs); and nothing is
 * left pending: the gateway and the node leave memory afterwards.
 */
import { describe, expect, it } from 'vitest';
import { CancelledError } from '../src/client/index.js';
// @ts-expect-error plain ESM helper shared with the benchmark
import { EvictionWatcher } from '../scripts/eviction.mjs';
import type { StreamDO } from './fixtures/streams-worker.js';
import { useStreamMesh } from './support/stream-mesh.js';
import { waitFor } from './support/mesh.js';
import { createNetwork } from './support/network.js';

const suite = useStreamMesh();
const { connected } = suite;

const gatewayMemory = async (instance: string) => ((await suite.mesh.state(instance)) as unknown as { memory: { running: number; streams: number } }).memory;

describe('AbortSignal on a call', () => {
  it('aborting rejects at once with CancelledError, and the node sees this.mesh.signal abort', async () => {
    const client = await connected('ann');
    const node = client.node<StreamDO>('STREAMS', 'cancel-call');
    const controller = new AbortController();
    const call = client.node<StreamDO>('STREAMS', 'cancel-call', { signal: controller.signal }).waitForCancel('plain', 20_000);
    await waitFor(async () => (await node.progress('plain')) !== undefined, 'the method to start');
    const aborted = Date.now();
    const reason = new Error('user pressed stop');
    controller.abort(reason);
    const error = await call.catch((e: unknown) => e);
    expect(Date.now() - aborted).toBeLessThan(200); // at once, not when the node returns
    expect(error).toBeInstanceOf(CancelledError);
    expect(error).toMatchObject({ code: 'cancelled', method: 'waitForCancel', cause: reason });
    expect(client.pendingCalls).toBe(0);
    await waitFor(async () => (await node.progress('plain'))?.finalized, 'the node to see the abort');
    expect(await node.progress('plain')).toMatchObject({ aborted: true, abortReason: 'CancelledError' });
    await waitFor(async () => (await gatewayMemory(client.instanceName!)).running === 0, 'the gateway to free the call');
  });

  it('aborted while the connection is down: the cancel goes after the reconnect, and the node sees its signal abort', async () => {
    const network = createNetwork();
    const client = await connected('cid', { WebSocket: network.WebSocket });
    const node = client.node<StreamDO>('STREAMS', 'cancel-offline');
    const controller = new AbortController();
    const call = client.node<StreamDO>('STREAMS', 'cancel-offline', { signal: controller.signal }).waitForCancel('offline', 20_000);
    await waitFor(async () => (await node.progress('offline')) !== undefined, 'the method to start');
    network.offline = true;
    network.drop();
    await waitFor(() => client.state !== 'connected', 'the client to see the drop');
    controller.abort();
    expect(await call.catch((e: unknown) => e)).toBeInstanceOf(CancelledError);
    network.offline = false;
    await waitFor(async () => (await node.progress('offline'))?.finalized, 'the node to see the abort after the reconnect');
    expect(await node.progress('offline')).toMatchObject({ aborted: true });
  });

  it('a signal aborted before the call sends nothing and rejects at once', async () => {
    const client = await connected('ben');
    const controller = new AbortController();
    controller.abort();
    const node = client.node<StreamDO>('STREAMS', 'cancel-before', { signal: controller.signal });
    await expect(node.waitForCancel('never', 100)).rejects.toBeInstanceOf(CancelledError);
    expect(await client.node<StreamDO>('STREAMS', 'cancel-before').progress('never')).toBeUndefined();
  });

  it('a call that is not cancelled is not slowed or changed by a signal, and its listener is removed', async () => {
    const client = await connected('cal');
    const controller = new AbortController();
    const node = client.node<StreamDO>('STREAMS', 'not-cancelled', { signal: controller.signal });
    expect(await node.waitForCancel('quick', 10)).toBe(false);
    controller.abort(); // after the answer: nothing to cancel
    expect(client.pendingCalls).toBe(0);
  });
});

describe('cancelling a stream', () => {
  it('breaking out of for await stops the producer: its finally runs and its signal is aborted', async () => {
    const client = await connected('dan');
    const node = client.node<StreamDO>('STREAMS', 'break');
    const seen: number[] = [];
    for await (const value of node.count('break')) {
      seen.push(value);
      if (seen.length === 3) break;
    }
    expect(seen).toEqual([0, 1, 2]);
    await waitFor(async () => (await node.progress('break'))?.finalized, 'the producer\'s finally to run');
    expect(await node.progress('break')).toMatchObject({ finalized: true, aborted: true });
    await waitFor(async () => (await gatewayMemory(client.instanceName!)).streams === 0, 'the gateway to forget the stream');
    expect(client.openStreams).toBe(0);
  });

  it('aborting the signal mid-stream rejects the pending next() with CancelledError and stops a producer that is waiting', async () => {
    const client = await connected('eli');
    const controller = new AbortController();
    const node = client.node<StreamDO>('STREAMS', 'abort-stream', { signal: controller.signal });
    const words: string[] = [];
    const reading = (async () => {
      for await (const word of node.words('abort', 'one two three four five six seven eight nine ten', 300)) words.push(word);
    })();
    await waitFor(() => words.length === 1, 'the first word');
    controller.abort();
    await expect(reading).rejects.toBeInstanceOf(CancelledError);
    expect(words.length).toBeLessThan(10);
    const plain = client.node<StreamDO>('STREAMS', 'abort-stream');
    await waitFor(async () => (await plain.progress('abort'))?.finalized, 'the producer\'s finally to run');
    expect((await plain.progress('abort'))!).toMatchObject({ aborted: true });
    expect((await plain.progress('abort'))!.produced).toBeLessThan(10);
  });

  it('after cancelled calls and streams, the gateway and the node leave memory (no timer or promise left behind)', async () => {
    const client = await connected('fox');
    const controller = new AbortController();
    const node = client.node<StreamDO>('STREAMS', 'evict', { signal: controller.signal });
    const call = node.waitForCancel('evict-call', 60_000).catch((e: unknown) => e);
    for await (const value of client.node<StreamDO>('STREAMS', 'evict').count('evict-stream')) if (value === 5) break;
    await waitFor(async () => (await client.node<StreamDO>('STREAMS', 'evict').progress('evict-call')) !== undefined, 'the call to start');
    controller.abort();
    expect(await call).toBeInstanceOf(CancelledError);
    await waitFor(async () => {
      const memory = await gatewayMemory(client.instanceName!);
      return memory.running === 0 && memory.streams === 0;
    }, 'the gateway to settle');
    const watcher = EvictionWatcher.forThisProcess() as { evicted(id: string, timeoutMs?: number): Promise<number> };
    const ids = await Promise.all([['GATEWAY', client.instanceName!], ['STREAMS', 'evict']].map(async ([binding, name]) => {
      const namespace = await suite.mesh.mf.getDurableObjectNamespace(binding!);
      return namespace.idFromName(name!).toString();
    }));
    const settled = Date.now();
    const evictedAt = await Promise.all(ids.map((id) => watcher.evicted(id, 20_000)));
    // workerd evicts an idle object about 10 s after its last event; a leftover timer or pending RPC would keep it.
    for (const at of evictedAt) expect(at - settled).toBeLessThan(13_000);
  }, 40_000);
});
