/** The application's callbacks, each run so that a throw or a rejection of the app's code reaches `onError` instead of the client's own logic. */
import type { Notice } from './connection.js';
import type { MeshClientOptions } from './options.js';

export class Callbacks {
  readonly #options: MeshClientOptions<object>;
  #connectionProblem: string | undefined;

  constructor(options: MeshClientOptions<object>) {
    this.#options = options;
  }

  /** What onError was last told about the connection, until the next connect (a call that times out unsent says it). */
  get connectionProblem(): string | undefined {
    return this.#connectionProblem;
  }

  /** `unconnected`: reported while not connected, so it may be why calls wait (a problem seen while connected is not). */
  reportConnectionProblem(problem: unknown, unconnected: boolean): void {
    if (unconnected) this.#connectionProblem = problem instanceof Error ? problem.message : String(problem);
    this.report(problem);
  }

  /** A connection notice, to the callback the app gave for it. */
  notify(notice: Notice): void {
    const options = this.#options;
    if (notice.name === 'connected') this.#connectionProblem = undefined;
    this.run(() => {
      switch (notice.name) {
        case 'connected': return options.onConnected?.({ subscriptionRequired: notice.subscriptionRequired, firstConnection: notice.firstConnection });
        case 'subscriptionRequired': return options.onSubscriptionRequired?.();
        case 'superseded': return options.onSuperseded?.();
        case 'loginRequired': return options.onLoginRequired?.(notice.reason);
        case 'updateRequired': return options.onUpdateRequired?.(notice.reason);
      }
    });
  }

  run(fn: () => unknown): void {
    try {
      const result = fn();
      if (result instanceof Promise) result.catch((error) => this.report(error));
    } catch (error) {
      this.report(error);
    }
  }

  report(error: unknown): void {
    if (this.#options.onError) this.#options.onError(error);
  }
}
