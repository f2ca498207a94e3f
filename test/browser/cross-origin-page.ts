/** A page served from another origin than the mesh (as from a Vite dev server): logs in, connects and calls. */
import { MeshClient } from '../../src/client/index.js';

const params = new URLSearchParams(location.search);
const mesh = params.get('mesh')!;
const out = document.getElementById('out')!;
const loginUrl = `${mesh}/auth/dev-token`;

const client = new MeshClient({
  url: mesh,
  // "url": the refresh is a URL (POSTed with credentials); else a function that posts a sub to the development login
  refresh: params.get('refresh') === 'url' ? loginUrl : async () => {
    const response = await fetch(loginUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sub: 'pat' }) });
    return (await response.json()) as { access_token: string };
  },
  reconnectMinDelayMs: 50,
  reconnectMaxDelayMs: 100,
  onStateChange: (state) => (out.dataset.state = state),
  onError: (error) => (out.dataset.error = (error as Error).message),
});

client.node<{ increment(by: number): number }>('COUNTER', 'cross-origin').increment(1)
  .then((value) => (out.textContent = `count ${value}`), (error: Error) => (out.textContent = `failed: ${error.message}`));
