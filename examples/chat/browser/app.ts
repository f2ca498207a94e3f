/**
 * The chat page: login form → RoomSession → DOM. Everything the page shows
 * comes from RoomSession's listener; the DOM is written with textContent
 * only, so names and messages can never inject markup.
 */
import { OutcomeUnknownError, type ConnectionState } from 'meshgate/client';
import { RoomSession, type SessionEvent } from '../client/session.js';
import { ROOM_PATTERN, type ChatMessage, type Delivery, type PresenceEntry, type RoomSnapshot } from '../shared.js';
import { DroppableWebSocket, dropConnections, goOffline } from './droppable-socket.js';
import { AssistantPanel } from './assistant-panel.js';

const STORE_NAME = 'chat.name';
const STORE_ROOM = 'chat.room';
const NAME_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;
/** `{name}.{tabId}`, as the "open this identity in a new tab" link carries it */
const INSTANCE_PATTERN = /^([A-Za-z0-9_-]{1,32})\.[A-Za-z0-9_-]{1,64}$/;
/** Longer than the default 5 s grace period, so coming back means resubscribing. */
const OFFLINE_MS = 8_000;
/** After this long without a keystroke, the others stop seeing "typing…". */
const TYPING_IDLE_MS = 3_000;

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`The page is missing #${id}`);
  return element as T;
}

function el(tag: string, text: string, className?: string): HTMLElement {
  const node = document.createElement(tag);
  node.textContent = text;
  if (className) node.className = className;
  return node;
}

