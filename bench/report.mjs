/**
 * The table `npm run bench` prints: one row per figure, meshgate beside the raw
 * echo and, for calls, the RPC-hop floor. Reads only the entries the scenarios
 * returned, so it can format any latest.json.
 */
import { ratio, round } from './lib.mjs';

const fmt = (x) => (x === null || x === undefined ? '—' : typeof x === 'number' ? (Math.abs(x) >= 1000 ? Math.round(x).toLocaleString('en-US') : String(round(x, 2))) : String(x));
const times = (r) => (r === null || r === undefined ? '—' : `${r}×`);

const percentiles = (s, row) => {
  const { measured: m, baseline: b } = s;
  const { partyserver: party, agents } = s.peers ?? {};
  for (const p of ['p50', 'p90', 'p99']) row(`${p} ms`, m[p], b[p], ratio(m[p], b[p]), p === 'p50' ? m.n : null, s.baselineHop?.[p], party?.[p], agents?.[p]);
};

/** Rows `[metric, meshgate, raw]` of the cost entry, each of them per object-seconds. */
function costRows({ measured: m, baseline: b, idleWindowSeconds }) {
  return [
    ['in-memory s / isolated call (gateway + node)', m.call.seconds, b.call.seconds],
    ['billable s / isolated call', m.call.billableSeconds, b.call.billableSeconds],
    [`in-memory s / fan-out to ${m.fanOut.subscribers} (topic + gateways)`, m.fanOut.seconds, b.fanOut.seconds],
    [`billable s / fan-out to ${m.fanOut.subscribers}`, m.fanOut.billableSeconds, b.fanOut.billableSeconds],
    ['in-memory s / idle connection-hour', m.idleConnection.seconds, b.idleConnection.seconds],
    ['billable s / idle connection-hour', m.idleConnection.billableSeconds, b.idleConnection.billableSeconds],
    ['idle window before eviction, s', idleWindowSeconds, idleWindowSeconds],
  ];
}

/** The breakdown's rows for one way of calling: CPU per call, then each stage's share of it. */
function stageRows(label, { measured: m, baselineHop: h, peers }, row) {
  const a = peers?.agents;
  row(`workerd CPU µs / ${label}`, m.cpuUsPerCall, null, null, m.calls, h.cpuUsPerCall, null, a?.cpuUsPerCall);
  const stages = new Set([...Object.keys(m.stagesUsPerCall), ...Object.keys(h.stagesUsPerCall), ...Object.keys(a?.stagesUsPerCall ?? {})]);
  for (const stage of stages) row(`  ${stage}`, m.stagesUsPerCall[stage] ?? null, null, null, null, h.stagesUsPerCall[stage] ?? null, null, a?.stagesUsPerCall[stage] ?? null);
}

/** The rows of `fanout_N` and `notify_N`: `total` is everyone answered, or the publish returned. */
const fanoutRows = (totalLabel) => (s, row) => {
  const { measured: m, baseline: b } = s;
  row(`${totalLabel} p50 ms`, m.total.p50, b?.total.p50, s.ratio?.total_p50, m.total.n);
  row(`${totalLabel} p99 ms`, m.total.p99, b?.total.p99, ratio(m.total.p99, b?.total.p99), null);
  row('per client p50 ms', m.perClient.p50, b?.perClient.p50, s.ratio?.perClient_p50, m.perClient.n);
  row('per client p99 ms', m.perClient.p99, b?.perClient.p99, s.ratio?.perClient_p99, null);
};

