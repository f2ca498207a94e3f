/**
 * A runtime-agnostic probe: joins the test mesh with the runtime's global
 * WebSocket (or `ws` when asked), makes a rich-value call and serves a call
 * from a DO, then prints one JSON line. Bundled and run by runtimes.test.ts.
 */
import { MeshClient, type SocketClass } from '../../src/client/index.js';

declare const Deno: { args: string[] } | undefined;
declare const process: { argv: string[] };

const [url, token, socketKind] = typeof Deno !== 'undefined' ? Deno.args : process.argv.slice(2);
type Counter = {
  echo(value: unknown): unknown;
  callClient(instance: string, method: string, args: unknown[], options: { ownChain: boolean }): { ok: boolean; value?: unknown };
};

async function main(): Promise<void> {
  const WebSocketClass = socketKind === 'ws'
    ? ((await import('ws')).default as unknown as SocketClass)
    : (globalThis as { WebSocket?: SocketClass }).WebSocket;
  const client = new MeshClient({
    url: url!, accessToken: token!, WebSocket: WebSocketClass, browserEvents: false,
    handlers: { hello: (name: string) => `hello ${name}` },
  });
  try {
    const value = (await client.node<Counter>('COUNTER', 'runtimes').echo(new Map([[1n, new Date(5)]]))) as Map<bigint, Date>;
    const callback = await client.node<Counter>('COUNTER', 'runtimes').callClient(client.instanceName!, 'hello', ['mesh'], { ownChain: true });
    console.log(JSON.stringify({ state: client.state, echo: value instanceof Map && value.get(1n) instanceof Date && value.get(1n)!.getTime() === 5, callback }));
  } finally {
    client.disconnect();
  }
}
main().catch((error) => {
  console.log(JSON.stringify({ error: String(error) }));
});
