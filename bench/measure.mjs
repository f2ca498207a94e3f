/** Timing loops shared by the scenarios: each bounded in count and in time. */
import { PAYLOAD, RAW_MESSAGE } from './harness.mjs';
import { bounded, cpuMs, now, rssBytes, sleep } from './lib.mjs';

/** Latencies (ms) of `count` sequential round trips, at most `maxMs` in all. */
export async function sequential(count, maxMs, roundTrip) {
  const samples = [];
  await bounded(count, maxMs, async () => {
    const t = now();
    await roundTrip();
    samples.push(now() - t);
  });
  return samples;
}

export const rawSequential = (raw, count, maxMs) => sequential(count, maxMs, () => raw.request(RAW_MESSAGE));
export const meshSequential = (stub, count, maxMs) => sequential(count, maxMs, () => stub.echo(PAYLOAD));

/**
 * The same calls as meshSequential, written by hand on a raw socket to the gateway
 * (harness.mjs, handGateway): what meshgate costs with no MeshClient in the loop.
 */
let handIds = 0; // a gateway answers an id it has answered with duplicate_call_id: ids never repeat
export function handSequential(raw, instance, count, maxMs) {
  const args = JSON.stringify([[1], PAYLOAD]);
  return sequential(count, maxMs, async () => {
    const answer = JSON.parse(await raw.request(JSON.stringify({ type: 'call', id: `h${++handIds}`, to: { binding: 'BENCH', instance }, method: 'echo', args })));
    if (answer.type !== 'call_response' || answer.ok !== true || JSON.parse(answer.result)[0] !== PAYLOAD) throw new Error(`call by hand: ${JSON.stringify(answer).slice(0, 200)}`);
  });
}

/** Echo messages per second with `inFlight` outstanding on one raw socket. */
export function rawThroughput(raw, total, inFlight, maxMs) {
  return new Promise((resolve) => {
    const t = now();
    const end = t + maxMs;
    let sent = 0;
    let done = 0;
    raw.onText = () => {
      done++;
      if (sent < total && now() < end) {
        sent++;
        raw.send(RAW_MESSAGE);
      } else if (done === sent) {
        raw.onText = undefined;
        resolve({ perSecond: done / ((now() - t) / 1000), count: done });
      }
    };
    for (; sent < inFlight; sent++) raw.send(RAW_MESSAGE);
  });
}

export const agentSequential = (agent, count, maxMs) => sequential(count, maxMs, () => agent.call('echo', [PAYLOAD]));

/** Calls per second with `inFlight` outstanding from one client. */
export const meshThroughput = (stub, total, inFlight, maxMs) => callThroughput(() => stub.echo(PAYLOAD), total, inFlight, maxMs);
export const agentThroughput = (agent, total, inFlight, maxMs) => callThroughput(() => agent.call('echo', [PAYLOAD]), total, inFlight, maxMs);

/** Calls of `call()` per second with `inFlight` outstanding. */
export async function callThroughput(call, total, inFlight, maxMs) {
  const t = now();
  const end = t + maxMs;
  let sent = 0;
  let done = 0;
  await Promise.all(Array.from({ length: inFlight }, async () => {
    while (sent < total && now() < end) {
      sent++;
      await call();
      done++;
    }
  }));
  return { perSecond: done / ((now() - t) / 1000), count: done };
}

/**
 * workerd CPU milliseconds spent per side: `timed(side, run)` adds what `run` cost the process `pid`
 * and returns its result, so sides run in alternating blocks each get their own share.
 */
export function cpuLedger(pid) {
  const spent = {};
  return {
    spent,
    async timed(side, run) {
      const c0 = cpuMs(pid);
      const result = await run();
      spent[side] = (spent[side] ?? 0) + cpuMs(pid) - c0;
      return result;
    },
  };
}

/** Waits for RSS to settle (two readings within 1%), bounded; returns bytes. */
export async function settledRss(pid) {
  let last = rssBytes(pid);
  for (let i = 0; i < 10; i++) {
    await sleep(300);
    const next = rssBytes(pid);
    if (Math.abs(next - last) < last * 0.01) return next;
    last = next;
  }
  return last;
}
