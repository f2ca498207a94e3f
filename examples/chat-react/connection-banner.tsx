/** The connection as the person sees it: its state, and what to do when it stopped (taken over elsewhere, logged out). */
import { useConnectionState, useMeshClient } from 'meshgate/react';
import { dropConnections } from '../chat/browser/droppable-socket.js';

const LABELS = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Connection lost — reconnecting…',
  superseded: 'Opened elsewhere',
  disconnected: 'Disconnected',
} as const;

export function ConnectionBanner() {
  const client = useMeshClient();
  const connection = useConnectionState();
  return (
    <>
      <header>
        <span id="state" data-state={connection.state}>{LABELS[connection.state]}</span>
        <code id="instance">{connection.instanceName ?? ''}</code>
        <button id="drop" onClick={() => dropConnections()} disabled={connection.state !== 'connected'}>Drop connection</button>
      </header>
      {connection.superseded && (
        <div className="banner" id="superseded">
          This chat was opened with the same identity somewhere else, which took over.{' '}
          <button id="take-over" onClick={() => void client.connect().catch(() => undefined)}>Use it here</button>
        </div>
      )}
      {connection.loginRequired !== undefined && (
        <div className="banner" id="login-required">
          Your session ended ({connection.loginRequired}).{' '}
          <button id="log-in-again" onClick={() => void client.connect().catch(() => undefined)}>Log in again</button>
        </div>
      )}
    </>
  );
}
