/**
 * The consume -> process -> produce loop (kafkajs). One concern: moving records and offsets.
 * It reports what it does as events (`RunnerEventMap`, like kafkajs's instrumentation events);
 * metrics and logs subscribe to them (src/consumer/instrument.ts).
 *
 * At-least-once (default): each micro-batch's outputs, alerts and dead letters are sent with
 * acks=all; only after the broker acknowledged all of them is the input offset committed.
 * A crash between the two re-delivers the batch (duplicates possible, loss impossible).
 *
 * Exactly-once (`transactions: true`): outputs and the input offsets go in one Kafka
 * transaction (sendOffsets), so a read_committed reader sees each input's outputs once.
 *
 * Never stall:
 *   - every message is fitted to its topic's max.message.bytes (read at start-up; see
 *     processChunk's assemble); a "message too large" answer re-reads the limits and refits the
 *     micro-batch, so only the record concerned becomes a (truncated) dead letter;
 *   - a micro-batch whose processing throws is retried record by record; a record that fails
 *     `consumer.poisonAttempts` times in a row is dead-lettered as `poison`;
 *   - a consumer that kafkajs gives up on (crash without restart: a fenced producer, an unknown
 *     member after a long pause, a non-retriable error) is recreated, with a fresh producer,
 *     with bounded backoff; after `consumer.restartGiveUpMs` without success the runner
 *     reports `fatal` (the CLI exits non-zero). While it is down, `dead` is true (/healthz fails).
 *
 * Backpressure: records fetched but not yet committed are counted; above `maxInFlight` the
 * consumer pauses fetching and resumes once the count falls to half the bound.
 */
import { EventEmitter } from 'node:events';
import { Partitioners, type CompressionTypes, type ConfigResourceTypes, type Consumer, type EachBatchPayload, type Kafka, type Producer, type Transaction } from 'kafkajs';
import { chunk, OffsetTracker } from './offsets.ts';
import { Backpressure } from './backpressure.ts';
import { assemble, BATCH_OVERHEAD, chunkTopics, messageBytes, processChunk, type ChunkResult, type ChunkSteps, type InMessage, type AlertEvent, type OutMessage } from './processChunk.ts';
import type { TopicRuntime } from './topicRuntime.ts';
import { CONSUMER_DEFAULTS, type ConsumerConfig } from '../config/schema.ts';
import { cleanDetail } from '../records/reasons.ts';
import { SchemaRegistryUnavailable } from '../records/registry.ts';

export interface RunnerOptions {
  kafka: Kafka;
  runtimes: TopicRuntime[];
  groupId: string;
  transactions: boolean;
  transactionalId: string;
  maxInFlight: number;
  partitionsConsumedConcurrently?: number;
  /** Timeouts, crash recovery, poison records, producer limit (defaults: CONSUMER_DEFAULTS). */
  consumer?: Partial<ConsumerConfig>;
  /** Where a group with no committed offset starts (Kafka's auto.offset.reset). */
  autoOffsetReset?: 'earliest' | 'latest';
  /** Compression of every produced batch (kafkajs CompressionTypes; its codec registered: src/kafka/codecs.ts). Default none. */
  compression?: CompressionTypes;
  /** At start, check that every topic the guard reads or writes exists (MissingTopicsError otherwise). Default false. */
  checkTopics?: boolean;
  /** Fault injection (tests). */
  inject?: RunnerInjection;
}

export interface RunnerInjection {
  /** Runs before a micro-batch is processed; a throw is a processing failure of that micro-batch. */
  beforeProcess?(topic: string, partition: number, messages: InMessage[]): void | Promise<void>;
  /** Replaces processChunk's steps (e.g. an image encoder that fails for one record). */
  steps?: Partial<ChunkSteps>;
  /** Runs before a micro-batch's messages are sent; a throw is a delivery failure (crash path). */
  beforeDeliver?(topic: string, partition: number, r: ChunkResult): void | Promise<void>;
  /**
   * Exactly-once only: runs after the membership heartbeat that precedes a transaction's commit and
   * before the fence check (a test blocks the event loop here to act out a freeze at the worst moment).
   */
  beforeCommit?(topic: string, partition: number): void | Promise<void>;
}

