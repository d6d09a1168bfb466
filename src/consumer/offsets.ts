/**
 * Offset bookkeeping for at-least-once delivery: a micro-batch's input offsets may be
 * committed only after every output of that batch is acknowledged. Pure; the runner
 * feeds it and commits what it returns.
 */
export class OffsetTracker {
  /** Next offset to commit per "topic:partition" (last acknowledged + 1). */
  private readonly next = new Map<string, bigint>();

  static key(topic: string, partition: number): string {
    return `${topic}:${partition}`;
  }

  /** Records that all outputs up to and including `offset` are acknowledged. */
  acknowledge(topic: string, partition: number, offset: string): string {
    const k = OffsetTracker.key(topic, partition);
    const n = BigInt(offset) + 1n;
    const cur = this.next.get(k);
    if (cur === undefined || n > cur) this.next.set(k, n);
    return (this.next.get(k) as bigint).toString();
  }

  committable(topic: string, partition: number): string | undefined {
    return this.next.get(OffsetTracker.key(topic, partition))?.toString();
  }

  forget(topic: string, partition: number): void {
    this.next.delete(OffsetTracker.key(topic, partition));
  }
}

/** Cuts messages into micro-batches of at most `max`. */
export function chunk<T>(items: T[], max: number): T[][] {
  if (max < 1) throw new Error('chunk size must be >= 1');
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += max) out.push(items.slice(i, i + max));
  return out;
}
