/**
 * The chat example's page in React, against the same Worker and room
 * (examples/chat): one MeshClient per tab from <MeshProvider>, under
 * StrictMode, whatever React mounts twice.
 */
import { StrictMode, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { LoginRequiredError, type MeshClientOptions } from 'meshgate/client';
import { MeshProvider } from 'meshgate/react';
import { ROOM_PATTERN, type ChatClientApi } from '../chat/shared.js';
import { devLogin, LoginError } from '../chat/client/dev-login.js';
import { DroppableWebSocket } from '../chat/browser/droppable-socket.js';
import { ChatRoom } from './chat-room.js';

interface Login {
  name: string;
  room: string;
}

/** The client's options for one user: tokens from the development login; a refused login means "log in again". */
function clientOptions(name: string): MeshClientOptions<ChatClientApi> {
  return {
    url: location.origin,
    WebSocket: DroppableWebSocket, // so the page's "Drop connection" button can end its socket
    refresh: async () => {
      try {
        return await devLogin(location.origin, name);
      } catch (error) {
        if (error instanceof LoginError) throw new LoginRequiredError(error.message);
        throw error; // unreachable server: the client retries
      }
    },
  };
}

function LoginForm({ onLogin }: { onLogin(login: Login): void }) {
  const [error, setError] = useState('');
  return (
    <form id="login-form" onSubmit={(event) => {
      event.preventDefault();
      const data = new FormData(event.currentTarget);
      const name = String(data.get('name') ?? '').trim();
      const room = String(data.get('room') ?? '').trim();
      if (!name) return setError('Enter a name.');
      if (!ROOM_PATTERN.test(room)) return setError('A room name is 1–32 lowercase letters, digits or dashes.');
      onLogin({ name, room });
    }}>
      <input id="name-input" name="name" placeholder="your name" autoComplete="off" />
      <input id="room-input" name="room" placeholder="room" defaultValue="lobby" />
      <button type="submit">Join</button>
      {error && <span role="alert">{error}</span>}
    </form>
  );
}

function App() {
  const [login, setLogin] = useState<Login | undefined>();
  if (!login) return <LoginForm onLogin={setLogin} />;
  return (
    // One client per user name: a different user after "Leave" gets a new one.
    <MeshProvider options={clientOptions(login.name)} clientKey={login.name}>
      <ChatRoom name={login.name} room={login.room} onLeave={() => setLogin(undefined)} />
    </MeshProvider>
  );
}

createRoot(document.getElementById('root')!).render(<StrictMode><App /></StrictMode>);
