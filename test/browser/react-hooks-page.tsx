/**
 * The page test/browser/react-hooks.test.ts drives: meshgate/react under
 * StrictMode against the test fixture Worker. It reports what the test
 * checks on `window.hooks` and in data attributes.
 */
import { StrictMode, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { MeshProvider, useCall, useConnectionState, useIncoming, useMeshClient, useNode } from '../../src/react/index.js';
import { SharedClient } from '../../src/react/shared-client.js';
import type { MeshClient } from '../../src/client/index.js';

type Counter = { increment(by?: number): number; fail(): never };
type Editor = { applyChange(change: unknown): unknown };

const params = new URLSearchParams(location.hash.slice(1));
const seen = {
  sockets: 0,
  registrations: 0,
  clients: new Set<MeshClient>(),
  renders: 0,
};
const NativeSocket = window.WebSocket;
window.WebSocket = class extends NativeSocket {
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols);
    seen.sockets++;
  }
} as typeof WebSocket;
const register = SharedClient.prototype.register;
SharedClient.prototype.register = function (this: SharedClient, ...args: Parameters<typeof register>) {
  seen.registrations++;
  return register.apply(this, args);
};

function Status() {
  const connection = useConnectionState();
  return <output id="status" data-state={connection.state} data-superseded={String(connection.superseded)}
    data-login-required={connection.loginRequired ?? ''} data-subscription-required={String(connection.subscriptionRequired)}>
    {connection.instanceName ?? ''}
  </output>;
}

function Panel() {
  const client = useMeshClient();
  seen.clients.add(client);
  seen.renders++;
  const [renders, setRenders] = useState(0);
  const counter = useNode<Counter>('COUNTER', 'react-hooks');
  const add = useCall((by: number) => counter.increment(by));
  const fail = useCall(() => counter.fail());
  // A new closure every render: the mesh must reach the latest one, registered once.
  useIncoming<Editor>({ applyChange: (change) => `render ${renders}: ${String(change)}` });
  return <section>
    <button id="rerender" onClick={() => setRenders((n) => n + 1)}>rerender</button>
    <span id="renders">{renders}</span>
    <button id="add" onClick={() => void add.call(2).catch(() => undefined)}>add</button>
    <span id="add-state" data-loading={String(add.loading)}>{add.data ?? ''}</span>
    <button id="fail" onClick={() => void fail.call().catch(() => undefined)}>fail</button>
    <span id="fail-state" data-loading={String(fail.loading)}>{fail.error ? (fail.error as Error).name : ''}</span>
  </section>;
}

function App() {
  const [mounted, setMounted] = useState(true);
  const options = { url: params.get('url')!, accessToken: params.get('token')!, reconnectMinDelayMs: 20, reconnectMaxDelayMs: 100 };
  return <>
    <button id="toggle" onClick={() => setMounted((m) => !m)}>toggle</button>
    {mounted && <MeshProvider options={options} disposeDelayMs={Number(params.get('disposeDelayMs') ?? 1000)}>
      <Status />
      <Panel />
    </MeshProvider>}
  </>;
}

Object.assign(window, { hooks: { seen: () => ({ sockets: seen.sockets, registrations: seen.registrations, clients: seen.clients.size, renders: seen.renders }) } });
createRoot(document.getElementById('root')!).render(<StrictMode><App /></StrictMode>);