/** How each kind of entry becomes rows: `row(metric, meshgate, raw, ratio, n, hop, partyserver, agents)`. */
const ROWS = {
  roundtrip(s, row) {
    const { measured: m, baseline: b, baselineHop: h } = s;
    percentiles(s, row);
    const cpu = (x) => x?.workerdCpuUsPerCall;
    row('workerd CPU µs / call', cpu(m), cpu(b), ratio(cpu(m), cpu(b)), null, cpu(h), cpu(s.peers?.partyserver), cpu(s.peers?.agents));
    const client = (x) => x?.clientCpuUsPerCall;
    row('client CPU µs / call (Node, bench process)', client(m), client(b), ratio(client(m), client(b)), null, client(h), client(s.peers?.partyserver), client(s.peers?.agents));
    const session = s.hopSession;
    if (session) {
      row('  floor through an RpcTarget session: p50 ms', session.p50, b.p50, ratio(session.p50, b.p50), session.n, h?.p50);
      row('  floor through a session: workerd CPU µs / call', cpu(session), cpu(b), ratio(cpu(session), cpu(b)), null, cpu(h));
    }
    const ladder = s.hopToNode;
    if (ladder) {
      row('  floor → meshgate node (no gateway): p50 ms', ladder.p50, b.p50, ratio(ladder.p50, b.p50), ladder.n, h?.p50);
      row('  floor → meshgate node: workerd CPU µs / call', cpu(ladder), cpu(b), ratio(cpu(ladder), cpu(b)), null, cpu(h));
    }
    const hand = m.byHand;
    if (!hand) return;
    row('  frames by hand, no MeshClient: p50 ms', hand.p50, b.p50, ratio(hand.p50, b.p50), hand.n, h?.p50);
    row('  frames by hand: workerd CPU µs / call', cpu(hand), cpu(b), ratio(cpu(hand), cpu(b)), null, cpu(h));
    row('  frames by hand: client CPU µs / call', client(hand), client(b), ratio(client(hand), client(b)), null, client(h));
  },
  percentiles,
  throughput(s, row) {
    const { measured: m, baseline: b, baselineHop: h } = s;
    const { partyserver: party, agents } = s.peers ?? {};
    const cpu = (x) => [x.workerdCpuUsPerCall, b.workerdCpuUsPerCall, ratio(x.workerdCpuUsPerCall, b.workerdCpuUsPerCall), null, h.workerdCpuUsPerCall, party?.workerdCpuUsPerCall, agents?.workerdCpuUsPerCall];
    row('per second, 64 in flight (to a DO)', m.perSecond, b.perSecond, s.ratio.perSecond, s.samples.mesh ?? s.samples.measured, h.perSecond, party?.perSecond, agents?.perSecond);
    row('workerd CPU µs / call (to a DO)', ...cpu(m));
    row('per second, 64 in flight (DO with bursts)', m.toBurstDO.perSecond, b.perSecond, ratio(m.toBurstDO.perSecond, b.perSecond), null, h.perSecond);
    row('workerd CPU µs / call (DO with bursts)', ...cpu(m.toBurstDO));
    row('per second, 64 in flight (to a Worker)', m.toWorker.perSecond, b.perSecond, ratio(m.toWorker.perSecond, b.perSecond), null, h.perSecond);
    row('workerd CPU µs / call (to a Worker)', ...cpu(m.toWorker));
  },
  /** The ratio column here is checked / unchecked; the unchecked call stands in the baseline column. */
  checked(s, row) {
    const { unchecked: u, valibot, zod } = s.measured;
    for (const [name, x] of [['valibot', valibot], ['zod', zod]]) {
      row(`p50 ms, ${name}-checked vs unchecked`, x.p50, u.p50, ratio(x.p50, u.p50), x.n);
      row(`workerd CPU µs / call, ${name}-checked vs unchecked`, x.workerdCpuUsPerCall, u.workerdCpuUsPerCall, ratio(x.workerdCpuUsPerCall, u.workerdCpuUsPerCall), null);
      row(`${name} check alone, µs (Node V8)`, x.checkAloneUs, null, null, null);
    }
  },
  supersede(s, row) {
    const { measured: m, baseline: b } = s;
    row('connect → old 4409 close p50 ms', m.closeAfterConnect.p50, null, null, m.closeAfterConnect.n);
    row('connect → old 4409 close p99 ms', m.closeAfterConnect.p99, null, null, null);
    row('connect → call on new socket p50 ms', m.followedCallAfterConnect.p50, null, null, null);
    row('old 4409 close ahead of new open p50 ms', m.closeBeforeOpen.p50, null, null, null);
    row('new open → call on new socket p50 ms', m.followedCallAfterOpen.p50, null, null, null);
    row('connect → open p50 ms', m.connectToOpen.p50, b.p50, s.ratio.connectToOpen_p50, null);
    row('connect → open p99 ms', m.connectToOpen.p99, b.p99, s.ratio.connectToOpen_p99, null);
  },
  clients(s, row) {
    const { measured: m, baseline: b } = s;
    row('RSS bytes / idle connection', m.bytesPerConnection, b.bytesPerConnection, s.ratio.bytesPerConnection, s.samples.connections);
    if (m.callLatency) {
      row(`${s.samples.connections}×10 calls total ms`, m.callsTotalMs, b.callsTotalMs, s.ratio.callsTotalMs, m.callLatency.n);
      row(`${s.samples.connections}×10 calls p99 ms`, m.callLatency.p99, b.callLatency?.p99, s.ratio.p99, null);
    }
  },
  cost(s, row) {
    for (const [metric, mesh, raw] of costRows(s)) row(metric, mesh, raw, ratio(mesh, raw), null);
  },
  breakdown(s, row) {
    stageRows('sequential call', s, row);
    if (s.pipelined?.measured) stageRows('call, 64 in flight (to a DO)', s.pipelined, row);
  },
  hot(s, row) {
    const { measured: m, baseline: b, peers } = s;
    row('node CPU µs / call, callers in a 2nd workerd, each through its gateway\'s session', m.nodeCpuUsPerCall, null, null, null, null, null, peers.agents.cpuUsPerCall);
    if (m.directCpuUsPerCall !== undefined) row('  the same calls, one RPC each (no session)', m.directCpuUsPerCall, null, null, null, null, null, peers.agents.cpuUsPerCall);
    row('raw DO CPU µs / bare RPC from there: string / node\'s envelope', `${fmt(b.cpuUsPerCall)} / ${fmt(b.envelopeCpuUsPerCall)}`, null, null, null, null, null, null);
    row('ceiling of one object, calls/s (from CPU per call)', m.ceilingCallsPerSecond, null, null, null, null, null, peers.agents.ceilingCallsPerSecond);
    const f = s.fanOut;
    if (f) {
      // the floor column: the same fan-out as bare RPCs, from the same process
      row(`fan-out: topic CPU µs / subscriber, loop, ${f.subscribers} stand-ins in a 2nd workerd`, f.topicCpuUsPerSubscriber.loop, f.rawCpuUsPerSocket, s.ratio.fanOutVsRaw.loop, f.subscribers * f.rounds, f.topicCpuUsPerSubscriber.bareRpcs);
      row(`fan-out: topic CPU µs / subscriber, through relays (in the 2nd workerd)`, f.topicCpuUsPerSubscriber.relays, f.rawCpuUsPerSocket, s.ratio.fanOutVsRaw.relays, f.subscribers * f.rounds);
    }
  },
  scale(s, row) {
    for (const p of s.measured.points) {
      row(`${p.clients} clients: RSS bytes / connection`, p.bytesPerConnection, null, null, p.clients);
      row(`${p.clients} clients: calls/s across all`, p.callsPerSecond, null, null, p.calls);
      row(`${p.clients} clients: call p50 / p99 ms`, `${round(p.p50, 1)} / ${round(p.p99, 1)}`, null, null, null);
    }
  },
  stream(s, row) {
    const { measured: m, baseline: b } = s;
    row('first chunk p50 ms (raw: round trip)', m.timeToFirstChunkMs.p50, b.roundTripMs.p50, s.ratio.timeToFirstChunkP50, m.timeToFirstChunkMs.n);
    row('first chunk p99 ms (raw: round trip)', m.timeToFirstChunkMs.p99, b.roundTripMs.p99, ratio(m.timeToFirstChunkMs.p99, b.roundTripMs.p99), null);
    row('chunks/s, 100 chars (raw: echoes/s)', m.chunksPerSecond, b.perSecond, s.ratio.chunksVsRawMessages, null);
    row('bytes/s, 100-char chunks', m.bytesPerSecond, b.bytesPerSecond, ratio(m.bytesPerSecond, b.bytesPerSecond), null);
    row(`bytes/s, ${m.large.chunkChars}-char chunks`, m.large.bytesPerSecond, b.bytesPerSecond, ratio(m.large.bytesPerSecond, b.bytesPerSecond), null);
  },
  /** Loop in the topic object (the meshgate column) beside the tree of relays (the baseline column): ratio = loop / tree. */
  tree(s, row) {
    const pair = (label, p) => row(`${label}: loop vs tree p50 ms (${p.relays} relays)`, p.loop.p50, p.tree.p50, ratio(p.loop.p50, p.tree.p50), p.loop.n + p.tree.n);
    for (const p of s.measured.clients) pair(`${p.subscribers} clients, to all`, p);
    for (const p of s.measured.standIns) pair(`${p.subscribers} stand-ins, to all`, p);
    for (const h of [s.measured.hop.one, s.measured.hop.slice]) row(`${h.subscribers} stand-in(s), per round in the topic object: loop vs tree ms`, h.loopMsPerRound, h.treeMsPerRound, ratio(h.loopMsPerRound, h.treeMsPerRound), s.samples.hopRounds);
    for (const p of s.model.points) row(`model ${p.subscribers}: loop vs tree ms (relays on own threads, depth ${p.depth})`, p.loopMs, p.treeMs, ratio(p.loopMs, p.treeMs), null);
    for (const p of s.model.remotePoints) row(`model ${p.subscribers}, ${s.model.remoteHopMs} ms hops (assumed): loop vs tree ms`, p.loopMs, p.treeMs, ratio(p.loopMs, p.treeMs), null);
  },
  /** meshgate's own code per stage (meshgate column); the wake cost in the raw column. */
  own(s, row) {
    const { measured: m, wake } = s;
    for (const [stage, us] of Object.entries(m.stagesUsPerCall)) row(`  ${stage}`, us, null, null, null);
    row("gateway's own code, µs / call (warm, in workerd)", m.gatewayUsPerCall, null, null, m.loops);
    row("node's own code, µs / call (warm, in workerd)", m.nodeUsPerCall, null, null, null);
    row('raw echo CPU µs / message, client answers at once', null, wake.rawEchoCpuUsPerMessage.pause0us, null, null);
    row('raw echo CPU µs / message, client waits 200 µs', null, wake.rawEchoCpuUsPerMessage.pause200us, ratio(wake.rawEchoCpuUsPerMessage.pause200us, wake.rawEchoCpuUsPerMessage.pause0us), null);
  },
  fanout: fanoutRows('all answered'),
  notify: fanoutRows('publish returned'),
};

