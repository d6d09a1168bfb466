/**
 * The guard process: config -> Kafka client, model runtimes (warmed), runner, ops server.
 * Readiness = broker connected, models loaded and warmed, partitions assigned.
 */
import { hostname } from 'node:os';
import { Kafka, logLevel as kafkaLogLevel, type KafkaConfig as KafkaJsConfig, type LogEntry } from 'kafkajs';
import pino, { type Logger } from 'pino';
import { tf, backendInfo, tfVersion, backendInfoLabels } from '../backend/tf.ts';
import { ModelRegistry } from '../models/registry.ts';
import { buildTopicRuntime, type TopicRuntime } from './topicRuntime.ts';
import { Runner, type RunnerInjection } from './runner.ts';
import { attachLogging, attachMetrics } from './instrument.ts';
import type { ChunkResult, AlertEvent } from './processChunk.ts';
import { GuardMetrics } from '../ops/metrics.ts';
import { startOpsServer, type OpsServer } from '../ops/http.ts';
import { resolveSecrets, redactConfig } from '../config/load.ts';
import type { GuardConfig } from '../config/schema.ts';
import { AlertWebhook } from '../ops/webhook.ts';
import { registerAvailableCodecs, useCompression } from '../kafka/codecs.ts';
import { ConfigError } from '../config/schema.ts';
import { ImagePool, resolveWorkers } from './imagePool.ts';

export interface GuardOptions {
  baseDir?: string;
  logger?: Logger;
  /** Override the HTTP port (0 = any free port). */
  httpPort?: number;
  events?: RunnerEvents;
  /** Fault injection (tests). */
  inject?: RunnerInjection;
  /**
   * Called once when a crashed consumer could not be recreated within consumer.restartGiveUpMs.
   * Default: exit the process with EXIT_CONSUMER_DEAD, so the orchestrator restarts it.
   */
  onFatal?(error: Error): void;
}

/** Exit code when the consumer could not be recreated after a crash (the CLI; see README "Exit codes"). */
export const EXIT_CONSUMER_DEAD = 3;

/** Simple callbacks for embedders (tests, demo, bench); the runner's full event set is `guard.runner.on(...)`. */
export interface RunnerEvents {
  onChunk?(topic: string, partition: number, r: ChunkResult): void;
  onAlerts?(alerts: AlertEvent[]): void;
}

export function createLogger(dest?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level: process.env.VQGUARD_LOG_LEVEL ?? 'info',
      base: { service: 'vqguard' },
      // Defence in depth: never print secrets or payloads even if a caller passes them.
      redact: {
        paths: ['password', '*.password', '*.*.password', 'sasl.password', 'kafka.sasl.password', 'image', '*.image', 'value', '*.value', 'bytes', '*.bytes', 'original', '*.original'],
        censor: '[redacted]',
      },
    },
    dest ?? pino.destination(2),
  );
}

