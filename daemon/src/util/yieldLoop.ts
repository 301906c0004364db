/**
 * Let the event loop breathe during long compute. tfjs on wasm/cpu resolves its promises as microtasks, so a
 * sampling or training loop can run for minutes without reaching the I/O phase: socket reads (JSON-RPC requests,
 * `run/stop`) and timers would wait for the whole run. Calling this in hot loops yields a macrotask at most every
 * `everyMs` milliseconds, which costs nothing measurable and keeps the daemon responsive.
 */
let last = Date.now();

export async function yieldToEventLoop(everyMs = 25): Promise<void> {
  const now = Date.now();
  if (now - last < everyMs) return;
  await new Promise<void>((resolve) => setImmediate(resolve));
  last = Date.now();
}
