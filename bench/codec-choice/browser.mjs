import { codecs, fidelity, run } from './core.mjs';
globalThis.codecBench = { names: Object.keys(codecs), fidelity: () => Object.fromEntries(Object.entries(codecs).map(([k, c]) => [k, fidelity(c)])), run };
