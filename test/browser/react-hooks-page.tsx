/**
 * The page test/browser/react-hooks.test.ts drives: meshgate/react under
 * StrictMode against the test fixture Worker. It reports what the test
 * checks on `window.hooks` and in data attributes.
 */
import { StrictMode, useState, type ReactNode } from 'react';
import { createRoot } from 'react-dom/client';
import { MeshProvider, useCall, useConnectionState, useIncoming, useMeshClient, useNode, useStream, useTopic } from '../../src/react/index.js';
import { SharedClient } from '../../src/react/shared-client.js';
import type { MeshClient, Subscribed } from '../../src/client/index.js';

type Counter = { increment(by?: number): number; fail(): never };
type Editor = { applyChange(change: unknown): unknown };
type TopicRoom = { enter(topic: string, since: unknown, meta: unknown): Promise<Subscribed<string>> };
type Ticker = { ticks(key: string, ms?: number, n?: number): AsyncGenerator<number> };

const params = new URLSearchParams(location.hash.slice(1));
const seen = {
  sockets: 0,
  registrations: 0,
  clients: new Set<MeshClient>(),
  renders: 0,
  /** the useTopic panel's subscribe calls */
  subscribes: 0,
  /** the useStream panel's start calls */
  streamStarts: 0,
  shared: undefined as SharedClient | undefined,
  client: undefined as MeshClient | undefined,
  sockets_: [] as WebSocket[],
};
const NativeSocket = window.WebSocket;
window.WebSocket = class extends NativeSocket {
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols);
    seen.sockets++;
    seen.sockets_.push(this);
  }
} as typeof WebSocket;
const register = SharedClient.prototype.register;
SharedClient.prototype.register = function (this: SharedClient, ...args: Parameters<typeof register>) {
  seen.registrations++;
  seen.shared = this;
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
  seen.client = client;
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

/** A topic with history and presence in TOPIC `room`: the latest 3 publications and the members. */
function TopicPanel({ roomId }: { roomId: string }) {
  const [renders, setRenders] = useState(0);
  const room = useNode<TopicRoom>('TOPIC', roomId);
  const topic = useTopic<string>('t', {
    keep: 3,
    subscribe: (since) => {
      if (++seen.subscribes === 1 && params.has('failFirst')) return Promise.reject(new RangeError('the first join is refused'));
      return room.enter('t', since, { renders });
    },
  });
  return <section>
    <button id="topic-rerender" onClick={() => setRenders((n) => n + 1)}>rerender</button>
    <span id="topic-renders">{renders}</span>
    <output id="recovery" data-recovered={String(topic.recovery?.recovered)} data-missed={topic.recovery?.missed ?? ''} data-subscribing={String(topic.subscribing)}
      data-error={topic.error ? (topic.error as Error).message : ''} />
    <ul id="publications">{topic.publications.map((p) => <li key={`${p.epoch}:${p.offset}`} data-recovered={String(p.recovered)}>{p.data}</li>)}</ul>
    <ul id="members">{topic.members.map((m) => <li key={m.sub} data-sub={m.sub}>{m.sub}</li>)}</ul>
  </section>;
}

/** The topic panel keyed by its room: switching rooms mounts another panel for the same topic name in the same commit. */
function RoomSwitch() {
  const [roomId, setRoomId] = useState(params.get('room')!);
  return <>
    <button id="topic-switch" onClick={() => setRoomId((r) => `${r}-b`)}>switch room</button>
    <TopicPanel key={roomId} roomId={roomId} />
  </>;
}

/** A ticker stream keyed by `key`: a new key cancels the old stream and starts another. */
function StreamPanel() {
  const client = useMeshClient();
  const [key, setKey] = useState(params.get('stream')!);
  const n = Number(params.get('n') ?? 10_000);
  const stream = useStream((signal) => {
    seen.streamStarts++;
    return client.node<Ticker>('TICKER', 'react', { signal }).ticks(key, 20, n);
  }, [key], { keep: 5 });
  return <section id="stream" data-key={key} data-count={stream.count} data-running={String(stream.running)} data-done={String(stream.done)}
    data-stopped={String(stream.stopped)} data-error={stream.error ? (stream.error as Error).name : ''}>
    <button id="stream-next" onClick={() => setKey((k) => `${k}+`)}>next</button>
    <button id="stream-stop" onClick={stream.stop}>stop</button>
    <span id="stream-chunks">{stream.chunks.join(',')}</span>
    <span id="stream-latest">{stream.latest ?? ''}</span>
  </section>;
}

/** A panel the test mounts and unmounts by a button, under the provider. */
function Toggled({ id, children }: { id: string; children: ReactNode }) {
  const [shown, setShown] = useState(true);
  return <>
    <button id={`${id}-toggle`} onClick={() => setShown((s) => !s)}>toggle {id}</button>
    {shown && children}
  </>;
}

function App() {
  const [mounted, setMounted] = useState(true);
  const options = { url: params.get('url')!, accessToken: params.get('token')!, reconnectMinDelayMs: 20, reconnectMaxDelayMs: 100 };
  return <>
    <button id="toggle" onClick={() => setMounted((m) => !m)}>toggle</button>
    {mounted && <MeshProvider options={options} disposeDelayMs={Number(params.get('disposeDelayMs') ?? 1000)}>
      <Status />
      <Panel />
      {params.has('room') && <Toggled id="topic"><RoomSwitch /></Toggled>}
      {params.has('stream') && <Toggled id="stream"><StreamPanel /></Toggled>}
    </MeshProvider>}
  </>;
}

Object.assign(window, {
  hooks: {
    seen: () => ({
      sockets: seen.sockets, registrations: seen.registrations, clients: seen.clients.size, renders: seen.renders, subscribes: seen.subscribes, streamStarts: seen.streamStarts,
      handlers: Object.keys(seen.shared?.handlers ?? {}).sort(), openStreams: seen.client?.openStreams ?? 0,
    }),
    /** Closes the latest socket, as a network that went away would end it. */
    drop: () => seen.sockets_.at(-1)?.close(),
  },
});
createRoot(document.getElementById('root')!).render(<StrictMode><App /></StrictMode>);
