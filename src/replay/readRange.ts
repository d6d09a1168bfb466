/**
 * Reads a range of a topic without touching any consumer group's committed offsets.
 *
 * 1. `resolveRange`: per partition, [start, end) from the admin API: `fetchTopicOffsets`
 *    (low / high watermarks) and `fetchTopicOffsetsByTimestamp` (ListOffsets by time).
 *      --from-offset N   start at N (clamped to [low, high])
 *      --from-time T     start at the first record with timestamp >= T
 *      --to-offset N     up to and including N (end = N + 1, clamped)
 *      --to-time T       up to and including records with timestamp <= T (end = first offset at T + 1)
 *    Without from/to: low watermark / high watermark at the time of resolution (records
 *    produced later are not read). Offsets apply to every partition. The range is
 *    offset-based: with producer-set timestamps that are not monotonic within a partition,
 *    a time range means "from the first record at or after from-time to the first after to-time".
 * 2. `readRange`: a consumer in a throwaway group (random id), autoCommit off, seeks every
 *    partition to its start after `run` and pauses it once its end is reached; it never
 *    commits (kafkajs commits on seek only with autoCommit on), and the throwaway group is
 *    deleted afterwards (best effort). Records are handed to `onBatch` per partition in
 *    offset order, at most `maxBatch` at a time, each offset exactly once.
 */
import { randomBytes } from 'node:crypto';
import type { Admin, Kafka } from 'kafkajs';
import type { InMessage } from '../consumer/processChunk.ts';

export type RangeStart = { offset: bigint } | { time: number };
export type RangeEnd = { offset: bigint } | { time: number };

export interface RangeSpec {
  from?: RangeStart;
  /** Inclusive (offset: that offset; time: records with timestamp <= time). */
  to?: RangeEnd;
}

export interface PartitionRange {
  partition: number;
  /** First offset to read. */
  start: string;
  /** One past the last offset to read (start === end: nothing). */
  end: string;
  /** Watermarks when the range was resolved. */
  low: string;
  high: string;
}

const max = (a: bigint, b: bigint) => (a > b ? a : b);
const min = (a: bigint, b: bigint) => (a < b ? a : b);

/** Number of offsets in the ranges (an upper bound on records: compaction and transaction markers leave gaps). */
export function rangeSize(ranges: PartitionRange[]): number {
  return ranges.reduce((s, r) => s + Number(BigInt(r.end) - BigInt(r.start)), 0);
}

/** Resolves a range spec to per-partition [start, end) offsets. */
export async function resolveRange(admin: Admin, topic: string, spec: RangeSpec = {}): Promise<PartitionRange[]> {
  const marks = await admin.fetchTopicOffsets(topic);
  const byTime = async (t: number): Promise<Map<number, bigint>> => {
    const res = await admin.fetchTopicOffsetsByTimestamp(topic, t);
    return new Map(res.map((r) => [r.partition, BigInt(r.offset)]));
  };
  const fromTime = spec.from && 'time' in spec.from ? await byTime(spec.from.time) : undefined;
  const toTime = spec.to && 'time' in spec.to ? await byTime(spec.to.time + 1) : undefined;
  return marks
    .map((m) => {
      const low = BigInt(m.low), high = BigInt(m.high);
      const clamp = (v: bigint) => min(max(v, low), high);
      let start = low, end = high;
      if (spec.from) start = 'offset' in spec.from ? clamp(spec.from.offset) : clamp(fromTime!.get(m.partition) ?? high);
      if (spec.to) end = 'offset' in spec.to ? clamp(spec.to.offset + 1n) : clamp(toTime!.get(m.partition) ?? high);
      if (end < start) end = start;
      return { partition: m.partition, start: String(start), end: String(end), low: m.low, high: m.high };
    })
    .sort((a, b) => a.partition - b.partition);
}

export interface ReadRangeOptions {
  kafka: Kafka;
  topic: string;
  ranges: PartitionRange[];
  /** Called per partition with consecutive records (offset order); awaited (backpressure). */
  onBatch: (partition: number, messages: InMessage[]) => Promise<void>;
  /** Largest batch handed to onBatch (default 64). */
  maxBatch?: number;
  /** Fail when no record arrives for this long while partitions are unfinished (default 60 000). */
  idleTimeoutMs?: number;
  /** Throwaway group id (default `vqguard-replay-<random>`); never committed to. */
  groupId?: string;
  /** Delete the throwaway group when done (default true). */
  deleteGroup?: boolean;
  readUncommitted?: boolean;
}