function clock(at: number): string {
  return new Date(at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' });
}

function describeDelivery(what: string, d: Delivery): string {
  const parts = [`${what}: delivered to ${d.delivered} of ${d.total}`];
  if (d.dropped) parts.push(`${d.dropped} dropped (gone)`);
  if (d.timedOut) parts.push(`${d.timedOut} not answering (skipped)`);
  if (d.failed) parts.push(`${d.failed} failed`);
  return parts.join(' · ');
}

/**
 * A failed send or +1, for a person. The one case that needs its own words:
 * the connection dropped before the answer, so the page cannot know whether
 * it happened (the library's message, for developers, goes to the console).
 */
function failure(what: 'Message' | 'Counter', error: Error): string {
  if (!(error instanceof OutcomeUnknownError)) return `${what === 'Message' ? 'Not sent' : 'Counter not changed'}: ${error.message}`;
  console.warn(`chat: ${what} outcome unknown:`, error.message);
  return what === 'Message'
    ? 'Message: the connection dropped before the room answered — look at the list before sending it again.'
    : 'Counter: the connection dropped before the room answered — the number shown is the room\'s.';
}

let session: RoomSession | undefined;
let assistant: AssistantPanel | undefined;
/** messages by id: fan-outs can overlap, so arrival order is not message order */
const messages = new Map<number, ChatMessage>();
/** ids of messages recovered after this tab was away past its grace period: shown marked */
const missed = new Set<number>();
let typingIdle: ReturnType<typeof setTimeout> | undefined;
/** the counter as last shown, so a snapshot with the same value keeps saying who changed it */
let shownCounter: { value: number; by?: string } | undefined;
/** while "Go offline" runs, its button stays disabled whatever the state */
let offline = false;

function renderMessages(): void {
  const list = $('messages');
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 20;
  list.replaceChildren(...[...messages.values()].sort((a, b) => a.id - b.id).map((m) => {
    const li = document.createElement('li');
    li.dataset.id = String(m.id);
    li.replaceChildren(el('span', clock(m.at), 'time'), el('span', m.from, 'from'), el('span', m.text, 'text'));
    if (missed.has(m.id)) {
      li.classList.add('missed');
      li.appendChild(el('span', 'missed while away', 'missed-tag'));
    }
    return li;
  }));
  if (atBottom) list.scrollTop = list.scrollHeight;
}

function renderPresence(presence: PresenceEntry[]): void {
  const me = session?.name;
  $('presence').replaceChildren(...presence.map((p) => {
    const li = el('li', p.connections > 1 ? `${p.sub} (${p.connections} connections)` : p.sub, p.sub === me ? 'me' : undefined);
    li.dataset.sub = p.sub;
    if (p.typing) li.appendChild(el('span', 'typing…', 'typing'));
    return li;
  }));
}

function renderCounter(value: number, by?: string): void {
  shownCounter = { value, ...(by ? { by } : {}) };
  $('counter-value').textContent = String(value);
  $('counter-by').textContent = by ? `last +1 by ${by}` : '';
}

/** A snapshot says who changed the counter last if the room knows; otherwise the page keeps what it knew, if the value is unchanged. */
function counterFromSnapshot(snapshot: RoomSnapshot): void {
  const by = snapshot.counterBy ?? (shownCounter?.value === snapshot.counter ? shownCounter.by : undefined);
  renderCounter(snapshot.counter, by);
}

function renderState(state: ConnectionState): void {
  const badge = $('state');
  badge.textContent = state;
  badge.dataset.state = state;
  $('superseded-banner').hidden = state !== 'superseded';
  // Calls queue while reconnecting, but a stopped client cannot send at all, nor has a connection to drop.
  const stopped = state === 'superseded' || state === 'disconnected';
  for (const id of ['message-input', 'send', 'increment', 'drop']) $<HTMLInputElement>(id).disabled = stopped;
  $<HTMLButtonElement>('offline').disabled = stopped || offline;
  const instance = session?.client.instanceName;
  $('instance').textContent = instance ?? '—';
  const link = $<HTMLAnchorElement>('same-identity');
  link.hidden = !instance || stopped;
  if (instance && session) link.href = `/#${new URLSearchParams({ as: instance, room: session.room })}`;
}

/** Session events, plus the page's own (kinds 'dropped' and 'online'). The developer's detail goes to the console. */
function addEvent(event: SessionEvent | { kind: 'dropped' | 'online'; text: string; at: number }): void {
  const li = document.createElement('li');
  li.dataset.kind = event.kind;
  li.replaceChildren(el('span', clock(event.at), 'time'), el('span', event.text));
  if ('detail' in event && event.detail) console.warn(`chat: ${event.text}:`, event.detail);
  const list = $('events');
  list.appendChild(li);
  list.scrollTop = list.scrollHeight;
}

/** `instanceName`: open that identity (the same-identity link) instead of this tab's own. */
function start(name: string, room: string, instanceName?: string): void {
  sessionStorage.setItem(STORE_NAME, name);
  sessionStorage.setItem(STORE_ROOM, room);
  $('login').hidden = true;
  $('app').hidden = false;
  $('user').textContent = name;
  $('room-name').textContent = room;
  messages.clear();
  missed.clear();
  shownCounter = undefined;
  session = new RoomSession({
    url: location.origin,
    name,
    room,
    WebSocket: DroppableWebSocket,
    ...(instanceName ? { client: { instanceName } } : {}),
    listener: {
      state: renderState,
      event(event) {
        addEvent(event);
        // e.g. the server restarted with a new secret (npm start -- --fresh): back to the form, name filled in.
        if (event.kind === 'login-required') void leave(`Please join again. ${event.text}`);
      },
      snapshot(snapshot: RoomSnapshot) {
        for (const m of snapshot.messages) messages.set(m.id, m);
        renderMessages();
        renderPresence(snapshot.presence);
        counterFromSnapshot(snapshot);
      },
      message(m, wasMissed) {
        messages.set(m.id, m);
        if (wasMissed) missed.add(m.id);
        renderMessages();
      },
      presence: renderPresence,
      counter: renderCounter,
    },
  });
  assistant = new AssistantPanel(session.client, room, document.querySelector<HTMLElement>('.side') ?? $('app'));
}

async function leave(reason = ''): Promise<void> {
  const current = session;
  session = undefined;
  assistant?.unmount();
  assistant = undefined;
  sessionStorage.removeItem(STORE_NAME);
  if (current) $<HTMLInputElement>('name-input').value = current.name;
  await current?.close();
  $('events').replaceChildren();
  $('login-error').textContent = reason;
  $('app').hidden = true;
  $('login').hidden = false;
}

function wire(): void {
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = $<HTMLInputElement>('name-input').value.trim();
    const room = $<HTMLInputElement>('room-input').value.trim().toLowerCase();
    if (!NAME_PATTERN.test(name)) return void ($('login-error').textContent = 'Name: 1–32 letters, digits, _ or -.');
    if (!ROOM_PATTERN.test(room)) return void ($('login-error').textContent = 'Room: lowercase letters, digits and -, up to 32.');
    $('login-error').textContent = '';
    start(name, room);
  });

  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    const input = $<HTMLInputElement>('message-input');
    const text = input.value.trim();
    if (!text || !session) return;
    input.value = '';
    clearTimeout(typingIdle);
    session.typing(false);
    $('delivery').textContent = 'sending…';
    session.send(text).then(
      (d) => void ($('delivery').textContent = describeDelivery('Message', d)),
      (error: Error) => void ($('delivery').textContent = failure('Message', error)),
    );
  });

  // Who is typing: one change when typing starts, one when it stops (sent, or idle for a while).
  $('message-input').addEventListener('input', () => {
    session?.typing(true);
    clearTimeout(typingIdle);
    typingIdle = setTimeout(() => session?.typing(false), TYPING_IDLE_MS);
  });

  $('increment').addEventListener('click', () => {
    session?.increment(1).then(
      (d) => void ($('delivery').textContent = describeDelivery('Counter', d)),
      (error: Error) => void ($('delivery').textContent = failure('Counter', error)),
    );
  });

  $('drop').addEventListener('click', () => {
    const n = dropConnections();
    addEvent({ kind: 'dropped', text: n ? 'You dropped the connection' : 'No open connection to drop', at: Date.now() });
  });

  $('offline').addEventListener('click', () => {
    offline = true;
    $<HTMLButtonElement>('offline').disabled = true;
    addEvent({ kind: 'dropped', text: `You went offline for ${OFFLINE_MS / 1000} s`, at: Date.now() });
    goOffline(OFFLINE_MS, () => {
      offline = false;
      if (session) renderState(session.client.state);
      addEvent({ kind: 'online', text: 'Back online', at: Date.now() });
    });
  });

  $('takeover').addEventListener('click', () => session?.takeOver());
  $('leave').addEventListener('click', () => void leave());

  // The same-identity link (#as={name}.{tabId}&room=…): this tab takes over that identity.
  const link = new URLSearchParams(location.hash.slice(1));
  const as = INSTANCE_PATTERN.exec(link.get('as') ?? '');
  const linkRoom = link.get('room') ?? '';
  if (location.hash) history.replaceState(null, '', location.pathname + location.search); // a reload opens this tab's own identity
  if (as && ROOM_PATTERN.test(linkRoom)) return start(as[1]!, linkRoom, as[0]);

  // A reload (or a duplicated tab) comes back to the same room.
  const name = sessionStorage.getItem(STORE_NAME);
  const room = sessionStorage.getItem(STORE_ROOM);
  if (room) $<HTMLInputElement>('room-input').value = room;
  if (name && room && NAME_PATTERN.test(name) && ROOM_PATTERN.test(room)) start(name, room);
}

wire();