/**
 * Thrown (internally) when a transaction was about to commit but the group membership was last
 * confirmed too long ago: the transaction is aborted and membership is checked again.
 */
export class MembershipUnconfirmed extends Error {
  constructor(readonly ageMs: number, readonly boundMs: number) {
    super(`group membership last confirmed ${ageMs} ms ago (bound ${boundMs} ms): transaction aborted, not committed`);
    this.name = 'MembershipUnconfirmed';
  }
}

export interface BatchInfo {
  topic: string;
  partition: number;
  size: number;
  firstOffset: string;
  lastOffset: string;
}

/** The runner's instrumentation events. */
export interface RunnerEventMap {
  'batch.start': [BatchInfo];
  'batch.end': [BatchInfo & { seconds: number; pipeline: string; result: ChunkResult }];
  commit: [{ topic: string; partition: number; offset: string; transactional: boolean }];
  pause: [{ inFlight: number }];
  resume: [{ inFlight: number }];
  rebalance: [{ assignment: Record<string, number[]> }];
  'in-flight': [{ inFlight: number }];
  consumed: [{ topic: string; count: number }];
  lag: [{ topic: string; partition: number; lag: number }];
  /** A micro-batch (or one record) failed to process and will be tried again. */
  retry: [{ topic: string; partition: number; offsets: string[]; attempt: number; error: string }];
  poison: [{ topic: string; partition: number; offset: string; attempts: number; error: string }];
  /** The broker refused a message as too large: limits re-read and the micro-batch refitted. */
  'too-large': [{ topic: string; partition: number; error: string; limits: Record<string, number> }];
  /** Exactly-once: a commit was refused by the membership fence (a pause since the last confirmed heartbeat); the transaction was aborted. */
  fenced: [{ topic: string; partition: number; ageMs: number; boundMs: number }];
  limits: [{ limits: Record<string, number>; missing: string[] }];
  crash: [{ error: Error; restart: boolean }];
  restart: [{ attempt: number; downMs: number }];
  /** Working again after a crash: a micro-batch committed, or joined and crash-free for a session timeout. */
  recovered: [{ downMs: number }];
  fatal: [{ error: Error; downMs: number }];
  alerts: [AlertEvent[]];
}

/** Topics the guard needs that the broker does not have (kafka.checkTopics): the CLI exits 78 (configuration). */
export class MissingTopicsError extends Error {
  readonly exitCode = 78;
  constructor(readonly missing: { topic: string; roles: string[] }[]) {
    super(
      `${missing.length} topic${missing.length === 1 ? '' : 's'} missing on the broker (create ${missing.length === 1 ? 'it' : 'them'}, or set kafka.checkTopics: false to rely on auto-creation): ` +
        missing.map((m) => `${m.topic} (${m.roles.join(', ')})`).join('; '),
    );
    this.name = 'MissingTopicsError';
  }
}

/** kafkajs's ConfigResourceTypes.TOPIC (a TypeScript enum its CommonJS build does not export by name to ESM). */
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The innermost cause of a kafkajs error. */
function rootCause(e: unknown): Error & { type?: string } {
  let x = e as Error & { cause?: unknown; originalError?: unknown; type?: string };
  for (let i = 0; i < 10; i++) {
    const next = (x?.cause ?? x?.originalError) as typeof x | undefined;
    if (!next || next === x) break;
    x = next;
  }
  return x;
}

function errMessage(e: unknown): string {
  const r = rootCause(e);
  const top = e instanceof Error ? e.message : String(e);
  return r && r !== e && r.message && r.message !== top ? `${top} (cause: ${r.message})` : top;
}

export function isMessageTooLarge(e: unknown): boolean {
  let x = e as (Error & { cause?: unknown; type?: string; errors?: unknown[] }) | undefined;
  for (let i = 0; x && i < 10; i++) {
    if (x.type === 'MESSAGE_TOO_LARGE' || x.type === 'RECORD_LIST_TOO_LARGE' || /larger than the max message size/i.test(x.message ?? '')) return true;
    if (Array.isArray(x.errors) && x.errors.some(isMessageTooLarge)) return true;
    x = x.cause as typeof x;
  }
  return false;
}

