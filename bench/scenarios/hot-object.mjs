/**
 * The ceiling of one hot object: how much CPU one Durable Object spends per
 * call when its callers' sockets are held elsewhere (meshgate's node), beside
 * one agent that holds every socket itself (the Agents SDK).
 *
 * The callers run in a second workerd process (bench/remote-worker.ts): a
 * driver there calls the node in the bench's workerd exactly as gateways do,
 * 64 at a time, each as if from a gateway of its own: through that gateway's
 * session (the library's NodeSessions), and, beside it, one RPC per call. So this
 * process's CPU per call is the node's own, receiving the RPC included, as
 * on Cloudflare where each gateway runs on a thread of its own. Beside it,
 * the same driver calls a raw DO here with a string, and with the node's
 * envelope answered by a result of the node's shape (what the RPC and its
 * values cost, none of the node's work). The agent's figure is this
 * process's CPU per `@callable` with 64 in flight on one AgentClient socket.
 */
import { agentThroughput, cpuLedger } from '../measure.mjs';
import { now, pool, ratio, round, within } from '../lib.mjs';

const IN_FLIGHT = 64;
const FAN_SUBSCRIBERS = 500;
const FAN_ROUNDS = 24;

/**
 * The fan-out side of one hot object: CPU per subscriber of a topic object
 * notifying FAN_SUBSCRIBERS stand-in gateways that run in a second workerd
 * process (each answers at once: no socket, no client), beside one raw DO
 * sending a message on each of as many sockets of its own (no
 * acknowledgements). The topic's process then does only the topic's work, as
 * on Cloudflare. Three ways, alternating so drift hits all alike: the loop in
 * the topic (Subscriptions.notify below the relay threshold), the same
 * notifications as bare RPCs (none of the library's bookkeeping: what one RPC
 * per subscriber costs by itself), and through relays (which run in the
 * second process too).
 */
async function fanOutPerSubscriber(mesh, n, cpu) {
  const subscribers = n(FAN_SUBSCRIBERS);
  const rounds = n(FAN_ROUNDS);
  const client = await mesh.connect('hot-fan');
  const topic = client.node('TOPIC', 'hot-fan');
  if ((await topic.fillStandIns('hot', subscribers)) !== subscribers) throw new Error('hot fan-out: stand-ins not subscribed');
  const ways = {
    loop: (count) => topic.notifyStandInRounds('hot', count, 'remote'),
    bare: (count) => topic.notifyStandInsBare('hot', count, 'remote'),
    tree: (count) => topic.notifyStandInRounds('hot', count, 'remoteTree'),
  };
  for (const run of Object.values(ways)) await run(2);
  const part = Math.max(1, Math.round(rounds / 3));
  const sent = { loop: 0, bare: 0, tree: 0 };
  for (let k = 0; k < 3; k++) {
    for (const [way, run] of Object.entries(ways)) {
      sent[way] += await cpu.timed(`fan_${way}`, () => within(run(part), 60_000, `hot fan-out (${way})`));
    }
  }
  for (const [way, count] of Object.entries(sent)) {
    if (count !== subscribers * part * 3) throw new Error(`hot fan-out (${way}): ${count} of ${subscribers * part * 3} notified`);
  }
  mesh.disconnect(client);

  const sockets = [];
  await pool(subscribers, 50, async (i) => {
    sockets[i] = await mesh.rawSocket('hot-fan');
  });
  const driver = await mesh.rawSocket('hot-fan');
  const fan = async (r) => {
    const done = await within(driver.request(`!fanq:${r}`), 10_000, 'raw fan-out');
    if (done !== `!done:${subscribers}`) throw new Error(`raw fan-out: ${done}, expected ${subscribers} sockets`);
  };
  await fan(0);
  await cpu.timed('fan_raw', async () => {
    for (let r = 1; r <= rounds; r++) await fan(r);
  });
  for (const s of [...sockets, driver]) s.terminate();
  const per = (side, count) => round((cpu.spent[side] * 1000) / (subscribers * count), 1);
  return {
    subscribers, rounds: part * 3,
    topicCpuUsPerSubscriber: { loop: per('fan_loop', part * 3), bareRpcs: per('fan_bare', part * 3), relays: per('fan_tree', part * 3) },
    rawCpuUsPerSocket: per('fan_raw', rounds),
  };
}

