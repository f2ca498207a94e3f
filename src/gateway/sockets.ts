/** Sending and closing on a socket that may already be gone. */
import { WS_CLOSE_NORMAL } from '../protocol/close-codes.js';
import { closeReason } from '../upgrade/responses.js';

export const OPEN = 1;

export function safeSend(ws: WebSocket, text: string): boolean {
  try {
    ws.send(text);
    return true;
  } catch {
    return false; // the socket closed under us; the resend rules cover what was lost
  }
}

export function safeClose(ws: WebSocket, code: number, reason: string): void {
  try {
    ws.close(code, closeReason(reason));
  } catch {
    // already closed
  }
}

/** A close code we may send back: 1000 or an application code; anything else echoes as 1000. */
export function echoableCode(code: number): number {
  return code === WS_CLOSE_NORMAL || (code >= 3000 && code <= 4999) ? code : WS_CLOSE_NORMAL;
}