/** Which formatter an entry's scenario name takes: `roundtrip_deflate` as `roundtrip`, `fanout_500` as `fanout`. */
const KIND = { to_client: 'percentiles', reconnect: 'percentiles', fanout_tree: 'tree', own_code: 'own' };
const kindOf = (name) => KIND[name] ?? name.split('_')[0];

/** The printed report of one run's output (what latest.json holds), as lines. */
export function report(output) {
  const { machine, versions, scenarios } = output;
  const rows = [];
  for (const s of scenarios) {
    if (s.error || s.skipped) {
      rows.push([s.scenario, s.error ? `ERROR: ${s.error}` : `skipped: ${s.skipped}`, '', '', '', '', '', '', '', '']);
      continue;
    }
    const row = (metric, measured, baseline, r, count, hop = null, party = null, agents = null) =>
      rows.push([s.scenario, metric, fmt(measured), fmt(baseline), times(r), fmt(hop), times(ratio(measured, hop)), fmt(party), fmt(agents), fmt(count)]);
    ROWS[kindOf(s.scenario)]?.(s, row);
  }
  const header = ['scenario', 'metric', 'meshgate', 'raw echo', 'ratio', 'RPC-hop floor', '÷ floor', 'partyserver', 'Agents SDK', 'n'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i >= 2 ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ');
  return [
    '',
    `meshgate bench — node ${versions.node}, workerd ${versions.workerd}, ${versions.codec}, ${machine.cpus} × ${machine.cpuModel}`,
    `(permessage-deflate off for every client, checked on every socket, unless the scenario says _deflate; ratio = meshgate / raw echo, ÷ floor = meshgate / RPC-hop floor; load average ${machine.loadAverage.start[0]} → ${machine.loadAverage.end[0]})`,
    `peers: agents ${versions.agents ?? '?'} (@callable through AgentClient), partyserver ${versions.partyserver ?? '?'} (hibernate: true, echo)`,
    line(header),
    widths.map((w) => '─'.repeat(w)).join('  '),
    ...rows.map(line),
  ];
}
