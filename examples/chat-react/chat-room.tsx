/** One room: messages, presence and the shared counter, pushed by the room to this client's handlers. */
import { useEffect, useMemo, useRef, useState } from 'react';
import type { PresenceMember } from 'meshgate/client';
import { useCall, useConnectionState, useIncoming, useNode, useTopic } from 'meshgate/react';
import { ROOM_BINDING, type ChatClientApi, type ChatMessage, type PresenceEntry, type RoomApi, type RoomSnapshot, type Typing } from '../chat/shared.js';
import { ConnectionBanner } from './connection-banner.js';

interface Event {
  kind: string;
  text: string;
}

export function ChatRoom({ name, room, onLeave }: { name: string; room: string; onLeave(): void }) {
  const connection = useConnectionState();
  const roomNode = useNode<RoomApi>(ROOM_BINDING, room);
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [counter, setCounter] = useState<{ value: number; by?: string }>({ value: 0 });
  const [events, setEvents] = useState<Event[]>([]);
  const note = (kind: string, text: string) => setEvents((list) => [...list.slice(-49), { kind, text }]);

  const apply = (snapshot: RoomSnapshot) => {
    setMessages(snapshot.messages);
    setCounter({ value: snapshot.counter, ...(snapshot.counterBy === undefined ? {} : { by: snapshot.counterBy }) });
  };

  // Messages and presence come through useTopic, which remembers this tab's place in the room's history
  // and joins again whenever the gateway had forgotten this client.
  const joins = useRef(0);
  const topic = useTopic<ChatMessage, Typing>('room', {
    subscribe: async (since) => {
      const joined = await roomNode.join(since, false);
      apply(joined);
      return { ...joined.recovery, presence: joined.members };
    },
    keep: 0, // the messages are kept here, merged with each join's snapshot
    onPublication: (message) => setMessages((list) => (list.some((m) => m.id === message.id) ? list : [...list, message].sort((a, b) => a.id - b.id))),
    onRecovery: () => {
      const first = joins.current++ === 0;
      note(first ? 'joined' : 'resubscribed', first ? `Joined ${room}.` : 'Back after the grace period: reloaded the room.');
    },
  });
  const presence = useMemo(() => presenceEntries(topic.members), [topic.members]);
  useEffect(() => {
    if (topic.error !== undefined) note('error', (topic.error as Error).message ?? String(topic.error));
  }, [topic.error]);

  useIncoming<ChatClientApi>({ counter: (value, by) => setCounter({ value, by }) });

  // Back inside the grace period: the gateway kept the subscription, so nothing is joined again.
  const handled = useRef(0);
  useEffect(() => {
    if (connection.state !== 'connected' || connection.connections === handled.current) return;
    const first = handled.current === 0;
    handled.current = connection.connections;
    if (!first && !connection.subscriptionRequired) note('reconnected-in-grace', 'Back within the grace period: nothing was missed.');
  }, [connection.state, connection.connections]);

  const previousState = useRef(connection.state);
  useEffect(() => {
    if (previousState.current === connection.state) return;
    if (connection.state === 'reconnecting') note('connection-lost', 'Connection lost; reconnecting.');
    if (connection.state === 'superseded') note('superseded', 'Taken over by another tab or device.');
    if (connection.loginRequired !== undefined && connection.state === 'disconnected') note('login-required', 'Please log in again.');
    previousState.current = connection.state;
  }, [connection.state]);

  const send = useCall((text: string) => roomNode.send(text));
  const increment = useCall(() => roomNode.increment(1));

  return (
    <main>
      <ConnectionBanner />
      <h1>{room} <small>as {name}</small> <button id="leave" onClick={() => void roomNode.leave().catch(() => undefined).finally(onLeave)}>Leave</button></h1>
      <ul id="presence">{presence.map((p) => <li key={p.sub} data-sub={p.sub}>{p.sub} ({p.connections})</li>)}</ul>
      <p>
        Counter: <span id="counter-value">{counter.value}</span> {counter.by && <span id="counter-by">last +1 by {counter.by}</span>}{' '}
        <button id="increment" disabled={increment.loading} onClick={() => void increment.call().catch(() => undefined)}>+1</button>
      </p>
      <ul id="messages">{messages.map((m) => <li key={m.id}><b>{m.from}</b>: <span className="text">{m.text}</span></li>)}</ul>
      <form onSubmit={(event) => {
        event.preventDefault();
        const input = event.currentTarget.elements.namedItem('message') as HTMLInputElement;
        const text = input.value;
        input.value = '';
        void send.call(text).catch(() => undefined);
      }}>
        <input id="message-input" name="message" placeholder="say something" autoComplete="off" />
        <button id="send" type="submit" disabled={send.loading}>Send</button>
        {send.error !== undefined && <span id="send-error" role="alert">{(send.error as Error).message}</span>}
      </form>
      <ul id="events">{events.map((e, i) => <li key={i} data-kind={e.kind}>{e.text}</li>)}</ul>
    </main>
  );
}

/** One entry per user: how many tabs it has here, and whether one of them is typing. */
function presenceEntries(members: readonly PresenceMember<Typing>[]): PresenceEntry[] {
  return members
    .map((m) => ({ sub: m.sub, connections: m.connections.length, typing: m.connections.some((c) => c.meta?.typing === true) }))
    .sort((a, b) => a.sub.localeCompare(b.sub));
}
