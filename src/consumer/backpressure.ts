/**
 * Backpressure bookkeeping: records fetched but not yet committed. Above `max` in flight the
 * consumer should pause fetching; once the count falls to half of `max`, resume. Pure; the runner
 * pauses/resumes the kafkajs consumer on what it returns.
 */
export class Backpressure {
  private n = 0;
  private peak = 0;
  private pausedNow = false;

  constructor(readonly max: number) {
    if (!(max >= 1)) throw new Error('maxInFlight must be >= 1');
  }

  get inFlight(): number {
    return this.n;
  }

  /** The most records in flight at once so far. */
  get maxSeen(): number {
    return this.peak;
  }

  get paused(): boolean {
    return this.pausedNow;
  }

  /** Counts `count` more records in flight; 'pause' when fetching should pause now. */
  add(count: number): 'pause' | null {
    this.n += count;
    this.peak = Math.max(this.peak, this.n);
    if (!this.pausedNow && this.n > this.max) {
      this.pausedNow = true;
      return 'pause';
    }
    return null;
  }

  /** Counts `count` records done (committed or abandoned); 'resume' when fetching should resume now. */
  remove(count: number): 'resume' | null {
    this.n = Math.max(0, this.n - count);
    if (this.pausedNow && this.n <= this.max / 2) {
      this.pausedNow = false;
      return 'resume';
    }
    return null;
  }

  /** A new consumer (after a crash) is not paused. */
  reset(): void {
    this.pausedNow = false;
  }
}
