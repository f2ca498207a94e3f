/**
 * fanout_tree: the time until every subscriber has a notification, from the
 * loop in the topic's own object and through a tree of FanOutRelay objects,
 * in the same run (rounds alternate, so drift hits both alike).
 *
 * - Measured, real clients: 100, 1,000 and 2,000 connected MeshClients (Node
 *   `ws`, each with its own gateway), from trigger to the last client's handler.
 * - Measured, stand-ins: 10,000 to 50,000 StandInGateway objects (a Durable
 *   Object that counts the notification and answers at once: no socket, no
 *   client), from trigger to the publish returning, which is when every
 *   stand-in has it.
 * - Modelled: the same sizes and larger with relays on threads of their own,
 *   as on Cloudflare, from the per-send cost and the per-relay hop measured
 *   here (see `model` below and docs/subscriptions.md).
 *
 * Local workerd runs every object of the mesh on one thread, so here a tree
 * cannot run its relays in parallel: what it measures locally is its overhead.
 * Stand-in names share 500 objects (bench/worker.ts: local workerd runs out of
 * SQLite memory past a few thousand objects); each notification is still one RPC.
 * Without the per-user IdentityLimiter, as in the scale scenario (2,000
 * SQLite-backed limiter objects exhaust workerd's SQLite memory here).
 */
import { now, pool, round, summary, within } from '../lib.mjs';

const LEVELS = [100, 1_000, 2_000];
const STAND_IN_LEVELS = [10_000, 20_000, 50_000];
const MODEL_LEVELS = [1_000, 2_000, 10_000, 50_000, 100_000, 1_000_000];
const ROUNDS = 3;
const HOP_ROUNDS = 20;
const STAND_IN_ROUNDS = 1;
/** The library's defaults, which the tree mode uses (src/subscriptions/relays.ts). */
const SLICE = 256;
const CHILDREN = 32;
/** A hop between objects on different machines, for the second model: an assumption (a few ms in one location), not a measurement. */
const ASSUMED_REMOTE_HOP_MS = 5;
/**
 * The topic object's own work per subscriber in the tree, which stays linear: copying the names into the
 * relays' jobs before anything is sent, and classifying the answers after every subscriber has the message.
 * Measured in Node 20 (V8) on this machine, 50 000 names (structuredClone into 32 jobs; notifyOne + summarizeNotify).
 */
const SPLIT_MS = 0.0003;
const CLASSIFY_MS = 0.0025;

/** `rounds` timed rounds of each mode, alternating, after `warmUp` untimed ones; `run(mode)` returns the round's time in ms. */
async function alternate(rounds, run, warmUp = 1) {
  const times = { loop: [], tree: [] };
  for (let r = 0; r < warmUp + rounds; r++) {
    for (const mode of r % 2 === 0 ? ['loop', 'tree'] : ['tree', 'loop']) {
      const ms = await run(mode);
      if (r >= warmUp) times[mode].push(ms);
    }
  }
  return { loop: summary(times.loop), tree: summary(times.tree) };
}

/**
 * The tree Subscriptions makes for `count` subscribers (src/subscriptions/relay.ts: an object splits its
 * part into at most CHILDREN groups of whole slices): how many relays, how deep, and how many children
 * each object on the widest path calls.
 */
function treeShape(count) {
  const groupSize = SLICE * Math.ceil(Math.ceil(count / SLICE) / CHILDREN);
  const children = Math.ceil(count / groupSize);
  if (groupSize <= SLICE) return { relays: children, depth: 1, path: [children] };
  let relays = children;
  for (let rest = count; rest > 0; rest -= groupSize) relays += treeShape(Math.min(groupSize, rest)).relays;
  const below = treeShape(groupSize);
  return { relays, depth: 1 + below.depth, path: [children, ...below.path] };
}

/**
 * Time until all have it, ms, when each relay runs on its own thread:
 * the loop sends N times from one object; the tree pays one hop per level,
 * each object on the widest path sends to its children, and the leaves
 * send their slices at the same time.
 */
function model(count, { sendMs, hopMs, relayMs }) {
  const { relays, depth, path } = treeShape(count);
  const treeMs = count * SPLIT_MS + depth * hopMs + path.reduce((a, b) => a + b, 0) * relayMs + Math.min(count, SLICE) * sendMs;
  return {
    subscribers: count, relays, depth,
    loopMs: round(count * sendMs, 1),
    treeMs: round(treeMs, 1),
    /** when the publish returns: the answers classified too (the loop classifies as it goes) */
    treeReturnedMs: round(treeMs + count * CLASSIFY_MS, 1),
  };
}

/** Real clients, added to those already connected and subscribed: time to all of them, each mode, at each level. */
async function withClients(startMesh, levels) {
  const mesh = await startMesh({ identityLimiter: false });
  try {
    const arrivals = new Map();
    const handlers = {
      notify: (key) => {
        const a = arrivals.get(key);
        if (a && ++a.count === a.target) a.resolve(now());
        return key;
      },
    };
    const topic = (await mesh.connect('tree-driver')).node('TOPIC', 'tree');
    let key = 0;
    const clients = [];
    const measured = [];
    const started = now();
    for (const level of levels) {
      const from = clients.length;
      await pool(level - from, 50, async (k) => {
        clients[from + k] = await mesh.connect(`tree${from + k}`, { handlers });
        await clients[from + k].node('TOPIC', 'tree').join('all');
      });
      const times = await alternate(ROUNDS, async (mode) => {
        const k = ++key;
        const allThere = new Promise((resolve) => arrivals.set(k, { count: 0, target: level, resolve }));
        const t0 = now();
        const outcome = await within(topic.announceVia(mode, 'all', k), 60_000, `${mode} to ${level}`);
        if (outcome.delivered !== level) throw new Error(`${mode}: sent to ${outcome.delivered} of ${level}`);
        const last = await within(allThere, 30_000, `${mode} to ${level}: every client to have it`);
        arrivals.delete(k);
        return last - t0;
      });
      process.stderr.write(`[fanout_tree ${level} clients ${round((now() - started) / 1000, 1)} s] `);
      measured.push({ subscribers: level, relays: treeShape(level).relays, loop: times.loop, tree: times.tree });
    }
    return measured;
  } finally {
    await mesh.dispose();
  }
}

