/**
 * V8 CPU profiles of the bench Worker on workerd, through the runtime's
 * inspector (Miniflare's `inspectorPort`), and where their time goes by
 * stage of a call. Every sample is given to the innermost frame of the
 * bench bundle on its stack (so `JSON.parse` called by the frame decoder
 * counts as frame parsing); esbuild's `// src/...` markers in the bundle say
 * which source file a line belongs to.
 */
import WebSocket from 'ws';
import { within } from './lib.mjs';

/** A Chrome DevTools Protocol session on one Worker of a Miniflare instance. */
export async function inspect(mf, worker = 'main') {
  const base = (await mf.getInspectorURL()).toString().replace(/\/$/, '');
  // With inspectorPort 0 this is workerd's own inspector, which names each Worker `core:user:{name}`.
  const targets = await (await fetch(`${base.replace(/^ws/, 'http')}/json/list`)).json();
  const target = targets.find((t) => t.id === `core:user:${worker}` || t.id.endsWith(`-${worker}`));
  if (!target) throw new Error(`no inspector target for Worker ${worker} (targets: ${targets.map((t) => t.id).join(', ')})`);
  const ws = new WebSocket(target.webSocketDebuggerUrl, { perMessageDeflate: false });
  await within(new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); }), 10_000, 'inspector connection');
  let next = 1;
  const waiting = new Map();
  ws.on('message', (data) => {
    const message = JSON.parse(data.toString());
    const settle = waiting.get(message.id);
    if (!settle) return;
    waiting.delete(message.id);
    settle(message);
  });
  const send = (method, params = {}) => {
    const id = next++;
    ws.send(JSON.stringify({ id, method, params }));
    return within(new Promise((resolve, reject) => waiting.set(id, (m) => (m.error ? reject(new Error(`${method}: ${m.error.message}`)) : resolve(m.result)))), 30_000, method);
  };
  return { send, close: () => ws.terminate() };
}

/** The profile (CDP Profiler.Profile) of whatever `work()` makes the Worker do; sampled every `intervalUs`. */
export async function profileOf(session, work, intervalUs = 50) {
  await session.send('Profiler.enable');
  await session.send('Profiler.setSamplingInterval', { interval: intervalUs });
  await session.send('Profiler.start');
  try {
    await work();
  } finally {
    var { profile } = await session.send('Profiler.stop');
    await session.send('Profiler.disable');
  }
  return profile;
}

/** Line ranges of each source file in an esbuild bundle, from its `// path` markers. */
export function sourceMap(bundle) {
  const marks = [];
  bundle.split('\n').forEach((line, index) => {
    const m = /^\/\/ ((?:src|bench|node_modules)\/\S+)$/.exec(line);
    if (m) marks.push([index, m[1]]);
  });
  /** The source file of a 0-based bundle line. */
  return (line) => {
    let lo = 0;
    let hi = marks.length - 1;
    let found = null;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (marks[mid][0] <= line) {
        found = marks[mid][1];
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return found;
  };
}

/**
 * The stages a meshgate call passes through, by source file (and, where one
 * file does several things, by function). First match wins.
 */
const STAGES = [
  ['frame parsing and checks', (f) => /gateway\/(frame-intake|frame-rate|sockets)\.ts|protocol\/(frames|client-messages|nesting)\.ts/.test(f.file) && !/^encode|^safeSend|^sendHeld|^sendBatched|^sendSoon|^send$/.test(f.fn)],
  ['dedupe bookkeeping (answer memory, running calls, deadlines)', (f) => /protocol\/answer-memory|gateway\/(deadlines|grace-memory)\.ts|nodes\/call-deadlines\.ts/.test(f.file) || /answerResend|answer$|remember/.test(f.fn)],
  ['call context (origin, state, AsyncLocalStorage)', (f) => /nodes\/context\.ts/.test(f.file) || /clientState|withoutProtoKeys/.test(f.fn)],
  ['bounded-decode measuring', (f) => /protocol\/value-bounds\.ts|nodes\/node-bounds\.ts/.test(f.file)],
  ['codec (devalue encode / decode)', (f) => /protocol\/codec\.ts|node_modules\/devalue/.test(f.file)],
  ['result delivery (call_response frame, send)', (f) => /encodeFrame|encodeCallResponse|finish|^safeSend|^sendHeld|^sendBatched|^sendSoon|^send$/.test(f.fn)],
  ['RPC envelope and stubs (gateway → node)', (f) => /nodes\/(targets|base|packed-envelope)\.ts|gateway\/calls(-to-mesh)?\.ts/.test(f.file)],
  ['node dispatch (allowlist, checks, method)', (f) => /nodes\/(dispatch|exposed|checks)\.ts|protocol\/(method-lookup|streamable)/.test(f.file) || (/bench\/worker\.ts/.test(f.file) && /^(echo|__meshgate)/.test(f.fn))],
  ['gateway entry (webSocketMessage)', (f) => /gateway\//.test(f.file)],
  ['peers and baselines (bench/peers.ts, raw DOs)', (f) => /bench\/|node_modules\/(agents|partyserver)/.test(f.file)],
];

/**
 * Microseconds of self time by stage: each sample goes to the innermost frame of the bundle on its
 * stack; samples with none are the runtime's own JS, the garbage collector or (program).
 */
export function breakdown(profile, bundleUrlPattern, fileOfLine) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const own = (node) => bundleUrlPattern.test(node.callFrame.url);
  const stageCache = new Map();
  const stageOf = (id) => {
    if (stageCache.has(id)) return stageCache.get(id);
    let node = byId.get(id);
    while (node && !own(node)) node = byId.get(parent.get(node.id));
    let stage;
    if (!node) {
      const name = byId.get(id).callFrame.functionName;
      stage = name === '(garbage collector)' ? 'garbage collector' : name === '(idle)' ? 'idle' : name === '(program)' ? '(program): runtime outside JS' : 'runtime JS (workerd, node:async_hooks)';
    } else {
      const f = { file: fileOfLine(node.callFrame.lineNumber) ?? '?', fn: node.callFrame.functionName };
      stage = STAGES.find(([, match]) => match(f))?.[0] ?? `other: ${f.file}`;
    }
    stageCache.set(id, stage);
    return stage;
  };
  const functionOf = (id) => {
    let node = byId.get(id);
    while (node && !own(node)) node = byId.get(parent.get(node.id));
    return node ? `${node.callFrame.functionName || '(anonymous)'} ${fileOfLine(node.callFrame.lineNumber) ?? '?'}` : byId.get(id).callFrame.functionName;
  };
  const us = {};
  const functions = {};
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    const stage = stageOf(samples[i]);
    // timeDeltas[i] is the time before sample i: charge it to the sample after it, as DevTools does.
    const dt = timeDeltas[i + 1] ?? 0;
    us[stage] = (us[stage] ?? 0) + dt;
    if (stage !== 'idle') functions[functionOf(samples[i])] = (functions[functionOf(samples[i])] ?? 0) + dt;
  }
  return { us, functions };
}
