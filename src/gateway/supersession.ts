/**
 * The supersession contract, as pure functions of what the gateway can see:
 * its sockets (each open, or closing: closed by either side but still listed
 * by `ctx.getWebSockets()`) and whether the grace alarm is pending. Nothing
 * here touches a socket, the storage or a clock; ClientGateway carries out
 * the decisions. See docs/gateway.md for the whole story.
 *
 * The gateway's state is derived, never stored:
 *
 * | open socket | grace alarm | state          | a mesh call to the client…               |
 * |-------------|-------------|----------------|------------------------------------------|
 * | yes         | any         | `connected`    | is forwarded now                         |
 * | no          | pending     | `gracePeriod`  | waits for the reconnect, up to the alarm |
 * | no          | none        | `disconnected` | fails with `ClientDisconnectedError`     |
 *
 * A new upgrade (`admitUpgrade`):
 *
 * | closing sockets       | open socket | grace alarm | decision                                               | subscriptionRequired |
 * |-----------------------|-------------|-------------|--------------------------------------------------------|----------------------|
 * | ≥ maxClosingSockets   | any         | any         | refused with 4429, nothing changes                     | —                    |
 * | fewer                 | yes         | any         | every socket superseded (4409), the new one accepted   | false                |
 * | fewer                 | no          | pending     | every socket superseded, the new one accepted          | false                |
 * | fewer                 | no          | none        | every socket superseded, the new one accepted          | true                 |
 *
 * An accepted upgrade ends a pending grace alarm (`endGracePeriod`); with
 * `subscriptionRequired` the remembered answers and notifications are dropped.
 *
 * The gateway supersedes before it accepts, with no await between this
 * decision and the accept, so any storm of upgrades leaves one open socket.
 * An open socket superseded is first sent a `superseded` frame: its close
 * event can come tens of seconds late.
 *
 * A socket ends (`startsGracePeriod`); the client's close code never counts:
 *
 * | how it ended                                            | starts the grace period   |
 * |---------------------------------------------------------|---------------------------|
 * | `refused`: the gateway closed it (1008, 1009, 4401)     | unless another is open    |
 * | `lost`: its close or error event (client or network)    | unless another is open    |
 * | `echo`: that event, for a socket the gateway had closed | no (decided at the close) |
 *
 * A superseded socket starts nothing: the new socket is open, and its close
 * event, when it comes, is an `echo`.
 */

export type GatewayState = 'connected' | 'gracePeriod' | 'disconnected';

export function gatewayState(openSocket: boolean, graceAlarm: boolean): GatewayState {
  if (openSocket) return 'connected';
  return graceAlarm ? 'gracePeriod' : 'disconnected';
}

/** One socket as the gateway sees it: `open` is OPEN and not closed by the gateway (a closed one may still read OPEN after hibernation). */
export interface SocketView<S> {
  socket: S;
  open: boolean;
}

export type UpgradeDecision<S> =
  | { accept: false; closing: number }
  | {
    accept: true;
    /** every existing socket, closed with 4409; the open ones are told in band first */
    supersede: S[];
    /** false: the gateway still holds the client's session (remembered answers, notifications, subscriptions); true: it starts afresh */
    subscriptionRequired: boolean;
    /** the grace alarm was pending: delete it and what it kept in storage */
    endGracePeriod: boolean;
  };

export function admitUpgrade<S>(sockets: readonly SocketView<S>[], graceAlarm: boolean, maxClosingSockets: number): UpgradeDecision<S> {
  // Closed sockets whose client never answers stay until their TCP connection ends: workerd cannot drop them.
  const closing = sockets.filter((view) => !view.open).length;
  if (closing >= maxClosingSockets) return { accept: false, closing };
  // A closing socket does not count: it may linger long after the gateway let the client go.
  const subscriptionRequired = gatewayState(sockets.some((view) => view.open), graceAlarm) === 'disconnected';
  return { accept: true, supersede: sockets.map((view) => view.socket), subscriptionRequired, endGracePeriod: graceAlarm };
}

export type SocketEnd = 'refused' | 'lost' | 'echo';

const STARTS_GRACE: Record<SocketEnd, boolean> = { refused: true, lost: true, echo: false };

/** `othersOpen`: another socket is open (then the client is still connected). */
export function startsGracePeriod(end: SocketEnd, othersOpen: boolean): boolean {
  return STARTS_GRACE[end] && !othersOpen;
}
