/** The tiny event interface every emitter of the SDK shares. */
export class Emitter<T> {
  private readonly listeners = new Set<(value: T) => void>();

  /** Calls `listener` for every value from now on; returns the function that stops it. */
  subscribe(listener: (value: T) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** How many listeners are subscribed. */
  get listenerCount(): number {
    return this.listeners.size;
  }

  /** @internal */
  emit(value: T): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(value);
      } catch (error) {
        // One listener's failure is not the socket's, nor the other listeners'.
        console.error(error);
      }
    }
  }

  /** @internal */
  clear(): void {
    this.listeners.clear();
  }
}
