/** The setup mistakes people make get an error that says what to do. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

describe('setup errors', () => {
  it('a Worker without nodejs_compat fails to load with a message naming the flag and where to add it', async () => {
    const script = new URL('./support/start-without-nodejs-compat.mjs', import.meta.url).pathname;
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [script], { timeout: 60_000 });
    const output = stdout + stderr;
    expect(output).toContain('failed to start');
    expect(output).toContain('meshgate needs the "nodejs_compat" compatibility flag');
    expect(output).toContain('"compatibility_flags": ["nodejs_compat"]');
    expect(output).not.toContain('No such module "node:async_hooks"');
  });
});
