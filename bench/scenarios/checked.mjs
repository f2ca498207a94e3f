/** What an argument schema costs per call: the same message echoed unchecked, through valibot and through zod, alternating blocks. */
import { PlainSocket } from '../harness.mjs';
import { cpuLedger, sequential } from '../measure.mjs';
import * as v from 'valibot';
import { z } from 'zod';
import { bounded, now, ratio, round, summary } from '../lib.mjs';

const MESSAGE = { room: 'lobby', text: 'a chat message of about forty characters', at: 1_700_000_000_000 };
const SIDES = [
  ['unchecked', 'echoMessage'],
  ['valibot', 'echoMessageValibot'],
  ['zod', 'echoMessageZod'],
];

/**
 * The check alone, in Node's V8 (the same engine as workerd): a schema check
 * is a few microseconds, below what the round trip above can resolve.
 */
async function isolatedCheckUs(schema, count) {
  const t = now();
  const done = await bounded(count, 5_000, () => schema['~standard'].validate(MESSAGE));
  return round(((now() - t) * 1000) / done, 2);
}

// The schemas bench/worker.ts declares, rebuilt here for the isolated figure.
const valibotMessage = v.object({ room: v.pipe(v.string(), v.maxLength(64)), text: v.pipe(v.string(), v.maxLength(2000)), at: v.pipe(v.number(), v.integer()) });
const zodMessage = z.object({ room: z.string().max(64), text: z.string().max(2000), at: z.number().int() });

export async function checked({ mesh, n }) {
  const c = await mesh.connect('checked', { WebSocket: PlainSocket });
  const stub = c.node('BENCH', 'checked');
  const samples = Object.fromEntries(SIDES.map(([side]) => [side, []]));
  for (const [, method] of SIDES) await sequential(n(300), 5_000, () => stub[method](MESSAGE));
  const cpu = cpuLedger(mesh.pid);
  for (let block = 0; block < 5; block++) {
    for (const [side, method] of SIDES) samples[side].push(...(await cpu.timed(side, () => sequential(n(400), 8_000, () => stub[method](MESSAGE)))));
  }
  mesh.disconnect(c);
  const figures = (side) => ({ ...summary(samples[side]), workerdCpuUsPerCall: round((cpu.spent[side] * 1000) / samples[side].length, 0) });
  const m = { unchecked: figures('unchecked'), valibot: figures('valibot'), zod: figures('zod') };
  await isolatedCheckUs(valibotMessage, n(20_000));
  await isolatedCheckUs(zodMessage, n(20_000));
  m.valibot.checkAloneUs = await isolatedCheckUs(valibotMessage, n(100_000));
  m.zod.checkAloneUs = await isolatedCheckUs(zodMessage, n(100_000));
  return {
    scenario: 'checked', unit: 'ms',
    what: 'sequential call with one object argument (3 fields), unchecked and with @mesh({ args: [schema] })',
    measured: m,
    ratio: { valibot_p50: ratio(m.valibot.p50, m.unchecked.p50), zod_p50: ratio(m.zod.p50, m.unchecked.p50) },
    samples: { unchecked: m.unchecked.n, valibot: m.valibot.n, zod: m.zod.n },
  };
}
