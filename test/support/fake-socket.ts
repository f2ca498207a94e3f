/** A scriptable WebSocket for unit tests of the client's state machine (with fake timers). */
import type { SocketLike } from '../../src/client/socket.js';

export class FakeSocket implements SocketLike {
  static instances: FakeSocket[] = [];
  static reset(): void {
    FakeSocket.instances = [];
  }
  static get last(): FakeSocket {
    const socket = FakeSocket.instances.at(-1);
    if (!socket) throw new Error('no socket was created');
    return socket;
  }

  readyState = 0;
  sent: string[] = [];
  closedWith: { code?: number; reason?: string } | undefined;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;

  constructor(readonly url: string, readonly protocols?: string | string[]) {
    FakeSocket.instances.push(this);
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error('send on a socket that is not open');
    this.sent.push(data);
  }

  close(code?: number, reason?: string): void {
    this.closedWith = { ...(code === undefined ? {} : { code }), ...(reason === undefined ? {} : { reason }) };
    if (this.readyState < 2) this.readyState = 2;
  }

  // ── driven by the test ──
  serverOpen(subscriptionRequired = true, instanceName = 'alice.tab'): void {
    this.readyState = 1;
    this.onopen?.({});
    this.serverSend({ type: 'connection_status', subscriptionRequired, instanceName, sub: 'alice', protocol: 1 });
  }

  serverSend(frame: unknown): void {
    this.onmessage?.({ data: typeof frame === 'string' ? frame : JSON.stringify(frame) });
  }

  serverClose(code: number, reason = ''): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  frames(): Array<Record<string, unknown>> {
    return this.sent.filter((s) => s.startsWith('{')).map((s) => JSON.parse(s));
  }
}
