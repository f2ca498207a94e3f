/**
 * The supersession contract on its own: one case table per decision, each
 * row a line of the tables in src/gateway/supersession.ts. No sockets, no
 * runtime: the end-to-end behaviour is in test/gateway.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { admitUpgrade, gatewayState, startsGracePeriod, type GatewayState, type SocketEnd, type UpgradeDecision } from '../../src/gateway/supersession.js';

const open = (socket: string) => ({ socket, open: true });
const closing = (socket: string) => ({ socket, open: false });
const MAX_CLOSING = 3;

describe('gatewayState: derived from the open socket and the grace alarm', () => {
  const cases: Array<[openSocket: boolean, graceAlarm: boolean, state: GatewayState]> = [
    [true, false, 'connected'],
    [true, true, 'connected'],
    [false, true, 'gracePeriod'],
    [false, false, 'disconnected'],
  ];
  it.each(cases)('open socket %s, grace alarm %s → %s', (openSocket, graceAlarm, state) => {
    expect(gatewayState(openSocket, graceAlarm)).toBe(state);
  });
});

describe('admitUpgrade: who is superseded, and and whether subscriptionRequired', () => {
  type Case = [name: string, sockets: Array<{ socket: string; open: boolean }>, graceAlarm: boolean, decision: UpgradeDecision<string>];
  const cases: Case[] = [
    ['fresh: no socket, no alarm', [], false,
      { accept: true, supersede: [], subscriptionRequired: true, endGracePeriod: false }],
    ['a live socket is superseded; no subscription required', [open('a')], false,
      { accept: true, supersede: ['a'], subscriptionRequired: false, endGracePeriod: false }],
    ['a reconnect inside the grace period ends it; no subscription required', [], true,
      { accept: true, supersede: [], subscriptionRequired: false, endGracePeriod: true }],
    ['a live socket during a pending alarm (a storm): superseded, alarm ended', [open('a')], true,
      { accept: true, supersede: ['a'], subscriptionRequired: false, endGracePeriod: true }],
    ['only closing sockets, no alarm: closed again; subscription required', [closing('a'), closing('b')], false,
      { accept: true, supersede: ['a', 'b'], subscriptionRequired: true, endGracePeriod: false }],
    ['closing sockets during the grace period: the alarm keeps the session', [closing('a')], true,
      { accept: true, supersede: ['a'], subscriptionRequired: false, endGracePeriod: true }],
    ['every socket is superseded, open or closing, in order', [closing('a'), open('b'), closing('c')], false,
      { accept: true, supersede: ['a', 'b', 'c'], subscriptionRequired: false, endGracePeriod: false }],
    ['as many closing sockets as allowed: refused, nothing changes', [closing('a'), closing('b'), closing('c')], false,
      { accept: false, closing: 3 }],
    ['refused even with a live socket, which keeps its place', [closing('a'), open('b'), closing('c'), closing('d')], true,
      { accept: false, closing: 3 }],
  ];
  it.each(cases)('%s', (_name, sockets, graceAlarm, decision) => {
    expect(admitUpgrade(sockets, graceAlarm, MAX_CLOSING)).toEqual(decision);
  });

  it('one fewer closing socket than the limit is accepted', () => {
    expect(admitUpgrade([closing('a'), closing('b')], false, MAX_CLOSING).accept).toBe(true);
  });
});

describe('startsGracePeriod: the gateway decides from its own state, never the close code', () => {
  const cases: Array<[end: SocketEnd, othersOpen: boolean, starts: boolean]> = [
    ['refused', false, true],
    ['refused', true, false],
    ['lost', false, true],
    ['lost', true, false],
    ['echo', false, false],
    ['echo', true, false],
  ];
  it.each(cases)('%s, another socket open %s → starts %s', (end, othersOpen, starts) => {
    expect(startsGracePeriod(end, othersOpen)).toBe(starts);
  });
});
