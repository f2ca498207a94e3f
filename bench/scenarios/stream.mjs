/**
 * A stream from a Durable Object to a client: time to first chunk, chunks
 * per second and bytes per second, beside the raw echo (sequential latency
 * for the first chunk, pipelined messages per second for the rest).
 */
import { RAW_MESSAGE } from '../harness.mjs';
import { rawSequential, rawThroughput } from '../measure.mjs';
import { bounded, now, ratio, round, summary } from '../lib.mjs';

/** Reads a whole stream of `count` chunks of `chars` characters; chunks and characters per second. */
async function readStream(stub, count, chars, maxMs) {
  const t = now();
  let chunks = 0;
  let bytes = 0;
  for await (const chunk of stub.stream(count, chars)) {
    chunks++;
    bytes += chunk.length;
    if (now() - t > maxMs) break;
  }
  const seconds = (now() - t) / 1000;
  return { chunksPerSecond: Math.round(chunks / seconds), bytesPerSecond: Math.round(bytes / seconds), chunks };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

export async function stream({ mesh, n }) {
  const c = await mesh.connect('stream');
  const stub = c.node('BENCH', 'stream');
  const raw = await mesh.rawSocket('stream');
  // Warm-up: JIT on both sides, the DO created.
  await readStream(stub, n(2_000), 100, 3_000);
  await rawThroughput(raw, n(3_000), 64, 1_500);

  const firstChunk = [];
  await bounded(n(200), 8_000, async () => {
    const t = now();
    const iterator = stub.stream(1_000_000, 100)[Symbol.asyncIterator]();
    await iterator.next();
    firstChunk.push(now() - t);
    await iterator.return();
  });
  const rawLatency = await rawSequential(raw, n(200), 5_000);

  const small = [];
  const large = [];
  const rawRuns = [];
  for (let r = 0; r < 3; r++) {
    small.push(await readStream(stub, n(20_000), 100, 4_000));
    large.push(await readStream(stub, n(2_000), 16_384, 4_000));
    rawRuns.push(await rawThroughput(raw, n(20_000), 64, 3_000));
  }
  raw.terminate();
  mesh.disconnect(c);
  const ttfc = summary(firstChunk);
  const rawRtt = summary(rawLatency);
  const rawPerSecond = Math.round(median(rawRuns.map((x) => x.perSecond)));
  const smallPerSecond = median(small.map((x) => x.chunksPerSecond));
  return {
    scenario: 'stream', unit: 'per second',
    what: 'a DO streams chunks to one client (async generator, default window of 32): 100-character chunks, and 16 KiB chunks',
    measured: {
      timeToFirstChunkMs: ttfc,
      chunksPerSecond: smallPerSecond, bytesPerSecond: median(small.map((x) => x.bytesPerSecond)),
      large: { chunkChars: 16_384, chunksPerSecond: median(large.map((x) => x.chunksPerSecond)), bytesPerSecond: median(large.map((x) => x.bytesPerSecond)) },
    },
    baseline: {
      name: `raw hibernatable echo: round trip (first chunk) and messages/s with 64 in flight (${RAW_MESSAGE.length}-byte messages)`,
      roundTripMs: rawRtt, perSecond: rawPerSecond, bytesPerSecond: Math.round(rawPerSecond * RAW_MESSAGE.length),
    },
    ratio: { timeToFirstChunkP50: ratio(ttfc.p50, rawRtt.p50), chunksVsRawMessages: round(smallPerSecond / rawPerSecond, 2) },
    target: 'first chunk within a call round trip plus one Workers RPC; chunks/s of the order of raw echo messages/s',
  };
}
