/** A minimal typed event emitter (the vscode one is not available in unit tests outside the extension host). */
export interface Disposable { dispose(): void }

export class Emitter<T> {
  private listeners = new Set<(value: T) => void>();
  /** Subscribe; the returned object unsubscribes. */
  readonly event = (fn: (value: T) => void): Disposable => {
    this.listeners.add(fn);
    return { dispose: () => { this.listeners.delete(fn); } };
  };
  /** Deliver to every listener; one listener throwing does not stop the others (it is reported to `onError`). */
  fire(value: T, onError?: (e: unknown) => void): void {
    for (const fn of [...this.listeners]) {
      try { fn(value); } catch (e) { onError?.(e); }
    }
  }
  dispose(): void { this.listeners.clear(); }
}
