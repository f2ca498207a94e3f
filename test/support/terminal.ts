/** The chat example's Node client (`npm run example:node`) as a child process whose output can be awaited. */
import { spawn } from 'node:child_process';

const LAUNCHER = new URL('../../examples/chat/node-client.mjs', import.meta.url).pathname;

export interface Terminal {
  readonly output: string;
  /** Types a line, as a person at the prompt would. */
  type(line: string): void;
  /** Ends its input, as the end of a pipe (or Ctrl+D) does. */
  endInput(): void;
  /** Resolves once the output so far, or later, matches `re` (bounded). */
  wait(re: RegExp, timeoutMs?: number): Promise<void>;
  exited(): Promise<number | null>;
  kill(): void;
}

export function startTerminal(url: string, name: string, room: string): Terminal {
  const child = spawn(process.execPath, [LAUNCHER, '--name', name, '--room', room, '--url', url], { stdio: 'pipe' });
  let output = '';
  let waiters: Array<{ re: RegExp; resolve: () => void }> = [];
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    waiters = waiters.filter((w) => (w.re.test(output) ? (w.resolve(), false) : true));
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return {
    get output() {
      return output;
    },
    type(line) {
      child.stdin.write(`${line}\n`);
    },
    endInput() {
      child.stdin.end();
    },
    wait(re, timeoutMs = 15_000) {
      if (re.test(output)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${name}: no ${re} within ${timeoutMs} ms; output:\n${output}`)), timeoutMs);
        waiters.push({ re, resolve: () => (clearTimeout(timer), resolve()) });
      });
    },
    exited() {
      return child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
