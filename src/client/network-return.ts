/** In browsers: the events after which a waiting reconnect should not wait out its backoff. */

interface EventSource {
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

/**
 * Calls `listener` on `online`, `focus` and `visibilitychange` (the listener
 * itself checks whether the tab is visible). Returns the function that
 * removes the listeners, or undefined outside a browser.
 */
export function onNetworkReturn(listener: () => void): (() => void) | undefined {
  const win = (globalThis as { window?: EventSource }).window;
  const doc = (globalThis as { document?: EventSource }).document;
  if (!win) return undefined;
  win.addEventListener('online', listener);
  win.addEventListener('focus', listener);
  doc?.addEventListener('visibilitychange', listener);
  return () => {
    win.removeEventListener('online', listener);
    win.removeEventListener('focus', listener);
    doc?.removeEventListener('visibilitychange', listener);
  };
}
