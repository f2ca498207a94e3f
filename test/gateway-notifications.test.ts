/** The gateway's memory of unanswered notifications: bounded by count and by UTF-8 bytes, no timer. */
import { describe, expect, it } from 'vitest';
import { isNotificationId, notificationId, PendingNotifications } from '../src/gateway/notifications.js';

describe('PendingNotifications', () => {
  it('keeps frames until answered, oldest first, and says how long the oldest has waited', () => {
    const pending = new PendingNotifications();
    expect(pending.oldestWaitMs(1_000)).toBe(0);
    expect(pending.add('a-n1', 'one', 100, 10, 1_000)).toBe(true);
    expect(pending.add('a-n2', 'two', 300, 10, 1_000)).toBe(true);
    expect(pending.oldestWaitMs(1_000)).toBe(900);
    expect([...pending.frames()]).toEqual(['one', 'two']);
    expect(pending.answer('a-n1')).toBe(true);
    expect(pending.answer('a-n1')).toBe(false);
    expect(pending.oldestWaitMs(1_000)).toBe(700);
    pending.clear();
    expect(pending.size).toBe(0);
    expect(pending.bytes).toBe(0);
  });

  it('refuses past maxPendingNotifications, and past maxPendingNotificationBytes counted in UTF-8 bytes', () => {
    const byCount = new PendingNotifications();
    expect([1, 2, 3].map((n) => byCount.add(`x-n${n}`, 'f', 0, 2, 1_000))).toEqual([true, true, false]);

    const byBytes = new PendingNotifications();
    // 'é' is one UTF-16 unit but two UTF-8 bytes: 3 of them are 6 bytes.
    expect(byBytes.add('x-n1', 'ééé', 0, 100, 10)).toBe(true);
    expect(byBytes.bytes).toBe(6);
    // 6 + 6 bytes pass the bound of 10, though 3 + 3 UTF-16 units would not.
    expect(byBytes.add('x-n2', 'ééé', 0, 100, 10)).toBe(false);
    expect(byBytes.add('x-n2', 'éé', 0, 100, 10)).toBe(true); // exactly 10
    expect(byBytes.bytes).toBe(10);
  });

  it('always takes one frame when empty, however large', () => {
    const pending = new PendingNotifications();
    expect(pending.add('x-n1', 'x'.repeat(100), 0, 1, 10)).toBe(true);
    expect(pending.add('x-n2', 'y', 0, 5, 10)).toBe(false);
  });

  it('tells notification ids from call ids, whatever incarnation of the gateway made them', () => {
    expect(isNotificationId(notificationId('lx2a9f-', 8))).toBe(true);
    expect(isNotificationId('otherepoch-n12')).toBe(true);
    expect(isNotificationId('lx2a9f-8')).toBe(false);
    expect(isNotificationId('client-call-n')).toBe(false);
  });
});