export class Runner extends EventEmitter<RunnerEventMap> {
  private _consumer!: Consumer;
  private _producer!: Producer;
  private readonly kafka: Kafka;
  private readonly runtimes: TopicRuntime[];
  readonly opts: RunnerOptions;
  readonly timeouts: ConsumerConfig;
  private offsets = new OffsetTracker();
  private readonly bp: Backpressure;
  /** Input topics seen so far (for inputPattern topics, which have no fixed name to pause). */
  private readonly inputTopics = new Set<string>();
  assigned = false;
  connected = false;
  private stopping = false;
  /** Since when the consumer has been dead (crashed without a kafkajs restart, not yet rejoined). */
  private deadSince: number | null = null;
  private recovering = false;
  /** When a request to the broker (consumer's or producer's) last completed, and when a connection last failed. */
  private lastBrokerContact = 0;
  private lastBrokerError = 0;
  /** Failed attempts per "topic:partition:offset" (poison detection). */
  private readonly failures = new Map<string, number>();
  /** max.message.bytes per topic (read at start-up and after a "too large" answer), and shrink factors. */
  private readonly topicLimits = new Map<string, number>();
  private readonly shrink = new Map<string, number>();
  /**
   * When (wall clock) the request that last confirmed this member's place in the group was
   * created: a successful Heartbeat, or the SyncGroup of a join. Taken from the request's creation
   * time, not the response's arrival, so a freeze between the two does not count as confirmed.
   */
  private membershipConfirmedAt = 0;

  constructor(opts: RunnerOptions) {
    super();
    this.opts = opts;
    this.kafka = opts.kafka;
    this.runtimes = opts.runtimes;
    this.timeouts = { ...CONSUMER_DEFAULTS, ...opts.consumer };
    this.bp = new Backpressure(opts.maxInFlight);
    this.createClients();
  }

  get consumer(): Consumer {
    return this._consumer;
  }

  get producer(): Producer {
    return this._producer;
  }

  /** True while the consumer is down (crashed and not yet recreated and rejoined). */
  get dead(): boolean {
    return this.deadSince !== null;
  }

  /** The most records in flight at once so far. */
  get inFlightMax(): number {
    return this.bp.maxSeen;
  }

  get isPaused(): boolean {
    return this.bp.paused;
  }

