/** The setup mistakes people make get an error that says what to do. */
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { closeFrame, RawSocket, withTestMesh } from './support/mesh.js';

async function startFailing(entry: string, flags?: string): Promise<string> {
  const script = new URL('./support/start-failing-worker.mjs', import.meta.url).pathname;
  const args = [script, new URL(entry, import.meta.url).pathname, ...(flags ? [flags] : [])];
  const { stdout, stderr } = await promisify(execFile)(process.execPath, args, { timeout: 60_000 });
  return stdout + stderr;
}

describe('setup errors', () => {
  it('a Worker without nodejs_compat fails to load with a message naming the flag and where to add it', async () => {
    const output = await startFailing('./fixtures/worker.ts', 'none');
    expect(output).toContain('failed to start');
    expect(output).toContain('meshgate needs the "nodejs_compat" compatibility flag');
    expect(output).toContain('"compatibility_flags": ["nodejs_compat"]');
    expect(output).not.toContain('No such module "node:async_hooks"');
  });

  it('a literal HS256 secret under 32 bytes fails the Worker\'s load, saying how to make one', async () => {
    const output = await startFailing('./fixtures/weak-secret-worker.ts');
    expect(output).toContain('failed to start');
    expect(output).toMatch(/meshgate: auth\.secret is 5 bytes; HS256 needs at least 32\. Generate one .*wrangler secret put JWT_SECRET/);
  });

  it('a secret from env under 32 bytes refuses every token (1011, retry later) and the development login says why', async () => {
    await withTestMesh({ env: { JWT_SECRET: 'short' } }, async (mesh) => {
      const socket = new RawSocket(mesh.wsUrl('ada.t1'), await mesh.token('ada'));
      try {
        expect(await closeFrame(socket)).toMatchObject({ code: 1011, reason: 'Cannot verify tokens now' });
      } finally {
        socket.ws.terminate();
      }
      const login = await fetch(new URL('/auth/dev-token', mesh.url), { method: 'POST', body: JSON.stringify({ sub: 'ada' }) });
      expect(login.status).toBe(500);
      expect(((await login.json()) as { error: string }).error).toMatch(/auth\.secret is 5 bytes; HS256 needs at least 32/);
    });
  });

  it('the development login says what is missing: a secret from env that is unset, or the login itself turned off', async () => {
    await withTestMesh({ env: { JWT_SECRET: '' } }, async (mesh) => {
      const login = await fetch(new URL('/auth/dev-token', mesh.url), { method: 'POST', body: JSON.stringify({ sub: 'ada' }) });
      expect(login.status).toBe(500);
      expect(await login.json()).toEqual({ error: 'devLogin needs auth.secret, and it gave none for this env: is the variable it reads set (for wrangler dev, in .dev.vars)?' });
    });
    // A Worker without devLogin and without a fetch of its own: the login's path says it is off, any other path is a plain 404.
    await withTestMesh({ entry: new URL('./fixtures/identity-worker.ts', import.meta.url) }, async (mesh) => {
      const login = await fetch(new URL('/auth/dev-token', mesh.url), { method: 'POST', body: JSON.stringify({ sub: 'ada' }) });
      expect(login.status).toBe(404);
      expect(((await login.json()) as { error: string }).error).toMatch(/^No development login here: createMeshWorker's devLogin is off/);
      const other = await fetch(new URL('/auth/other', mesh.url));
      expect([other.status, await other.text()]).toEqual([404, 'Not found']);
      // Deployed (any host but a development one), the login's path is a plain 404 too: it says nothing of the setup.
      const deployed = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host: mesh.url.hostname, port: mesh.url.port, path: '/auth/dev-token', method: 'POST', agent: false, headers: { host: 'my-mesh.example.com', 'content-length': '0' } }, (res) => {
          let text = '';
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        });
        req.on('error', reject);
        req.end();
      });
      expect(deployed).toEqual({ status: 404, body: 'Not found' });
    });
  });
});
