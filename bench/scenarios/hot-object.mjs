/**
 * The ceiling of one hot object: how much CPU one Durable Object spends per
 * call when its callers' sockets are held elsewhere (meshgate's node), beside
 * one agent that holds every socket itself (the Agents SDK).
 *
 * The node's work is isolated without sockets: a driver DO sends it calls
 * exactly as a gateway does (the same RPC, an envelope of the same shape), 64
 * at a time, and then as many bare RPCs with a string to a raw DO. What the
 * process spends beyond the bare RPCs is the node's; the node's own share of
 * a bare RPC is not known, so its CPU per call lies between that difference
 * and the difference plus the whole bare RPC. The agent's figure is the
 * process CPU per `@callable` with 64 in flight on one AgentClient socket.
 */
import { agentThroughput, cpuLedger } from '../measure.mjs';
import { now, pool, ratio, round, within } from '../lib.mjs';

const IN_FLIGHT = 64;
const FAN_SUBSCRIBERS = 500;
const FAN_ROUNDS = 30;

/**
 * The fan-out side of one hot object: CPU per subscriber of a topic object
 * notifying FAN_SUBSCRIBERS stand-in gateways (no socket, no client: each
 * counts the call and answers), beside one raw DO sending a message on each
 * of as many sockets of its own (no acknowledgements). The stand-ins run on
 * the same thread, so the topic's share lies between the total less a bare
 * RPC (what a stand-in costs at most) and the total.
 */
async function fanOutPerSubscriber(mesh, n, cpu, bareUs) {
  const subscribers = n(FAN_SUBSCRIBERS);
  const rounds = n(FAN_ROUNDS);
  const client = await mesh.connect('hot-fan');
  const topic = client.node('TOPIC', 'hot-fan');
  if ((await topic.fillStandIns('hot', subscribers)) !== subscribers) throw new Error('hot fan-out: stand-ins not subscribed');
  await topic.notifyStandInRounds('hot', 2);
  await topic.notifyStandInsBare('hot', 2);
  // The library's loop and the bare RPC loop alternate, a third of the rounds at a time, so drift hits both alike.
  const part = Math.max(1, Math.round(rounds / 3));
  let sent = 0;
  let bare = 0;
  for (let k = 0; k < 3; k++) {
    sent += await cpu.timed('fanNode', () => within(topic.notifyStandInRounds('hot', part), 60_000, 'hot fan-out'));
    bare += await cpu.timed('fanBare', () => within(topic.notifyStandInsBare('hot', part), 60_000, 'hot fan-out, bare RPCs'));
  }
  if (sent !== subscribers * part * 3 || bare !== sent) throw new Error(`hot fan-out: ${sent} and ${bare} of ${subscribers * part * 3} notified`);
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
  await cpu.timed('fanRaw', async () => {
    for (let r = 1; r <= rounds; r++) await fan(r);
  });
  for (const s of [...sockets, driver]) s.terminate();
  const per = (side, count) => (cpu.spent[side] * 1000) / (subscribers * count);
  const total = per('fanNode', part * 3);
  return {
    subscribers, rounds: part * 3,
    nodeCpuUsPerSubscriber: { atLeast: round(Math.max(0, total - bareUs), 1), atMost: round(total, 1) },
    // the same fan-out as bare RPCs (stand-ins included, as in atMost): what one RPC per subscriber costs by itself
    bareRpcCpuUsPerSubscriber: round(per('fanBare', part * 3), 1),
    rawCpuUsPerSocket: round(per('fanRaw', rounds), 1),
  };
}

export async function hotObject({ mesh, n }) {
  const drive = async (kind, count) => {
    const t = now();
    const response = await within(fetch(`${mesh.base.replace(/^ws/, 'http')}/hot/${kind}/${count}/${IN_FLIGHT}`), 30_000, `hot ${kind}`);
    const ok = Number(await response.text());
    if (ok !== count) throw new Error(`hot ${kind}: ${ok} of ${count} calls answered`);
    return { count, perSecond: count / ((now() - t) / 1000) };
  };
  const agent = await mesh.agentClient('hot');
  await drive('node', n(2_000));
  await drive('bare', n(2_000));
  await agentThroughput(agent, n(2_000), IN_FLIGHT, 2_000);
  const cpu = cpuLedger(mesh.pid);
  const counts = { node: 0, bare: 0, agent: 0 };
  const rates = { node: [], bare: [], agent: [] };
  for (let r = 0; r < 3; r++) {
    for (const [side, run] of [['node', () => drive('node', n(10_000))], ['bare', () => drive('bare', n(10_000))], ['agent', () => agentThroughput(agent, n(10_000), IN_FLIGHT, 4_000)]]) {
      const result = await cpu.timed(side, run);
      counts[side] += result.count;
      rates[side].push(Math.round(result.perSecond));
    }
  }
  mesh.closeAgent(agent);
  const perCall = (side) => (cpu.spent[side] * 1000) / counts[side];
  const fanOut = await fanOutPerSubscriber(mesh, n, cpu, perCall('bare'));
  const extra = Math.max(0, perCall('node') - perCall('bare'));
  const upper = extra + perCall('bare');
  const agentUs = perCall('agent');
  return {
    scenario: 'hot_object', unit: 'µs / call',
    what: `CPU per call in one hot Durable Object, ${IN_FLIGHT} in flight: a meshgate node whose callers' sockets are elsewhere, beside one agent holding its socket`,
    measured: {
      nodeCpuUsPerCall: { atLeast: round(extra, 1), atMost: round(upper, 1) },
      // what one JS thread could sustain at that CPU per call, at the worst of the bracket
      ceilingCallsPerSecond: Math.round(1e6 / upper),
      drivenPerSecond: rates.node,
    },
    baseline: { name: 'bare RPC with a string to a raw DO (driver and target)', cpuUsPerCall: round(perCall('bare'), 1), drivenPerSecond: rates.bare },
    peers: { agents: { name: `Agents SDK @callable, ${IN_FLIGHT} in flight on one AgentClient socket`, cpuUsPerCall: round(agentUs, 1), ceilingCallsPerSecond: Math.round(1e6 / agentUs), perSecond: rates.agent } },
    fanOut: {
      what: `a topic object notifying ${fanOut.subscribers} stand-in gateways (Subscriptions.notify, the loop), beside the same fan-out as bare RPCs and one raw DO sending on ${fanOut.subscribers} sockets of its own; ${fanOut.rounds} rounds`,
      ...fanOut,
    },
    ratio: {
      ceilingVsAgent: ratio(1e6 / upper, 1e6 / agentUs),
      fanOutVsRaw: { atLeast: ratio(fanOut.nodeCpuUsPerSubscriber.atLeast, fanOut.rawCpuUsPerSocket), atMost: ratio(fanOut.nodeCpuUsPerSubscriber.atMost, fanOut.rawCpuUsPerSocket) },
      fanOutVsBareRpcs: ratio(fanOut.nodeCpuUsPerSubscriber.atMost, fanOut.bareRpcCpuUsPerSubscriber),
    },
    target: 'one meshgate node sustains more calls per second than one agent; fan-out CPU per subscriber in the node ≤ 2× one DO sending on its own sockets',
  };
}
