/**
 * The guard process: config -> Kafka client, model runtimes (warmed), runner, ops server.
 * Readiness = broker connected, models loaded and warmed, partitions assigned.
 */
import { hostname } from 'node:os';
import { Kafka, logLevel as kafkaLogLevel, type KafkaConfig as KafkaJsConfig, type LogEntry } from 'kafkajs';
import pino, { type Logger } from 'pino';
import { tf, backendInfo, tfVersion } from '../backend/tf.ts';
import { ModelRegistry } from '../models/registry.ts';
import { buildTopicRuntime, type TopicRuntime } from './topicRuntime.ts';
import { Runner, type RunnerEvents } from './runner.ts';
import { GuardMetrics } from '../ops/metrics.ts';
import { startOpsServer, type OpsServer } from '../ops/http.ts';
import { resolveSecrets, redactConfig } from '../config/load.ts';
import type { GuardConfig } from '../config/schema.ts';
import { AlertWebhook } from '../ops/webhook.ts';

export interface GuardOptions {
  baseDir?: string;
  logger?: Logger;
  /** Override the HTTP port (0 = any free port). */
  httpPort?: number;
  events?: RunnerEvents;
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
    if (config.alerts.webhook) this.webhook = new AlertWebhook(config.alerts.webhook, this.log, this.metrics);
    const events: RunnerEvents = {
      ...opts.events,
      onAlerts: (a) => {
        this.webhook?.enqueue(a);
        opts.events?.onAlerts?.(a);
      },
    };
    this.runner = new Runner(
      this.kafka,
      this.runtimes,
      {
        groupId: config.kafka.groupId,
        transactions: config.transactions,
        transactionalId: process.env.VQGUARD_TRANSACTIONAL_ID ?? `${config.kafka.groupId}-${hostname()}-${process.pid}`,
        maxInFlight: config.maxInFlight,
        partitionsConsumedConcurrently: 1,
        sessionTimeoutMs: 10000,
        autoOffsetReset: config.kafka.autoOffsetReset,
      },
      this.log,
      this.metrics,
      events,
    );
    this.metrics.backendInfo.set({ package: backendInfo.packageName, native: String(backendInfo.native), gpu: String(backendInfo.gpu), tf_version: tfVersion() ?? 'unknown' }, 1);
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
    for (const r of this.registries.values()) await r.prepare(); // external classifiers (TF.js, SavedModel, ONNX) load here
    for (const rt of this.runtimes) {
      const { width: w, height: h } = rt.settings.image;
      const x = tf.zeros([Math.min(8, rt.settings.maxBatchSize), h, w, rt.channels]) as Parameters<typeof rt.detector.raw>[0];
      await rt.detector.rawAsync(x);
      x.dispose();
    }
    this.warmed = true;
  }

  readiness() {
    const checks = { brokerConnected: this.runner.brokerReachable(), modelsWarm: this.warmed, partitionsAssigned: this.runner.assigned };
    return { ready: Object.values(checks).every(Boolean), checks };
  }

  async start(): Promise<void> {
    this.log.info({ config: redactConfig(this.config), backend: backendInfo.packageName, tf: tfVersion() }, 'starting vqguard');
    await this.warmUp();
    const port = this.opts.httpPort ?? this.config.http.port;
    this.ops = await startOpsServer(
      {
        readiness: () => this.readiness(),
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
    for (const r of this.registries.values()) r.dispose();
    this.log.info('vqguard stopped');
  }
}
