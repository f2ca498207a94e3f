/**
 * Frame intake on its own: what each kind of frame from a client turns into
 * before the gateway acts on it. The same frames on real workerd are in
 * test/hardening.test.ts and test/limits.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { FrameIntake, type FrameRead } from '../../src/gateway/frame-intake.js';
import { encodeValue } from '../../src/protocol/codec.js';

const config = { framesPerSecond: 10, frameBurst: 3, bytesPerSecond: 1_000, byteBurst: 100_000, maxFrameBytes: 200, maxCallIdLength: 8 };

/** A socket that records what the intake sent on it. */
function socket(): WebSocket & { sent: string[] } {
  const sent: string[] = [];
  return { sent, send: (text: string) => void sent.push(text) } as unknown as WebSocket & { sent: string[] };
}

const call = (id: string, extra: Record<string, unknown> = {}) => JSON.stringify({ type: 'call', id, to: { binding: 'B' }, method: 'm', args: encodeValue([]), ...extra });

describe('FrameIntake', () => {
  type Case = [name: string, message: string | ArrayBuffer, kind: FrameRead['kind'], errorCode: string | undefined];
  const cases: Case[] = [
    ['a valid call is a frame', call('c1'), 'frame', undefined],
    ['a binary frame is answered with binary_not_supported', new ArrayBuffer(4), 'answered', 'binary_not_supported'],
    ['a frame over maxFrameBytes closes with 1009', 'x'.repeat(201), 'close', undefined],
    ['a binary frame over maxFrameBytes closes with 1009 too', new ArrayBuffer(201), 'close', undefined],
    ['a call with a readable id but a bad field is refused as that call', call('c2', { method: 7 }), 'refusedCall', undefined],
    ['a frame that is no JSON is answered with an error frame', '{not json', 'answered', 'bad_json'],
    ['a call whose id is too long cannot be answered as a call', call('much-too-long-id'), 'answered', 'bad_field'],
  ];
  it.each(cases)('%s', (_name, message, kind, errorCode) => {
    const ws = socket();
    const reads = new FrameIntake().read(ws, message, config);
    expect(reads).toHaveLength(1);
    const read = reads[0]!;
    expect(read.kind).toBe(kind);
    if (read.kind === 'close') expect(read.code).toBe(1009);
    if (read.kind === 'refusedCall') expect(read.id).toBe('c2');
    if (errorCode === undefined) expect(ws.sent).toEqual([]);
    else expect(JSON.parse(ws.sent[0]!)).toMatchObject({ type: 'error', code: errorCode });
  });

  it('counts UTF-16 code units, not UTF-8 bytes: 200 three-byte characters pass a limit of 200', () => {
    const [read] = new FrameIntake().read(socket(), '€'.repeat(200), config);
    expect(read!.kind).not.toBe('close');
  });

  it('a socket past its burst is closed with 1008 before its frame is read; the next socket of the client shares the bucket', () => {
    const intake = new FrameIntake();
    const [noisy, next] = [socket(), socket()];
    const reads = Array.from({ length: 4 }, () => intake.read(noisy, call('c1'), config)[0]!.kind);
    expect(reads).toEqual(['frame', 'frame', 'frame', 'close']);
    expect(intake.read(next, call('c1'), config)[0]!.kind).toBe('close'); // a reconnect brings no fresh burst
    expect(new FrameIntake().read(next, call('c1'), config)[0]!.kind).toBe('frame'); // another client's gateway has its own
  });

  it('a batch is its frames in order, each checked on its own, and marked as a batch', () => {
    const ws = socket();
    const reads = new FrameIntake().read(ws, `[${call('a')},${call('b', { method: 7 })},"x"]`, config);
    expect(reads.batch).toBe(true);
    expect(reads.map((r) => r.kind)).toEqual(['frame', 'refusedCall', 'answered']);
    expect(JSON.parse(ws.sent[0]!)).toMatchObject({ type: 'error', code: 'bad_frame' });
    expect(new FrameIntake().read(socket(), call('a'), config).batch).toBeUndefined();
  });

  it('each frame of a batch takes a token: a batch past the burst ends in a close, the frames after it unread', () => {
    const reads = new FrameIntake().read(socket(), `[${call('a')},${call('b')},${call('c')},${call('d')},${call('e')}]`, { ...config, maxFrameBytes: 10_000 });
    expect(reads.map((r) => r.kind)).toEqual(['frame', 'frame', 'frame', 'close']);
  });

  it('an empty batch, or one over 256 frames, is answered with bad_frame and nothing in it is read', () => {
    for (const message of ['[]', `[${Array.from({ length: 257 }, () => '{}').join(',')}]`]) {
      const ws = socket();
      const reads = new FrameIntake().read(ws, message, { ...config, frameBurst: 1_000, maxFrameBytes: 10_000 });
      expect(reads.map((r) => r.kind)).toEqual(['answered']);
      expect(JSON.parse(ws.sent[0]!)).toMatchObject({ type: 'error', code: 'bad_frame' });
    }
  });

  describe('the character rate', () => {
    const bytes = { ...config, frameBurst: 1_000, bytesPerSecond: 100, byteBurst: 300, maxFrameBytes: 150 };
    const frameOf = (length: number) => call('c1', { args: encodeValue(['x'.repeat(length - call('c1', { args: encodeValue(['']) }).length)]) });

    it('a client past its character burst is closed with 1008 before the frame is read, within its frame rate; its next socket shares the bucket', () => {
      const intake = new FrameIntake();
      const [noisy, next] = [socket(), socket()];
      const frame = frameOf(150);
      expect(frame).toHaveLength(150);
      const reads = Array.from({ length: 3 }, () => intake.read(noisy, frame, bytes)[0]!);
      expect(reads.map((r) => r.kind)).toEqual(['frame', 'frame', 'close']);
      expect(reads[2]).toMatchObject({ code: 1008, reason: expect.stringMatching(/^Byte rate exceeded \(100 chars\/s, bursts of 300\)/) });
      expect(noisy.sent).toEqual([]);
      expect(intake.read(next, frameOf(100), bytes)[0]!.kind).toBe('close'); // a reconnect brings no fresh burst
    });

    it('a batch counts as the whole message, its brackets and commas included', () => {
      const frame = frameOf(100);
      const intake = new FrameIntake();
      const wide = { ...bytes, byteBurst: 620, maxFrameBytes: 310 };
      for (let i = 0; i < 2; i++) expect(intake.read(socket(), `[${frame},${frame},${frame}]`, wide).map((r) => r.kind)).toEqual(['frame', 'frame', 'frame']);
      // 608 of 620 taken (600 if only the frames counted): a 15-character message no longer fits
      expect(intake.read(socket(), 'x'.repeat(15), wide)[0]!.kind).toBe('close');
    });

    it('the burst applied is never below twice maxFrameBytes, so two frames of the largest size can pass', () => {
      const small = { ...bytes, byteBurst: 10 };
      const intake = new FrameIntake();
      expect(intake.read(socket(), frameOf(150), small)[0]!.kind).toBe('frame');
      expect(intake.read(socket(), frameOf(150), small)[0]!.kind).toBe('frame');
      expect(intake.read(socket(), frameOf(100), small)[0]!).toMatchObject({ kind: 'close', reason: expect.stringContaining('bursts of 300') });
    });

    it('a binary message counts its bytes', () => {
      const intake = new FrameIntake();
      const ws = socket();
      expect(intake.read(ws, new ArrayBuffer(140), bytes)[0]!.kind).toBe('answered');
      expect(intake.read(ws, new ArrayBuffer(140), bytes)[0]!.kind).toBe('answered');
      expect(intake.read(ws, new ArrayBuffer(140), bytes)[0]!).toMatchObject({ kind: 'close', code: 1008 }); // 420 bytes against a burst of 300
    });

    it('a frame over maxFrameBytes still closes with 1009, not 1008, and takes no characters: text or binary', () => {
      const intake = new FrameIntake();
      expect(intake.read(socket(), 'x'.repeat(400), bytes)[0]!).toMatchObject({ kind: 'close', code: 1009 });
      expect(intake.read(socket(), new ArrayBuffer(400), bytes)[0]!).toMatchObject({ kind: 'close', code: 1009 });
      // the whole burst (300) is still there for two frames of 150
      expect([intake.read(socket(), frameOf(150), bytes)[0]!.kind, intake.read(socket(), frameOf(150), bytes)[0]!.kind]).toEqual(['frame', 'frame']);
    });
  });
});
