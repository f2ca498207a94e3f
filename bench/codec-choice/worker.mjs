import { codecs, fidelity, run } from './core.mjs';
export default {
  async fetch(request) {
    const q = new URL(request.url).searchParams;
    if (q.get('fidelity')) return Response.json(Object.fromEntries(Object.entries(codecs).map(([k, c]) => [k, fidelity(c)])));
    const n = Math.min(Number(q.get('n')), 10_000);
    run(q.get('codec'), q.get('size'), q.get('op'), n);
    return new Response('ok');
  },
};