/** Stand-ins, on a workerd of their own: what a relay adds, and time to all at each level. */
async function withStandIns(startMesh, levels) {
  const mesh = await startMesh({ identityLimiter: false });
  try {
    // A round to 50 000 keeps local workerd's one thread busy for seconds, pongs included: the driver waits longer for them.
    const topic = (await mesh.connect('standin-driver', { heartbeatTimeoutMs: 120_000 })).node('TOPIC', 'tree');
    let key = 0;
    // What a relay adds, timed inside the topic object: to 1 stand-in (the bare hop) and to a full slice.
    const hop = {};
    for (const [name, count] of [['one', 1], ['slice', SLICE]]) {
      await topic.fillStandIns('sim', count);
      await topic.timeStandInRounds('sim', 2); // warm-up
      const { loopMs, treeMs } = await within(topic.timeStandInRounds('sim', HOP_ROUNDS), 60_000, `hop rounds to ${count}`);
      hop[name] = { subscribers: count, loopMsPerRound: round(loopMs / HOP_ROUNDS, 3), treeMsPerRound: round(treeMs / HOP_ROUNDS, 3), addedMs: round((treeMs - loopMs) / HOP_ROUNDS, 3) };
    }

    // The stand-in objects are warm from here on (their names share them): only the first level has a warm-up round.
    const simulated = [];
    for (const [i, count] of levels.entries()) {
      if ((await topic.fillStandIns('sim', count)) !== count) throw new Error(`stand-ins: ${count} not subscribed`);
      const times = await alternate(STAND_IN_ROUNDS, async (mode) => {
        const t0 = now();
        const outcome = await within(topic.notifyStandIns(mode, 'sim', ++key), 60_000, `${mode} to ${count} stand-ins`);
        if (outcome.delivered !== count) throw new Error(`${mode}: ${outcome.delivered} of ${count} stand-ins`);
        return now() - t0;
      }, i === 0 ? 1 : 0);
      process.stderr.write(`[fanout_tree ${count} stand-ins] `);
      simulated.push({ subscribers: count, relays: treeShape(count).relays, loop: times.loop, tree: times.tree });
    }
    return { simulated, hop };
  } finally {
    await mesh.dispose();
  }
}

export async function fanoutTree({ startMesh, n }) {
  const t0 = now();
  const measured = await withClients(startMesh, LEVELS.map(n));
  const t1 = now();
  const { simulated, hop } = await withStandIns(startMesh, STAND_IN_LEVELS.map(n));
  const seconds = { clients: round((t1 - t0) / 1000, 1), standIns: round((now() - t1) / 1000, 1) };

  // Calibration: the per-send cost from the largest loop; the hop, and a relay's cost to its parent, from what a relay adds to a full slice
  // (tree − loop: the job of 256 names there and its answers back, both objects on this one thread: an upper bound of either).
  const largest = simulated.at(-1);
  const sendMs = largest.loop.p50 / largest.subscribers;
  const hopMs = Math.max(hop.slice.addedMs, hop.one.addedMs, 0.05);
  const calibration = { sendMs: round(sendMs, 4), hopMs: round(hopMs, 3), relayMs: round(hopMs, 3) };
  return {
    scenario: 'fanout_tree', unit: 'ms',
    what: 'time until every subscriber has a notification (Subscriptions.notify): the loop in the topic object vs the tree of FanOutRelay objects '
      + `(${SLICE} per relay, ${CHILDREN} children), rounds alternating. Real clients: trigger → last handler ran. Stand-ins: trigger → publish returned (every stand-in has it). `
      + 'Local workerd runs every object on one thread: the tree cannot run its relays in parallel here.',
    measured: { clients: measured, standIns: simulated, hop },
    model: {
      calibration, remoteHopMs: ASSUMED_REMOTE_HOP_MS,
      assumptions: 'relays on threads of their own (as on Cloudflare); every send costs the fanning object sendMs (measured here with the receiver on the same thread, so an upper bound); '
        + `the topic object copies each name into a job (${SPLIT_MS} ms) and classifies each answer (${CLASSIFY_MS} ms, after all have it: treeReturnedMs), both measured in Node; `
        + 'each level of relays adds hopMs; each relay costs its parent relayMs (what a relay adds to a slice of 256 here, both objects on one thread: an upper bound); the leaves send their slices at the same time; '
        + `remotePoints: the same with a hop of ${ASSUMED_REMOTE_HOP_MS} ms (assumed, not measured)`,
      points: MODEL_LEVELS.map((count) => model(count, calibration)),
      remotePoints: MODEL_LEVELS.map((count) => model(count, { ...calibration, hopMs: ASSUMED_REMOTE_HOP_MS })),
    },
    samples: { rounds: ROUNDS, standInRounds: STAND_IN_ROUNDS, hopRounds: HOP_ROUNDS }, seconds,
  };
}
