/**
 * A second socket for one identity: how soon the first gets its 4409 close, and
 * how soon a DO → client call in flight on the first is delivered on the second.
 * Speaks the wire protocol over raw sockets, to time each frame.
 */
import { stringify as encodeValue } from 'devalue';
import { bounded, now, ratio, summary, token, within } from '../lib.mjs';

/** Resolves each `next(type)` with the first frame of that type the socket receives after the call. */
function frameWaiter(socket) {
  const waiting = [];
  socket.onText = (text) => {
    const frame = JSON.parse(text);
    for (const w of waiting) if (w.type === frame.type && !w.done) { w.done = true; w.resolve(frame); }
  };
  return { next: (type) => new Promise((resolve) => waiting.push({ type, resolve })) };
}

export async function supersede({ mesh, n }) {
  const driver = await mesh.connect('driver');
  const bench = driver.node('BENCH', 'sup');
  const closeBeforeOpen = [];
  const closeAfterConnect = [];
  const followAfterConnect = [];
  const supersededFrameBeforeOpen = [];
  const followAfterOpen = [];
  const connectToOpen = [];
  const rawConnect = [];
  await bounded(n(60), 40_000, async (i) => {
    // A user of its own per trial: one user's trials would pass the cap of live identities per user.
    const protocols = ['meshgate', `meshgate.token.${await token(`sup${i}`)}`];
    // Baseline: a plain upgrade to the raw DO.
    const t0raw = now();
    const r = await mesh.rawSocket(`sup-${i % 4}`);
    rawConnect.push(r.openedAt - t0raw);
    r.terminate();

    const instance = `sup${i}.t`;
    // The first socket, with a DO → client call in flight that it never answers.
    const first = mesh.gatewaySocket(instance, protocols);
    const frames = frameWaiter(first);
    const status = frames.next('connection_status');
    await within(first.opened, 5_000, 'first open');
    await within(status, 5_000, 'first status');
    const incoming = frames.next('incoming_call');
    const superseded = frames.next('superseded');
    const pendingCall = bench.callClientOnce(instance, i, 10_000);
    await within(incoming, 5_000, 'incoming call on the first socket');
    let supersededAt;
    void superseded.then(() => { supersededAt = now(); });
    const closed = new Promise((resolve) => { first.onCloseFrame = resolve; });

    // The second socket: open, then the call follows it here.
    const t0 = now();
    const second = mesh.gatewaySocket(instance, protocols);
    let followedAt;
    const followed = new Promise((resolve) => {
      second.onText = (text) => {
        const frame = JSON.parse(text);
        if (frame.type === 'incoming_call') {
          followedAt ??= now();
          second.send(JSON.stringify({ type: 'incoming_call_response', id: frame.id, ok: true, result: encodeValue(frame.args.length) }));
          resolve();
        }
      };
    });
    await within(second.opened, 5_000, 'second open');
    const close = await within(closed, 5_000, 'first socket close frame');
    await within(followed, 5_000, 'call delivered on the second socket');
    await within(pendingCall, 5_000, 'call answered from the second socket');
    if (close.code !== 4409) throw new Error(`first socket closed with ${close.code}, expected 4409`);
    connectToOpen.push(second.openedAt - t0);
    closeBeforeOpen.push(second.openedAt - close.at);
    closeAfterConnect.push(close.at - t0);
    followAfterConnect.push(followedAt - t0);
    if (supersededAt !== undefined) supersededFrameBeforeOpen.push(second.openedAt - supersededAt);
    followAfterOpen.push(followedAt - second.openedAt);
    first.terminate();
    second.terminate();
  });
  mesh.disconnect(driver);
  const close = summary(closeAfterConnect);
  const open = summary(connectToOpen);
  const b = summary(rawConnect);
  return {
    scenario: 'supersede', unit: 'ms',
    what: 'a second socket for the same identity: from its connect to the first socket\'s 4409 close frame, and to the first DO → client call delivered on it (a call in flight on the first socket follows)',
    measured: {
      closeAfterConnect: close, followedCallAfterConnect: summary(followAfterConnect), connectToOpen: open,
      closeBeforeOpen: summary(closeBeforeOpen), supersededFrameBeforeOpen: summary(supersededFrameBeforeOpen), followedCallAfterOpen: summary(followAfterOpen),
    },
    baseline: { name: 'raw DO upgrade, connect → open', ...b },
    ratio: { connectToOpen_p50: ratio(open.p50, b.p50), connectToOpen_p99: ratio(open.p99, b.p99) },
    samples: { measured: close.n, baseline: b.n },
    note: 'The gateway closes the old socket before it accepts the new one, so the 4409 close frame reaches the client before the new socket\'s open event: *BeforeOpen is that lead (positive when the close comes first).',
  };
}