export async function hotObject({ startMesh, remoteScript, n }) {
  const mesh = await startMesh({ remoteScript });
  try {
    return await measureHotObject(mesh, n);
  } finally {
    await mesh.dispose();
  }
}

async function measureHotObject(mesh, n) {
  const drive = async (kind, count) => {
    const t = now();
    const response = await within(fetch(`${mesh.remote.base}/hot/${kind}/${count}/${IN_FLIGHT}`), 30_000, `hot ${kind}`);
    const ok = Number(await response.text());
    if (ok !== count) throw new Error(`hot ${kind}: ${ok} of ${count} calls answered`);
    return { count, perSecond: count / ((now() - t) / 1000) };
  };
  const agent = await mesh.agentClient('hot');
  const sides = ['node', 'direct', 'bare', 'envelope'];
  for (const side of sides) await drive(side, n(2_000));
  await agentThroughput(agent, n(2_000), IN_FLIGHT, 2_000);
  const cpu = cpuLedger(mesh.pid);
  const counts = { node: 0, direct: 0, bare: 0, envelope: 0, agent: 0 };
  const rates = { node: [], direct: [], bare: [], envelope: [], agent: [] };
  for (let r = 0; r < 3; r++) {
    for (const [side, run] of [...sides.map((kind) => [kind, () => drive(kind, n(8_000))]), ['agent', () => agentThroughput(agent, n(8_000), IN_FLIGHT, 4_000)]]) {
      const result = await cpu.timed(side, run);
      counts[side] += result.count;
      rates[side].push(Math.round(result.perSecond));
    }
  }
  mesh.closeAgent(agent);
  const perCall = (side) => (cpu.spent[side] * 1000) / counts[side];
  const fanOut = await fanOutPerSubscriber(mesh, n, cpu);
  const nodeUs = perCall('node');
  const agentUs = perCall('agent');
  return {
    scenario: 'hot_object', unit: 'µs / call',
    what: `CPU per call in one hot Durable Object, ${IN_FLIGHT} in flight: a meshgate node whose callers' sockets are elsewhere, beside one agent holding its socket`,
    measured: {
      nodeCpuUsPerCall: round(nodeUs, 1),
      // what one JS thread could sustain at that CPU per call
      ceilingCallsPerSecond: Math.round(1e6 / nodeUs),
      drivenPerSecond: rates.node,
      // the same calls, one RPC each (no session): what a gateway sent before sessions
      directCpuUsPerCall: round(perCall('direct'), 1), directDrivenPerSecond: rates.direct,
    },
    baseline: {
      name: 'a raw DO taking bare RPCs from the same driver: a string echoed; the node\'s envelope answered with a result of its shape',
      cpuUsPerCall: round(perCall('bare'), 1), drivenPerSecond: rates.bare,
      envelopeCpuUsPerCall: round(perCall('envelope'), 1), envelopeDrivenPerSecond: rates.envelope,
    },
    peers: { agents: { name: `Agents SDK @callable, ${IN_FLIGHT} in flight on one AgentClient socket`, cpuUsPerCall: round(agentUs, 1), ceilingCallsPerSecond: Math.round(1e6 / agentUs), perSecond: rates.agent } },
    fanOut: {
      what: `a topic object notifying ${fanOut.subscribers} stand-in gateways in a second workerd process (Subscriptions.notify by the loop, the same as bare RPCs, and through relays there), beside one raw DO sending on ${fanOut.subscribers} sockets of its own; ${fanOut.rounds} rounds each`,
      ...fanOut,
    },
    ratio: {
      ceilingVsAgent: ratio(agentUs, nodeUs),
      directCeilingVsAgent: ratio(agentUs, perCall('direct')),
      fanOutVsRaw: { loop: ratio(fanOut.topicCpuUsPerSubscriber.loop, fanOut.rawCpuUsPerSocket), relays: ratio(fanOut.topicCpuUsPerSubscriber.relays, fanOut.rawCpuUsPerSocket) },
      fanOutLoopVsBareRpcs: ratio(fanOut.topicCpuUsPerSubscriber.loop, fanOut.topicCpuUsPerSubscriber.bareRpcs),
    },
    target: 'one meshgate node sustains more calls per second than one agent; fan-out CPU per subscriber in the node ≤ 2× one DO sending on its own sockets',
  };
}
