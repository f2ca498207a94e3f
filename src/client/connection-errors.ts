/**
 * Between the connection core and the app: the typed error a call gets when
 * the client stopped, the error onError gets for each problem the core
 * reports (what went wrong and what to check), and how a failed token fetch
 * counts for the core.
 */
import { ClientClosedError, LoginRequiredError, SupersededError, UnsupportedProtocolError } from '../protocol/errors.js';
import { FAILURES_BEFORE_REPORT, type CredentialsFailure, type Problem, type Stopped } from './connection.js';
import { TransientRefreshError } from './token.js';

export function stoppedError(stopped: Stopped): Error {
  switch (stopped.name) {
    case 'closed':
      return new ClientClosedError();
    case 'superseded':
      return new SupersededError();
    case 'loginRequired':
      return new LoginRequiredError(stopped.reason);
    case 'updateRequired':
      return new UnsupportedProtocolError(stopped.reason);
  }
}

export function describeProblem(problem: Problem, gatewayUrl: string): unknown {
  switch (problem.kind) {
    case 'error':
      return problem.error;
    case 'refreshesFailing':
      return new Error(`meshgate: ${FAILURES_BEFORE_REPORT} token refreshes in a row failed (last: ${problem.last.message}); still retrying. `
        + 'If this persists, check the refresh option: a URL must answer a POST with JSON { "access_token": "..." } (401/403 means "log in again"); '
        + 'a function must resolve to the token or { access_token } (throw LoginRequiredError for "log in again").', { cause: problem.last });
    case 'attemptsFailing':
      return new Error(`meshgate: ${FAILURES_BEFORE_REPORT} connection attempts to ${gatewayUrl} failed before the gateway answered (last one ${problem.last}); still retrying. `
        + (/^closed with 1011 "/.test(problem.last)
          ? 'The server closed with 1011, a problem on its side: the quoted reason says what, and its log may say more.'
          : 'If this persists, check the url and gateway options: the edge answers 404 for an unknown gateway binding, and a token it cannot verify closes with 4403.'));
  }
}

/** A refresh that may pass is retried; LoginRequiredError stops the client; anything else is reported and retried. */
export function credentialsFailure(error: unknown): CredentialsFailure {
  if (error instanceof TransientRefreshError) return { kind: 'refresh', error };
  if (error instanceof LoginRequiredError) return { kind: 'login', reason: error.reason };
  return { kind: 'other', error };
}