  private createClients(): void {
    const t = this.timeouts;
    const consumer = this.kafka.consumer({
      groupId: this.opts.groupId,
      sessionTimeout: t.sessionTimeoutMs,
      rebalanceTimeout: t.rebalanceTimeoutMs,
      heartbeatInterval: t.heartbeatIntervalMs,
      maxWaitTimeInMs: t.maxWaitTimeMs ?? Math.min(...this.runtimes.map((r) => r.settings.maxBatchWaitMs), 500),
      maxBytesPerPartition: t.maxBytesPerPartition,
      maxBytes: t.maxBytes,
      minBytes: t.minBytes,
      readUncommitted: false,
      retry: { retries: 10 },
    });
    // DefaultPartitioner: the Java client's murmur2 partitioning of keyed records (outputs keep their
    // input's key, so downstream partitioning matches a Java producer's); naming it also silences
    // kafkajs's "switched default partitioner" warning.
    const producer = this.kafka.producer(
      this.opts.transactions
        ? {
            transactionalId: this.opts.transactionalId,
            idempotent: true,
            maxInFlightRequests: 1,
            transactionTimeout: t.transactionTimeoutMs,
            createPartitioner: Partitioners.DefaultPartitioner,
            // What kafkajs asks of an idempotent producer (fewer retries "may invalidate EoS"): retry
            // retriable errors without a count limit, as the Java client does (retries = MAX_INT). A
            // broker away longer than the transaction timeout aborts the transaction; the producer
            // then fails non-retriably and the consumer and producer are recreated (see recover).
            retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 300, maxRetryTime: 5000 },
          }
        : // At-least-once: not idempotent (a retried send may duplicate a message, which this mode
          // allows anyway; order holds with one request in flight), so bounded retries are fine and
          // a lost broker surfaces as an error instead of an endless wait.
          { idempotent: false, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner },
    );
    const { GROUP_JOIN, CONNECT, DISCONNECT, CRASH, STOP } = consumer.events;
    consumer.on(GROUP_JOIN, (e) => {
      if (consumer !== this._consumer) return;
      this.assigned = Object.keys(e.payload.memberAssignment).length > 0;
      this.offsets = new OffsetTracker();
      // Rejoining is not enough (a poisoned batch crashes it again at once): alive after a commit,
      // or after a session timeout in the group without a crash.
      if (this.deadSince !== null) {
        const since = this.deadSince;
        setTimeout(() => consumer === this._consumer && this.deadSince === since && this.connected && this.markAlive(), this.timeouts.sessionTimeoutMs).unref();
      }
      this.emit('rebalance', { assignment: e.payload.memberAssignment });
    });
    consumer.on(CONNECT, () => consumer === this._consumer && (this.connected = true));
    consumer.on(DISCONNECT, () => consumer === this._consumer && (this.connected = false));
    consumer.on(STOP, () => consumer === this._consumer && (this.assigned = false));
    consumer.on(CRASH, (e) => {
      if (consumer !== this._consumer) return;
      this.onCrash(e.payload.error, e.payload.restart);
    });
    const touch = () => (this.lastBrokerContact = Date.now());
    // Membership fence (see fenceCommit): the creation time of the last Heartbeat / SyncGroup
    // request whose response arrived, promoted when kafkajs reports that call a success.
    let heartbeatSent = 0;
    let syncSent = 0;
    consumer.on(consumer.events.REQUEST, (e) => {
      touch();
      if (e.payload.apiName === 'Heartbeat') heartbeatSent = e.payload.createdAt;
      else if (e.payload.apiName === 'SyncGroup') syncSent = e.payload.createdAt;
    });
    consumer.on(consumer.events.HEARTBEAT, () => consumer === this._consumer && (this.membershipConfirmedAt = Math.max(this.membershipConfirmedAt, heartbeatSent)));
    consumer.on(GROUP_JOIN, () => consumer === this._consumer && (this.membershipConfirmedAt = Math.max(this.membershipConfirmedAt, syncSent)));
    producer.on(producer.events.REQUEST, touch);
    this._consumer = consumer;
    this._producer = producer;
  }

  private fatalSent = false;
  private fatal(error: Error): void {
    if (this.fatalSent) return;
    this.fatalSent = true;
    this.emit('fatal', { error, downMs: this.deadSince === null ? 0 : Date.now() - this.deadSince });
  }

  private markAlive(): void {
    if (this.deadSince === null) return;
    const downMs = Date.now() - this.deadSince;
    this.deadSince = null;
    this.emit('recovered', { downMs });
  }

  private onCrash(error: Error, restart: boolean): void {
    this.connected = false;
    this.assigned = false;
    if (this.stopping) return;
    this.emit('crash', { error, restart });
    if (restart) return; // kafkajs restarts the consumer itself (retriable error)
    this.deadSince ??= Date.now();
    if (Date.now() - this.deadSince >= this.timeouts.restartGiveUpMs) {
      this.fatal(error);
      return;
    }
    void this.recover(error);
  }

  /** Recreates consumer and producer (a fresh transactional epoch) and rejoins, with bounded backoff. */
  private async recover(cause: Error): Promise<void> {
    if (this.recovering) return;
    this.recovering = true;
    const t = this.timeouts;
    let wait = t.restartBackoffMs;
    try {
      for (let attempt = 1; !this.stopping; attempt++) {
        const since = this.deadSince ?? Date.now();
        if (Date.now() - since >= t.restartGiveUpMs) {
          this.fatal(cause);
          return;
        }
        await sleep(wait);
        if (this.stopping) return;
        const old = { consumer: this._consumer, producer: this._producer };
        await old.consumer.disconnect().catch(() => {});
        await old.producer.disconnect().catch(() => {});
        this.bp.reset();
        this.createClients();
        try {
          await this.startClients();
          this.emit('restart', { attempt, downMs: Date.now() - since });
          return;
        } catch (e) {
          cause = e as Error;
          wait = Math.min(wait * 2, t.restartBackoffMaxMs);
        }
      }
    } finally {
      this.recovering = false;
    }
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
    return this.connected && this.lastBrokerContact > this.lastBrokerError && now - this.lastBrokerContact <= Math.max(3000, this.timeouts.sessionTimeoutMs / 2);
  }

  runtimeFor(topic: string): TopicRuntime {
    const rt = this.runtimes.find((r) => r.matches(topic));
    if (!rt) throw new Error(`no configured pipeline for topic ${topic}`);
    return rt;
  }

  /** Largest message a topic takes: min(its max.message.bytes, the producer's limit), shrunk after refusals, less a batch header. */
  maxBytes = (topic: string): number => {
    const cap = Math.min(this.topicLimits.get(topic) ?? Infinity, this.timeouts.producerMaxMessageBytes);
    return Math.floor(cap * (this.shrink.get(topic) ?? 1)) - BATCH_OVERHEAD;
  };

  /** Topics' max.message.bytes (effective values, broker default included). */
  async readTopicLimits(topics: string[]): Promise<{ limits: Map<string, number>; missing: string[] }> {
    const limits = new Map<string, number>();
    const missing: string[] = [];
    if (!topics.length) return { limits, missing };
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      for (const name of topics) {
        try {
          const r = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: TOPIC_RESOURCE, name, configNames: ['max.message.bytes'] }] });
          const v = r.resources[0]?.configEntries.find((c) => c.configName === 'max.message.bytes')?.configValue;
          if (v !== undefined && Number.isFinite(Number(v))) limits.set(name, Number(v));
          else missing.push(name);
        } catch {
          missing.push(name);
        }
      }
    } finally {
      await admin.disconnect().catch(() => {});
    }
    return { limits, missing };
  }

  /**
   * Every input (fixed names), output, alert and dead-letter topic that the broker does not have
   * (listTopics: a metadata request that creates nothing), with the roles each plays.
   */
  async missingTopics(): Promise<{ topic: string; roles: string[] }[]> {
    const roles = new Map<string, string[]>();
    const add = (topic: string, role: string) => roles.set(topic, [...(roles.get(topic) ?? []), role]);
    for (const r of this.runtimes) {
      const s = r.settings;
      const of = s.input ?? `inputPattern ${s.inputPattern}`;
      if (s.input) add(s.input, 'input');
      add(s.output, `output of ${of}`);
      add(s.deadLetter, `dead letters of ${of}`);
      add(s.alerts, `alerts of ${of}`);
    }
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const have = new Set(await admin.listTopics());
      return [...roles].filter(([t]) => !have.has(t)).map(([topic, r]) => ({ topic, roles: [...new Set(r)] }));
    } finally {
      await admin.disconnect().catch(() => {});
    }
  }

  /** Output, alert and dead-letter topics (and fixed input topics) of every runtime. */
  topicsInUse(): { outputs: string[]; inputs: string[] } {
    const outputs = new Set<string>();
    const inputs = new Set<string>();
    for (const r of this.runtimes) {
      outputs.add(r.settings.output).add(r.settings.deadLetter).add(r.settings.alerts);
      if (r.settings.input) inputs.add(r.settings.input);
    }
    return { outputs: [...outputs], inputs: [...inputs] };
  }

  async loadLimits(): Promise<Map<string, number>> {
    const { outputs, inputs } = this.topicsInUse();
    const { limits, missing } = await this.readTopicLimits([...new Set([...outputs, ...inputs])]);
    for (const [k, v] of limits) this.topicLimits.set(k, v);
    this.emit('limits', { limits: Object.fromEntries(limits), missing });
    return limits;
  }

  private limitsLoaded = false;

  async start(): Promise<void> {
    if (this.opts.checkTopics) {
      const missing = await this.missingTopics();
      if (missing.length) throw new MissingTopicsError(missing);
    }
    await this.startClients();
  }

  private async startClients(): Promise<void> {
    await this._producer.connect();
    if (!this.limitsLoaded) {
      // Once the broker has accepted a connection (so a TLS or SASL failure is reported once, by the producer).
      this.limitsLoaded = true;
      await this.loadLimits().catch(() => {});
    }
    await this._consumer.connect();
    this.connected = true;
    for (const rt of this.runtimes) {
      const s = rt.settings;
      await this._consumer.subscribe({ topics: [s.inputPattern ? new RegExp(s.inputPattern) : s.input!], fromBeginning: this.opts.autoOffsetReset !== 'latest' });
    }
    const consumer = this._consumer;
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.opts.partitionsConsumedConcurrently ?? 1,
      eachBatch: (p) => this.eachBatch(consumer, p),
    });
  }

  private setInFlight(delta: number): void {
    const act = delta >= 0 ? this.bp.add(delta) : this.bp.remove(-delta);
    this.emit('in-flight', { inFlight: this.bp.inFlight });
    if (act === 'pause') {
      this._consumer.pause(this.pausable());
      this.emit('pause', { inFlight: this.bp.inFlight });
    } else if (act === 'resume') {
      this._consumer.resume(this.pausable());
      this.emit('resume', { inFlight: this.bp.inFlight });
    }
  }

  private async eachBatch(consumer: Consumer, p: EachBatchPayload): Promise<void> {
    const { batch } = p;
    const rt = this.runtimeFor(batch.topic);
    this.inputTopics.add(batch.topic);
    this.setInFlight(batch.messages.length);
    this.emit('consumed', { topic: batch.topic, count: batch.messages.length });
    let remaining = batch.messages.length;
    try {
      for (const part of chunk(batch.messages as InMessage[], rt.settings.maxBatchSize)) {
        if (!p.isRunning() || p.isStale() || consumer !== this._consumer) break;
        const done = await this.handle(consumer, p, rt, batch.topic, batch.partition, part, 0);
        if (!done) break;
        remaining -= part.length;
        this.setInFlight(-part.length);
        await p.heartbeat();
      }
      const hw = BigInt(batch.highWatermark);
      const committed = this.offsets.committable(batch.topic, batch.partition);
      if (committed !== undefined) this.emit('lag', { topic: batch.topic, partition: batch.partition, lag: Number(hw - BigInt(committed)) });
    } finally {
      this.setInFlight(-remaining);
    }
  }

  /**
   * Processes, delivers and commits one micro-batch. A processing failure is retried record by
   * record; a record failing `poisonAttempts` times in a row becomes a `poison` dead letter.
   * Returns false when the batch was abandoned (stopping, stale, or the consumer was replaced).
   */
  private async handle(consumer: Consumer, p: EachBatchPayload, rt: TopicRuntime, topic: string, partition: number, part: InMessage[], depth: number): Promise<boolean> {
    const info: BatchInfo = { topic, partition, size: part.length, firstOffset: part[0]!.offset, lastOffset: part[part.length - 1]!.offset };
    const s = rt.settings;
    const t0 = process.hrtime.bigint();
    this.emit('batch.start', info);
    const keys = part.map((m) => `${topic}:${partition}:${m.offset}`);
    let r: ChunkResult;
    try {
      await this.opts.inject?.beforeProcess?.(topic, partition, part);
      const done = await this.processAwaitingRegistry(p, consumer, rt, topic, partition, part);
      if (!done) return false;
      r = done;
    } catch (e) {
      const error = cleanDetail(errMessage(e), 300);
      const attempt = keys.map((k) => this.failures.get(k) ?? 0).reduce((a, b) => Math.max(a, b), 0) + 1;
      for (const k of keys) this.failures.set(k, (this.failures.get(k) ?? 0) + 1);
      const m = part[0]!;
      if (part.length === 1 && attempt >= this.timeouts.poisonAttempts) {
        this.emit('poison', { topic, partition, offset: m.offset, attempts: attempt, error });
        r = assemble(
          [{ kind: 'dead', m, id: m.key?.length ? m.key.toString('utf8').slice(0, 200) : null, reason: 'poison', detail: `processing failed ${attempt} times in a row: ${error}` }],
          chunkTopics(s, topic, partition, rt.registry?.ids),
          { maxBytes: this.maxBytes },
        );
      } else {
        this.emit('retry', { topic, partition, offsets: part.map((x) => x.offset), attempt, error });
        const alive = () => p.isRunning() && !p.isStale() && consumer === this._consumer;
        if (part.length > 1) {
          // Isolate: one record at a time, so only the failing one is retried and dead-lettered.
          for (const one of part) if (!alive() || !(await this.handle(consumer, p, rt, topic, partition, [one], depth + 1))) return false;
          return true;
        }
        await sleep(Math.min(100 * 2 ** (attempt - 1), 2000));
        if (!alive()) return false;
        await p.heartbeat().catch(() => {});
        return this.handle(consumer, p, rt, topic, partition, part, depth + 1);
      }
    }
    const last = info.lastOffset;
    // Still a member of the group? After a freeze (GC pause, SIGSTOP) past the session timeout the
    // partition belongs to another member: this heartbeat fails (unknown member / rebalancing) and
    // kafkajs rejoins, instead of this zombie producing (and, with transactions, committing) the
    // chunk again. kafkajs's sendOffsets does not carry the group generation (KIP-447), so this
    // check and the transaction timeout are what fence a resumed member.
    await p.heartbeat();
    r = await this.deliverFitted(topic, partition, last, r, rt, p);
    for (const k of keys) this.failures.delete(k);
    p.resolveOffset(last);
    const next = this.offsets.acknowledge(topic, partition, last);
    if (!this.opts.transactions) {
      // kafkajs's consumer.commitOffsets() (which retries) is a silent no-op once stop() has
      // begun, so the chunk a graceful stop waits for would be produced but not committed,
      // and redone after a restart. While stopping, commit through the batch payload instead.
      if (p.isRunning()) await consumer.commitOffsets([{ topic, partition, offset: next }]);
      else await p.commitOffsetsIfNecessary({ topics: [{ topic, partitions: [{ partition, offset: next }] }] });
    }
    this.markAlive();
    this.emit('commit', { topic, partition, offset: next, transactional: this.opts.transactions });
    this.emit('batch.end', { ...info, seconds: Number(process.hrtime.bigint() - t0) / 1e9, pipeline: s.pipelines.join('+'), result: r });
    if (r.alerts.length) this.emit('alerts', r.alerts);
    return true;
  }

  /**
   * processChunk, waiting out a Schema Registry outage: the micro-batch is retried with backoff
   * (up to 5 s apart, heartbeating), not counted against its records (no poison, no dead letters,
   * no commit). Undefined when the batch was abandoned meanwhile (stopping, stale, replaced).
   */
  private async processAwaitingRegistry(p: EachBatchPayload, consumer: Consumer, rt: TopicRuntime, topic: string, partition: number, part: InMessage[]): Promise<ChunkResult | undefined> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await processChunk(rt, topic, partition, part, Date.now, { maxBytes: this.maxBytes, steps: this.opts.inject?.steps });
      } catch (e) {
        if (!(e instanceof SchemaRegistryUnavailable)) throw e;
        this.emit('retry', { topic, partition, offsets: part.map((x) => x.offset), attempt, error: cleanDetail(e.message, 300) });
        await sleep(Math.min(250 * 2 ** Math.min(attempt - 1, 10), 5000));
        if (!p.isRunning() || p.isStale() || consumer !== this._consumer) return undefined;
        await p.heartbeat().catch(() => {});
      }
    }
  }

  /**
   * Delivers a micro-batch; when the broker refuses a message as too large, re-reads the topics'
   * limits (halving the refusing topics' if they did not change), refits and tries again, so only
   * the records that do not fit become dead letters (truncated if need be).
   */
  private async deliverFitted(topic: string, partition: number, lastOffset: string, r: ChunkResult, rt: TopicRuntime, p: EachBatchPayload): Promise<ChunkResult> {
    const beforeCommit = async () => {
      await p.heartbeat();
      await this.opts.inject?.beforeCommit?.(topic, partition);
      this.fenceCommit();
    };
    for (let attempt = 0, fences = 0; ; attempt++) {
      try {
        await this.opts.inject?.beforeDeliver?.(topic, partition, r);
        await this.deliver(topic, partition, lastOffset, r, beforeCommit);
        return r;
      } catch (e) {
        if (e instanceof MembershipUnconfirmed) {
          // Aborted, nothing visible. Still a member? A real heartbeat answers: it throws (unknown
          // member, rebalancing: kafkajs rejoins and the partition is redone by its owner) or
          // confirms, and the micro-batch is delivered again in a new transaction.
          this.emit('fenced', { topic, partition, ageMs: e.ageMs, boundMs: e.boundMs });
          if (++fences > 5) throw e;
          attempt--;
          await sleep(this.timeouts.heartbeatIntervalMs); // kafkajs sends no heartbeat within an interval of the last
          await p.heartbeat();
          continue;
        }
        if (!isMessageTooLarge(e) || attempt >= 6) throw e;
        const involved = [...r.out.keys()];
        const before = new Map(involved.map((t) => [t, this.maxBytes(t)]));
        const { limits } = await this.readTopicLimits(involved).catch(() => ({ limits: new Map<string, number>() }));
        for (const [k, v] of limits) this.topicLimits.set(k, v);
        for (const t of involved) if (this.maxBytes(t) >= before.get(t)!) this.shrink.set(t, (this.shrink.get(t) ?? 1) / 2);
        this.emit('too-large', { topic, partition, error: errMessage(e), limits: Object.fromEntries(involved.map((t) => [t, this.maxBytes(t)])) });
        const s = rt.settings;
        r = assemble(r.outcomes, chunkTopics(s, topic, partition, rt.registry?.ids), { maxBytes: this.maxBytes }, r.stageMs);
      }
    }
  }

  /**
   * Exactly-once fence against a zombie commit. kafkajs's sendOffsets does not carry the group
   * generation (KIP-447), so the broker would accept the commit of a member that was frozen (GC
   * pause, SIGSTOP, VM freeze) past its session timeout while its partition moved to another
   * member, which then redoes the same records: duplicates. The transaction timeout does not close
   * this: the broker aborts timed-out transactions only on its cleanup pass
   * (transaction.abort.timed.out.transaction.cleanup.interval.ms, 10 s by default), after the
   * partitions may have moved. So the commit goes ahead only if a heartbeat created less than half
   * the session timeout (and half the rebalance timeout) ago was answered with success: the
   * coordinator cannot have given the partition away since. Otherwise the transaction is aborted.
   * What remains: a freeze between this check and the EndTxn request leaving the socket (the same
   * synchronous stretch of code plus kafkajs's few awaits before the write).
   */
  private fenceCommit(now = Date.now()): void {
    const t = this.timeouts;
    const bound = Math.floor(Math.min(t.sessionTimeoutMs, t.rebalanceTimeoutMs) / 2);
    const age = now - this.membershipConfirmedAt;
    if (age > bound) throw new MembershipUnconfirmed(age, bound);
  }

  /** A chunk's messages as sendBatch calls whose messages per topic fit that topic's limit together. */
  private sends(out: Map<string, OutMessage[]>): { topic: string; messages: OutMessage[] }[][] {
    const rounds: { topic: string; messages: OutMessage[] }[][] = [];
    for (const [topic, messages] of out) {
      const cap = this.maxBytes(topic);
      let group: OutMessage[] = [];
      let bytes = 0;
      let round = 0;
      const flush = () => {
        if (!group.length) return;
        (rounds[round++] ??= []).push({ topic, messages: group });
        group = [];
        bytes = 0;
      };
      for (const m of messages) {
        const n = messageBytes(m);
        if (group.length && bytes + n > cap) flush();
        group.push(m);
        bytes += n;
      }
      flush();
    }
    return rounds;
  }

  /** Sends a chunk's messages; resolves only when the broker acknowledged all of them. */
  private async deliver(topic: string, partition: number, lastOffset: string, r: ChunkResult, beforeCommit: () => Promise<void>): Promise<void> {
    const rounds = this.sends(r.out);
    const producer = this._producer;
    if (!this.opts.transactions) {
      for (const topicMessages of rounds) await producer.sendBatch({ topicMessages, acks: -1, compression: this.opts.compression });
      return;
    }
    const tx: Transaction = await producer.transaction();
    try {
      for (const topicMessages of rounds) await tx.sendBatch({ topicMessages, acks: -1, compression: this.opts.compression });
      await tx.sendOffsets({
        consumerGroupId: this.opts.groupId,
        topics: [{ topic, partitions: [{ partition, offset: (BigInt(lastOffset) + 1n).toString() }] }],
      });
      await beforeCommit();
      await tx.commit();
    } catch (e) {
      await tx.abort().catch(() => {});
      throw e;
    }
  }

  /** Every input topic: the configured names plus those matched by an inputPattern so far. */
  private pausable(): { topic: string }[] {
    for (const r of this.runtimes) if (r.settings.input) this.inputTopics.add(r.settings.input);
    return [...this.inputTopics].map((topic) => ({ topic }));
  }

  /** Stop fetching, let in-flight batches finish and commit, then disconnect. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this._consumer.stop().catch(() => {});
    await this._consumer.disconnect().catch(() => {});
    await this._producer.disconnect().catch(() => {});
    this.connected = false;
    this.assigned = false;
  }
}
