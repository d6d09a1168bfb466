/**
 * The consume -> process -> produce loop (kafkajs). One concern: moving records and offsets.
 *
 * At-least-once (default): each micro-batch's outputs, alerts and dead letters are sent with
 * acks=all; only after the broker acknowledged all of them is the input offset committed.
 * A crash between the two re-delivers the batch (duplicates possible, loss impossible).
 *
 * Exactly-once (`transactions: true`): outputs and the input offsets go in one Kafka
 * transaction (sendOffsets), so a read_committed reader sees each input's outputs once.
 *
 * Backpressure: records fetched but not yet committed are counted; above `maxInFlight` the
 * consumer pauses fetching and resumes once the count falls to half the bound.
 */
import type { Consumer, EachBatchPayload, Kafka, Producer, Transaction } from 'kafkajs';
import type { Logger } from 'pino';
import { chunk, OffsetTracker } from './offsets.ts';
import { processChunk, type ChunkResult, type InMessage, type AlertEvent } from './processChunk.ts';
import type { TopicRuntime } from './topicRuntime.ts';
import type { GuardMetrics } from '../ops/metrics.ts';

export interface RunnerOptions {
  groupId: string;
  transactions: boolean;
  transactionalId: string;
  maxInFlight: number;
  partitionsConsumedConcurrently: number;
  sessionTimeoutMs: number;
  autoOffsetReset?: 'earliest' | 'latest';
}

export interface RunnerEvents {
  onChunk?(topic: string, partition: number, r: ChunkResult): void;
  onAlerts?(alerts: AlertEvent[]): void;
}

export class Runner {
  readonly consumer: Consumer;
  readonly producer: Producer;
  private readonly offsets = new OffsetTracker();
  private inFlight = 0;
  private paused = false;
  /** Input topics seen so far (for inputPattern topics, which have no fixed name to pause). */
  private readonly inputTopics = new Set<string>();
  assigned = false;
  connected = false;
  private stopping = false;
  /** When a request to the broker (consumer's or producer's) last completed, and when a connection last failed. */
  private lastBrokerContact = 0;
  private lastBrokerError = 0;

  constructor(
    private readonly kafka: Kafka,
    private readonly runtimes: TopicRuntime[],
    private readonly opts: RunnerOptions,
    private readonly log: Logger,
    private readonly metrics: GuardMetrics,
    private readonly events: RunnerEvents = {},
  ) {
    this.consumer = kafka.consumer({
      groupId: opts.groupId,
      sessionTimeout: opts.sessionTimeoutMs,
      heartbeatInterval: Math.max(500, Math.floor(opts.sessionTimeoutMs / 10)),
      maxWaitTimeInMs: Math.min(...runtimes.map((r) => r.settings.maxBatchWaitMs), 500),
      readUncommitted: false,
      retry: { retries: 10 },
    });
    this.producer = kafka.producer(
      opts.transactions
        ? { transactionalId: opts.transactionalId, idempotent: true, maxInFlightRequests: 1, transactionTimeout: 15000 }
        : { idempotent: true, maxInFlightRequests: 1 },
    );
    const { GROUP_JOIN, CONNECT, DISCONNECT, CRASH, STOP } = this.consumer.events;
    this.consumer.on(GROUP_JOIN, (e) => {
      this.assigned = Object.keys(e.payload.memberAssignment).length > 0;
      this.log.info({ assignment: e.payload.memberAssignment }, 'partitions assigned');
    });
    this.consumer.on(CONNECT, () => (this.connected = true));
    this.consumer.on(DISCONNECT, () => (this.connected = false));
    this.consumer.on(STOP, () => (this.assigned = false));
    this.consumer.on(CRASH, (e) => {
      this.connected = false;
      this.assigned = false;
      this.log.error({ err: e.payload.error?.message, restart: e.payload.restart }, 'consumer crashed');
    });
    const touch = () => (this.lastBrokerContact = Date.now());
    this.consumer.on(this.consumer.events.REQUEST, touch);
    this.producer.on(this.producer.events.REQUEST, touch);
  }

  /** A connection to a broker failed (kafkajs logs it; there is no event): not reachable until a request completes again. */
  brokerError(): void {
    this.lastBrokerError = Date.now();
  }

  /**
   * Connected, no connection failure since the last completed request, and some request to the
   * broker completed within half a session timeout (min 3 s). kafkajs reports a lost broker only
   * when its retries run out (tens of seconds); a running consumer talks to the broker several
   * times a second (fetches, heartbeats, produce acks).
   */
  brokerReachable(now = Date.now()): boolean {
    return this.connected && this.lastBrokerContact > this.lastBrokerError && now - this.lastBrokerContact <= Math.max(3000, this.opts.sessionTimeoutMs / 2);
  }

  runtimeFor(topic: string): TopicRuntime {
    const rt = this.runtimes.find((r) => r.matches(topic));
    if (!rt) throw new Error(`no configured pipeline for topic ${topic}`);
    return rt;
  }