function kafkaLogCreator(log: Logger, onConnectionError: () => void) {
  return () => (entry: LogEntry) => {
    const { message, ...rest } = entry.log;
    const fields = { kafka: entry.namespace, broker: rest.broker, error: rest.error, retryCount: rest.retryCount, groupId: rest.groupId };
    // kafkajs has no event for a failed connection, only this log line (readiness uses it).
    // A consumer crash is logged once, at error level, by the guard (naming the cause); kafkajs's own lines about it are warnings.
    // Error responses of the protocol (e.g. "Response SyncGroup(key: 14, version: 3)" during a rebalance) are
    // handled by kafkajs or end in a crash the guard reports itself: warnings too.
    if (entry.level === kafkaLogLevel.ERROR && /^(Crash: |Restarting the consumer|Error when calling eachBatch|Response \w+\(key: )/.test(String(message))) {
      log.warn(fields, message);
      return;
    }
    if (entry.level === kafkaLogLevel.ERROR && entry.namespace === 'Connection' && /^(Connection error|Connection timeout|Failed to connect)/.test(String(message))) onConnectionError();
    if (entry.level === kafkaLogLevel.ERROR) log.error(fields, message);
    else if (entry.level === kafkaLogLevel.WARN) log.warn(fields, message);
    else log.debug(fields, message);
  };
}

export class Guard {
  readonly metrics = new GuardMetrics();
  readonly log: Logger;
  readonly kafka: Kafka;
  readonly runtimes: TopicRuntime[];
  readonly runner: Runner;
  /** Worker threads for image decode/encode (config `workers`); null: the main thread. */
  readonly imagePool: ImagePool | null;
  private readonly registries = new Map<string, ModelRegistry>();
  private ops: OpsServer | null = null;
  private webhook: AlertWebhook | null = null;
  warmed = false;

  constructor(readonly config: GuardConfig, private readonly opts: GuardOptions = {}) {
    this.log = opts.logger ?? createLogger();
    const baseDir = opts.baseDir ?? process.cwd();
    const secrets = resolveSecrets(config, { baseDir });
    const kcfg: KafkaJsConfig = {
      clientId: config.kafka.clientId,
      brokers: config.kafka.brokers,
      logLevel: kafkaLogLevel.WARN,
      logCreator: kafkaLogCreator(this.log, () => this.runner?.brokerError()),
      connectionTimeout: 5000,
      retry: { retries: 8, initialRetryTime: 300, maxRetryTime: 5000 },
    };
    if (secrets.ssl) kcfg.ssl = secrets.ssl;
    if (secrets.sasl) kcfg.sasl = secrets.sasl as KafkaJsConfig['sasl'];
    this.kafka = new Kafka(kcfg);
    this.runtimes = config.topics.map((t) => buildTopicRuntime(t, (dir) => this.registry(dir), baseDir));
    const threads = resolveWorkers(config.workers);
    this.imagePool = threads > 0
      ? new ImagePool({
          threads,
          onEvent: (e) => {
            if (e.event === 'recreate') return this.log.warn({ generation: e.generation }, e.message);
            if (e.event === 'crash') this.metrics.imageWorkerFailures.inc();
            this.log.error({ generation: e.generation, error: e.message }, `image worker ${e.event}`);
          },
        })
      : null;
    for (const rt of this.runtimes) rt.pool = this.imagePool;
    this.metrics.imageWorkers.set(threads);
    if (config.alerts.webhook) this.webhook = new AlertWebhook(config.alerts.webhook, this.log, this.metrics);
    let compression;
    try {
      compression = useCompression(config.producer.compression);
    } catch (e) {
      throw new ConfigError([(e as Error).message]);
    }
    const noCodec = registerAvailableCodecs(); // inputs compressed with any codec that loads can be read
    if (noCodec.length) this.log.debug({ codecs: noCodec }, 'compression codecs not installed (inputs compressed with them cannot be read)');
    this.runner = new Runner({
      kafka: this.kafka,
      runtimes: this.runtimes,
      groupId: config.kafka.groupId,
      transactions: config.transactions,
      transactionalId: process.env.VQGUARD_TRANSACTIONAL_ID ?? `${config.kafka.groupId}-${hostname()}-${process.pid}`,
      maxInFlight: config.maxInFlight,
      partitionsConsumedConcurrently: 1,
      consumer: config.consumer,
      autoOffsetReset: config.kafka.autoOffsetReset,
      compression,
      checkTopics: config.kafka.checkTopics,
      inject: opts.inject,
    });
    attachMetrics(this.runner, this.metrics);
    attachLogging(this.runner, this.log);
    this.runner.on('batch.end', (e) => opts.events?.onChunk?.(e.topic, e.partition, e.result));
    this.runner.on('alerts', (a) => {
      this.webhook?.enqueue(a);
      opts.events?.onAlerts?.(a);
    });
    this.runner.on('limits', (e) => this.checkSizeLimits(e.limits));
    this.runner.on('fatal', (e) => {
      if (opts.onFatal) opts.onFatal(e.error);
      else {
        this.log.flush?.();
        process.exit(EXIT_CONSUMER_DEAD);
      }
    });
    this.metrics.backendInfo.set(backendInfoLabels(), 1);
    for (const rt of this.runtimes) {
      for (const [model, version] of Object.entries(rt.modelVersions)) {
        this.metrics.modelInfo.set({ topic: rt.settings.input ?? rt.settings.inputPattern ?? '', pipeline: rt.settings.pipelines.join('+'), model, version }, 1);
      }
    }
  }

  private registry(dir: string): ModelRegistry {
    let r = this.registries.get(dir);
    if (!r) {
      r = new ModelRegistry(dir);
      this.registries.set(dir, r);
    }
    return r;
  }

  /** Runs each topic's detector once on a zero batch so the first real batch is not slow. */
  async warmUp(): Promise<void> {
    // The image workers start (a missing worker file or loader fails here, not on the first record).
    await this.imagePool?.check();
    for (const r of this.registries.values()) await r.prepare(); // external classifiers (TF.js, SavedModel, ONNX) load here
    for (const rt of this.runtimes) {
      const { width: w, height: h } = rt.settings.image;
      const x = tf.zeros([Math.min(8, rt.settings.maxBatchSize), h, w, rt.channels]) as Parameters<typeof rt.detector.raw>[0];
      await rt.detector.rawAsync(x);
      x.dispose();
    }
    this.warmed = true;
  }

  /**
   * image.maxBytes against the topics' max.message.bytes: an input larger than its topic takes
   * never arrives; a dead letter of an input near maxBytes would not fit the dead-letter topic
   * (it is then sent truncated, with the original's length and sha256); with forward-original an
   * output of that size would not fit the output topic (it is dead-lettered as output_too_large).
   */
  checkSizeLimits(limits: Record<string, number>): string[] {
    const warnings: string[] = [];
    const cap = this.config.consumer.producerMaxMessageBytes;
    for (const rt of this.runtimes) {
      const s = rt.settings;
      const max = s.image.maxBytes;
      const where = `topic ${s.input ?? s.inputPattern}`;
      const inLimit = s.input ? limits[s.input] : undefined;
      if (inLimit !== undefined && max > inLimit) warnings.push(`${where}: image.maxBytes (${max}) is above the input topic's max.message.bytes (${inLimit}); larger records cannot be produced to it anyway`);
      const dl = Math.min(limits[s.deadLetter] ?? Infinity, cap);
      if (max + 1024 > dl) warnings.push(`${where}: image.maxBytes (${max}) does not fit the dead-letter topic ${s.deadLetter} (max ${dl} bytes per message with the producer's limit): dead letters of records that large carry a truncated original (with its length and sha256)`);
      const outLimit = Math.min(limits[s.output] ?? Infinity, cap);
      if (s.action === 'forward-original' && max + 1024 > outLimit) warnings.push(`${where}: with forward-original, outputs of images near image.maxBytes (${max}) do not fit the output topic ${s.output} (max ${outLimit}); they are dead-lettered as output_too_large`);
    }
    for (const w of warnings) this.log.warn(w);
    return warnings;
  }

  /** Alive unless the consumer is dead (crashed and not recreated yet). */
  liveness() {
    const checks = { consumerAlive: !this.runner.dead };
    return { alive: checks.consumerAlive, checks };
  }

  readiness() {
    const checks: Record<string, boolean> = { brokerConnected: this.runner.brokerReachable(), modelsWarm: this.warmed, partitionsAssigned: this.runner.assigned };
    // Schema Registry topics: false while the registry cannot be reached (records wait; see src/records/registry.ts).
    if (this.runtimes.some((rt) => rt.registry)) checks.schemaRegistry = this.runtimes.every((rt) => rt.registry?.available !== false);
    return { ready: Object.values(checks).every(Boolean), checks };
  }

  async start(): Promise<void> {
    this.log.info({ config: redactConfig(this.config), backend: backendInfo.packageName, tf: tfVersion(), imageWorkers: this.imagePool?.threads ?? 0 }, 'starting vqguard');
    await this.warmUp();
    const port = this.opts.httpPort ?? this.config.http.port;
    this.ops = await startOpsServer(
      {
        readiness: () => this.readiness(),
        liveness: () => this.liveness(),
        metricsText: async () => {
          this.metrics.ready.set(this.readiness().ready ? 1 : 0);
          return this.metrics.text();
        },
        metricsContentType: this.metrics.registry.contentType,
      },
      port,
      this.config.http.host,
    );
    this.log.info({ port: this.ops.port }, 'ops server listening (/healthz, /readyz, /metrics)');
    await this.runner.start();
  }

  get httpPort(): number | null {
    return this.ops?.port ?? null;
  }

  /** Graceful stop: finish and commit in-flight batches, disconnect, close the ops server. */
  async stop(): Promise<void> {
    await this.runner.stop();
    await this.webhook?.drain(2000);
    await this.ops?.close();
    await this.imagePool?.close();
    for (const r of this.registries.values()) r.dispose();
    this.log.info('vqguard stopped');
  }
}
