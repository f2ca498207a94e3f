/**
 * The chat from a terminal: joins the same room as the browser page, prints
 * what happens, and sends each line you type.
 *
 *   npm run example:node -- --name bob [--room lobby] [--url http://127.0.0.1:8787]
 *
 * Commands: /inc (counter +1), /who (presence), /drop (drop the connection), /quit; any other /word is refused
 * as unknown (not posted), and a line starting // posts it with one leading / ("//join" posts "/join").
 * Node.js 20 has no global WebSocket, so the client is given `ws`.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import type { SocketClass } from 'meshgate/client';
import { RoomSession } from './client/session.js';
import { ROOM_PATTERN, type PresenceEntry } from './shared.js';

const { values } = parseArgs({
  options: {
    name: { type: 'string', default: `node-${Math.random().toString(36).slice(2, 6)}` },
    room: { type: 'string', default: 'lobby' },
    url: { type: 'string', default: process.env.CHAT_URL ?? `http://127.0.0.1:${process.env.PORT ?? 8787}` },
  },
});
const name = values.name!;
const room = values.room!;
const url = values.url!;
if (!/^[A-Za-z0-9_-]{1,32}$/.test(name)) fail('--name: 1–32 letters, digits, _ or -.');
if (!ROOM_PATTERN.test(room)) fail('--room: lowercase letters, digits and -, up to 32.');

function fail(message: string): never {
  console.error(message);
  process.exit(2);
}

/** `ws`, remembered so /drop can cut the connection the way a network failure would. */
const sockets = new Set<WebSocket>();
class DroppableWs extends WebSocket {
  constructor(address: string, protocols?: string | string[]) {
    super(address, protocols);
    sockets.add(this);
    this.on('close', () => sockets.delete(this));
    this.on('error', () => {}); // reported through the close event
  }
}

const time = () => new Date().toLocaleTimeString([], { hour12: false });
const print = (line: string) => {
  // Keep what the user is typing below the printed line.
  process.stdout.write(`\r\x1b[K${line}\n`);
  rl.prompt(true);
};
let presence: PresenceEntry[] = [];
const showPresence = () => presence.map((p) => (p.connections > 1 ? `${p.sub}×${p.connections}` : p.sub)).join(', ') || 'nobody';

const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: `${name}@${room}> ` });

const session = new RoomSession({
  url,
  name,
  room,
  WebSocket: DroppableWs as unknown as SocketClass,
  listener: {
    // In a terminal the developer is the user: the library's own message follows on its own line.
    event: (e) => print(`[${time()}] * ${e.text}${e.detail ? `\n    ${e.detail}` : ''}`),
    snapshot: (s) => {
      for (const m of s.messages.slice(-10)) print(`[${new Date(m.at).toLocaleTimeString([], { hour12: false })}] ${m.from}: ${m.text}`);
      presence = s.presence;
      print(`* in the room: ${showPresence()} · counter ${s.counter}`);
    },
    message: (m, missed) => print(`[${new Date(m.at).toLocaleTimeString([], { hour12: false })}] ${m.from}: ${m.text}${missed ? '  (missed while away)' : ''}`),
    presence: (p) => {
      const before = showPresence();
      presence = p;
      if (showPresence() !== before) print(`* in the room: ${showPresence()}`);
    },
    counter: (value, by) => print(`* counter ${value} (+1 by ${by})`),
  },
});

print(`Joining "${room}" at ${url} as ${name}. Type a message, or /inc, /who, /drop, /quit.`);
rl.prompt();

rl.on('line', (line) => {
  const text = line.trim();
  if (!text) return rl.prompt();
  if (text === '/quit') return void quit();
  if (text === '/who') return print(`* in the room: ${showPresence()} · state ${session.client.state} · ${session.client.instanceName ?? ''}`);
  if (text === '/drop') {
    for (const s of sockets) s.terminate();
    return print('* dropped the connection');
  }
  if (text === '/inc') {
    track(session.increment(1).catch((error: Error) => print(`! counter not changed: ${error.message}`)));
    return rl.prompt();
  }
  // A mistyped command must not be posted to the room; "//" posts a line that starts with "/".
  if (/^\/[^/]/.test(text)) return print(`! unknown command ${text.split(/\s/)[0]}: the commands are /inc, /who, /drop and /quit (start a message with // to post a leading /)`);
  track(session.send(text.startsWith('//') ? text.slice(1) : text).catch((error: Error) => print(`! not sent: ${error.message}`)));
  rl.prompt();
});

/** What was typed and not yet answered: quitting waits for it, so lines piped in before the join are still posted. */
const typed = new Set<Promise<unknown>>();
function track(done: Promise<unknown>): void {
  typed.add(done);
  void done.finally(() => typed.delete(done));
}

let quitting = false;
async function quit(): Promise<void> {
  if (quitting) return;
  quitting = true;
  rl.close();
  const within = (ms: number) => new Promise((r) => setTimeout(r, ms).unref());
  await Promise.race([Promise.all(typed), within(10_000)]);
  await Promise.race([session.close(), within(2000)]);
  process.exit(0);
}
rl.on('close', () => void quit()); // Ctrl+D or end of piped input
process.on('SIGINT', () => void quit());
process.on('SIGTERM', () => void quit());
