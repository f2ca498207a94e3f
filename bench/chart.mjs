/**
 * The bench's charts, drawn with Vega-Lite (compiled to Vega, rendered to SVG
 * headless): the scale curve, and meshgate's ratios against the RPC-hop floor
 * and the Agents SDK, from one run's output (what latest.json holds).
 */
import { writeFileSync } from 'node:fs';
import * as vega from 'vega';
import { compile } from 'vega-lite';

async function svg(spec) {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const text = await view.toSVG();
  view.finalize();
  return text;
}

const of = (output, name) => output.scenarios.find((s) => s.scenario === name && !s.error && !s.skipped);

/** The scale curve: one panel per figure, clients on x. */
export function scaleSpec(points, title) {
  const panel = (field, label) => ({
    width: 220, height: 160,
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'clients', type: 'quantitative', title: 'connected clients' },
      y: { field, type: 'quantitative', title: label, scale: { zero: true } },
    },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title,
    data: { values: points.map((p) => ({ ...p, kbPerConnection: p.bytesPerConnection / 1024 })) },
    hconcat: [panel('kbPerConnection', 'KB per connection'), panel('callsPerSecond', 'calls/s across all'), panel('p99', 'call p99, ms')],
  };
}

/** meshgate's ratios in one run: ÷ the hop floor and ÷ the Agents SDK, with the line at 1×. */
export function ratioRows(output) {
  const rows = [];
  const rt = of(output, 'roundtrip');
  const tp = of(output, 'throughput');
  const hot = of(output, 'hot_object');
  const add = (metric, against, value) => typeof value === 'number' && Number.isFinite(value) && rows.push({ metric, against, ratio: Math.round(value * 100) / 100 });
  if (rt) {
    add('round trip p50 (lower is better)', 'RPC-hop floor', rt.measured.p50 / rt.baselineHop.p50);
    add('round trip p50 (lower is better)', 'Agents SDK', rt.measured.p50 / rt.peers?.agents?.p50);
    add('CPU per call (lower is better)', 'RPC-hop floor', rt.measured.workerdCpuUsPerCall / rt.baselineHop.workerdCpuUsPerCall);
    add('CPU per call (lower is better)', 'Agents SDK', rt.measured.workerdCpuUsPerCall / rt.peers?.agents?.workerdCpuUsPerCall);
  }
  if (tp) {
    for (const [label, figure] of [['default DO', tp.measured], ['DO with bursts', tp.measured.toBurstDO], ['Worker', tp.measured.toWorker]]) {
      add(`calls/s, 64 in flight, ${label}`, 'RPC-hop floor', figure.perSecond / tp.baselineHop.perSecond);
      add(`calls/s, 64 in flight, ${label}`, 'Agents SDK', figure.perSecond / tp.peers?.agents?.perSecond);
    }
  }
  if (hot) add('one hot object, calls/s ceiling', 'Agents SDK', hot.measured.ceilingCallsPerSecond / hot.peers.agents.ceilingCallsPerSecond);
  return rows;
}

export function ratioSpec(rows, title) {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title, width: 420,
    data: { values: rows },
    layer: [
      {
        mark: 'bar',
        encoding: {
          y: { field: 'metric', type: 'nominal', title: null, sort: null, axis: { labelLimit: 400 } },
          yOffset: { field: 'against' },
          x: { field: 'ratio', type: 'quantitative', title: 'meshgate ÷ the other, same run' },
          color: { field: 'against', type: 'nominal', title: 'against' },
        },
      },
      { mark: { type: 'rule', strokeDash: [4, 3] }, encoding: { x: { datum: 1 } } },
    ],
  };
}

/** Writes bench/results/scale.svg and ratios.svg for `output`; returns the paths written. */
export async function writeCharts(output, dir) {
  const written = [];
  const machine = `${output.machine.cpus} × ${output.machine.cpuModel}, load ${output.machine.loadAverage.start[0]} → ${output.machine.loadAverage.end[0]}`;
  const scale = of(output, 'scale');
  if (scale) {
    writeFileSync(`${dir}/scale.svg`, await svg(scaleSpec(scale.measured.points, `meshgate: cost as connected clients grow (${machine})`)));
    written.push(`${dir}/scale.svg`);
  }
  const rows = ratioRows(output);
  if (rows.length > 0) {
    writeFileSync(`${dir}/ratios.svg`, await svg(ratioSpec(rows, `meshgate against the RPC-hop floor and the Agents SDK (${machine})`)));
    written.push(`${dir}/ratios.svg`);
  }
  return written;
}
