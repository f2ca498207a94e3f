/**
 * The peers the bench measures meshgate beside, each as its own docs set it
 * up: an Agents SDK agent with one `@callable` echo (called through
 * `AgentClient`), and a partyserver `Server` that hibernates and echoes.
 * Routed by their own routers: `/agents/peer-agent/{name}` and
 * `/parties/peer-party/{name}`.
 */
import { Agent, callable, routeAgentRequest } from 'agents';
import { Server, routePartykitRequest, type Connection, type WSMessage } from 'partyserver';

export class PeerAgent extends Agent<Cloudflare.Env> {
  @callable()
  echo(value: string): string {
    return value;
  }

  /** Bench command: how many sockets this agent holds (the hot-object scenario checks they all reached one agent). */
  @callable()
  connections(): number {
    return [...this.getConnections()].length;
  }
}

export class PeerParty extends Server<Cloudflare.Env> {
  static override options = { hibernate: true };

  override onMessage(connection: Connection, message: WSMessage): void {
    connection.send(message);
  }
}

/** The peers' own routers; null when the request is for neither. */
export async function routePeers(request: Request, env: Record<string, unknown>): Promise<Response | null> {
  const url = new URL(request.url);
  if (url.pathname.startsWith('/agents/')) return (await routeAgentRequest(request, env)) ?? new Response('no such agent', { status: 404 });
  if (url.pathname.startsWith('/parties/')) return (await routePartykitRequest(request, env as never)) ?? new Response('no such party', { status: 404 });
  return null;
}