  async start(): Promise<void> {
    await this.producer.connect();
    await this.consumer.connect();
    this.connected = true;
    for (const rt of this.runtimes) {
      const s = rt.settings;
      await this.consumer.subscribe({ topics: [s.inputPattern ? new RegExp(s.inputPattern) : s.input!], fromBeginning: this.opts.autoOffsetReset !== 'latest' });
    }
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.opts.partitionsConsumedConcurrently,
      eachBatch: (p) => this.eachBatch(p),
    });
  }

  private async eachBatch(p: EachBatchPayload): Promise<void> {
    const { batch } = p;
    const rt = this.runtimeFor(batch.topic);
    this.inputTopics.add(batch.topic);
    this.inFlight += batch.messages.length;
    this.metrics.inFlight.set(this.inFlight);
    this.metrics.consumed.inc({ topic: batch.topic }, batch.messages.length);
    this.maybePause();
    let remaining = batch.messages.length;
    try {
      for (const part of chunk(batch.messages as InMessage[], rt.settings.maxBatchSize)) {
        if (!p.isRunning() || p.isStale()) break;
        const t0 = process.hrtime.bigint();
        const r = await processChunk(rt, batch.topic, batch.partition, part);
        const last = part[part.length - 1]!.offset;
        await this.deliver(batch.topic, batch.partition, last, r);
        p.resolveOffset(last);
        const next = this.offsets.acknowledge(batch.topic, batch.partition, last);
        if (!this.opts.transactions) {
          // kafkajs's consumer.commitOffsets() (which retries) is a silent no-op once stop() has
          // begun, so the chunk a graceful stop waits for would be produced but not committed,
          // and redone after a restart. While stopping, commit through the batch payload instead.
          if (p.isRunning()) await this.consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
          else await p.commitOffsetsIfNecessary({ topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }] });
        }
        this.observe(rt, batch.topic, part.length, t0, r);
        remaining -= part.length;
        this.inFlight -= part.length;
        this.metrics.inFlight.set(this.inFlight);
        this.maybeResume();
        this.events.onChunk?.(batch.topic, batch.partition, r);
        if (r.alerts.length) this.events.onAlerts?.(r.alerts);
        await p.heartbeat();
      }
      const hw = BigInt(batch.highWatermark);
      const committed = this.offsets.committable(batch.topic, batch.partition);
      if (committed !== undefined) this.metrics.consumerLag.set({ topic: batch.topic, partition: String(batch.partition) }, Number(hw - BigInt(committed)));
    } finally {
      this.inFlight -= remaining;
      this.metrics.inFlight.set(this.inFlight);
      this.maybeResume();
    }
  }

  /** Sends a chunk's messages; resolves only when the broker acknowledged all of them. */
  private async deliver(topic: string, partition: number, lastOffset: string, r: ChunkResult): Promise<void> {
    const topicMessages = [...r.out.entries()].map(([t, messages]) => ({ topic: t, messages }));
    if (!this.opts.transactions) {
      if (topicMessages.length) await this.producer.sendBatch({ topicMessages, acks: -1 });
      return;
    }
    const tx: Transaction = await this.producer.transaction();
    try {
      if (topicMessages.length) await tx.sendBatch({ topicMessages, acks: -1 });
      await tx.sendOffsets({
        consumerGroupId: this.opts.groupId,
        topics: [{ topic, partitions: [{ partition, offset: (BigInt(lastOffset) + 1n).toString() }] }],
      });
      await tx.commit();
    } catch (e) {
      await tx.abort().catch(() => {});
      throw e;
    }
  }

  private observe(rt: TopicRuntime, topic: string, n: number, t0: bigint, r: ChunkResult): void {
    const pipeline = rt.settings.pipelines.join('+');
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    this.metrics.batchSize.observe({ topic }, n);
    this.metrics.batchLatency.observe({ topic, pipeline }, secs);
    const now = Date.now();
    for (const ts of r.timestamps) if (Number.isFinite(ts)) this.metrics.endToEnd.observe({ topic }, Math.max(0, (now - ts) / 1000));
    for (const o of r.outputs) this.metrics.produced.inc({ topic, pipeline, outcome: o.flagged ? 'flagged' : 'clean' });
    const flagged = r.alerts.length;
    if (flagged) this.metrics.flagged.inc({ topic, pipeline }, flagged);
    for (const d of r.deadLetters) this.metrics.deadLettered.inc({ topic, reason: d.reason });
    for (const a of r.alerts) {
      this.log.warn({ recordId: a.id, topic, partition: a.partition, offset: a.offset, score: a.score, labelBefore: a.labelBefore, labelAfter: a.labelAfter }, 'flagged: likely adversarial input');
    }
    for (const d of r.deadLetters) this.log.info({ recordId: d.id, topic, offset: d.offset, reason: d.reason }, 'dead-lettered');
  }

  /** Every input topic: the configured names plus those matched by an inputPattern so far. */
  private pausable(): { topic: string }[] {
    for (const r of this.runtimes) if (r.settings.input) this.inputTopics.add(r.settings.input);
    return [...this.inputTopics].map((topic) => ({ topic }));
  }

  private maybePause(): void {
    if (!this.paused && this.inFlight > this.opts.maxInFlight) {
      this.paused = true;
      this.metrics.paused.set(1);
      this.consumer.pause(this.pausable());
      this.log.info({ inFlight: this.inFlight }, 'backpressure: paused fetching');
    }
  }

  private maybeResume(): void {
    if (this.paused && this.inFlight <= this.opts.maxInFlight / 2) {
      this.paused = false;
      this.metrics.paused.set(0);
      this.consumer.resume(this.pausable());
      this.log.info({ inFlight: this.inFlight }, 'backpressure: resumed fetching');
    }
  }

  /** Stop fetching, let in-flight batches finish and commit, then disconnect. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.consumer.stop().catch(() => {});
    await this.consumer.disconnect().catch(() => {});
    await this.producer.disconnect().catch(() => {});
    this.connected = false;
    this.assigned = false;
  }
}