export interface ReadRangeResult {
  records: number;
  groupId: string;
  perPartition: { partition: number; records: number }[];
}

export function throwawayGroupId(prefix = 'vqguard-replay'): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

export async function readRange(o: ReadRangeOptions): Promise<ReadRangeResult> {
  const groupId = o.groupId ?? throwawayGroupId();
  const maxBatch = Math.max(1, o.maxBatch ?? 64);
  const idleTimeoutMs = o.idleTimeoutMs ?? 60_000;
  const todo = o.ranges.filter((r) => BigInt(r.end) > BigInt(r.start));
  const perPartition = new Map(o.ranges.map((r) => [r.partition, 0]));
  const result = (): ReadRangeResult => ({
    records: [...perPartition.values()].reduce((a, b) => a + b, 0),
    groupId,
    perPartition: [...perPartition].map(([partition, records]) => ({ partition, records })),
  });
  if (todo.length === 0) return result();

  // Per partition: the next offset to hand out (dedupes a batch fetched before the seek applied) and the end.
  const next = new Map(todo.map((r) => [r.partition, BigInt(r.start)]));
  const ends = new Map(todo.map((r) => [r.partition, BigInt(r.end)]));
  const done = new Set<number>();

  const consumer = o.kafka.consumer({
    groupId,
    readUncommitted: o.readUncommitted ?? false,
    allowAutoTopicCreation: false,
    sessionTimeout: 60_000,
    rebalanceTimeout: 60_000,
    maxWaitTimeInMs: 250,
  });
  let settle!: { resolve: () => void; reject: (e: Error) => void };
  const finished = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  let failed: Error | null = null;
  const fail = (e: Error) => {
    if (failed) return;
    failed = e;
    settle.reject(e);
  };
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      const open = todo.filter((r) => !done.has(r.partition)).map((r) => `${r.partition}@${next.get(r.partition)}/${r.end}`);
      fail(new Error(`replay read: no progress for ${idleTimeoutMs} ms; unfinished partitions (partition@next/end): ${open.join(', ')}`));
    }, idleTimeoutMs);
  };
  const markDone = (partition: number) => {
    if (done.has(partition)) return;
    done.add(partition);
    consumer.pause([{ topic: o.topic, partitions: [partition] }]);
    if (done.size === todo.length) settle.resolve();
  };

  consumer.on(consumer.events.CRASH, (ev) => {
    const p = ev.payload as { error: Error; restart?: boolean };
    if (!p.restart) fail(p.error);
  });

  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [o.topic], fromBeginning: true });
    arm();
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      eachBatch: async ({ batch, heartbeat, isRunning, isStale }) => {
        const p = batch.partition;
        if (failed || done.has(p) || !ends.has(p)) return;
        const end = ends.get(p)!;
        let pos = next.get(p)!;
        const msgs: InMessage[] = [];
        for (const m of batch.messages) {
          const off = BigInt(m.offset);
          if (off < pos || off >= end) continue;
          msgs.push({ key: m.key, value: m.value, headers: m.headers, offset: m.offset, timestamp: m.timestamp });
        }
        for (let i = 0; i < msgs.length; i += maxBatch) {
          if (failed || !isRunning() || isStale()) return;
          const chunk = msgs.slice(i, i + maxBatch);
          try {
            await o.onBatch(p, chunk);
          } catch (e) {
            fail(e instanceof Error ? e : new Error(String(e)));
            return;
          }
          pos = BigInt(chunk[chunk.length - 1]!.offset) + 1n;
          next.set(p, pos);
          perPartition.set(p, perPartition.get(p)! + chunk.length);
          arm();
          await heartbeat();
        }
        // Reached the end: the last offset fetched (messages, or markers / compacted gaps) is end - 1 or past it.
        const last = BigInt(batch.lastOffset());
        if (last >= end - 1n && !isStale()) {
          next.set(p, end);
          markDone(p);
        }
      },
    });
    for (const r of todo) consumer.seek({ topic: o.topic, partition: r.partition, offset: r.start });
    for (const r of o.ranges) if (!todo.includes(r)) consumer.pause([{ topic: o.topic, partitions: [r.partition] }]);
    await finished;
  } finally {
    clearTimeout(timer);
    await consumer.disconnect().catch(() => undefined);
    if (o.deleteGroup !== false) {
      const admin = o.kafka.admin();
      try {
        await admin.connect();
        await admin.deleteGroups([groupId]);
      } catch {
        /* best effort: an empty group without offsets expires on its own */
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    }
  }
  return result();
}
