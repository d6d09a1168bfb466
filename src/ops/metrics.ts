/**
 * Prometheus metrics of the guard (prom-client), named after Prometheus conventions:
 * base units (seconds, bytes), `_total` for counters, one registry per guard.
 */
import client from 'prom-client';

export class GuardMetrics {
  readonly registry = new client.Registry();
  readonly consumed: client.Counter<'topic'>;
  readonly produced: client.Counter<'topic' | 'pipeline' | 'outcome'>;
  readonly flagged: client.Counter<'topic' | 'pipeline'>;
  readonly deadLettered: client.Counter<'topic' | 'reason'>;
  readonly deadLettersDropped: client.Counter<'topic' | 'reason'>;
  readonly alertsWebhook: client.Counter<'outcome'>;
  readonly batchSize: client.Histogram<'topic'>;
  readonly batchLatency: client.Histogram<'topic' | 'pipeline'>;
  readonly endToEnd: client.Histogram<'topic'>;
  readonly consumerLag: client.Gauge<'topic' | 'partition'>;
  readonly inFlight: client.Gauge;
  readonly inFlightMax: client.Gauge;
  readonly paused: client.Gauge;
  readonly backendInfo: client.Gauge<'package' | 'native' | 'gpu' | 'tf_version' | 'backend' | 'choice' | 'adapter' | 'not_taken'>;
  readonly modelInfo: client.Gauge<'topic' | 'pipeline' | 'model' | 'version'>;
  readonly ready: client.Gauge;
  readonly consumerCrashes: client.Counter<'restart'>;
  readonly consumerRestarts: client.Counter;
  readonly fencedCommits: client.Counter;
  readonly consumerUp: client.Gauge;
  readonly retries: client.Counter<'topic'>;
  readonly topicMaxMessageBytes: client.Gauge<'topic'>;
  readonly imageWorkers: client.Gauge;
  readonly imageWorkerFailures: client.Counter;

  constructor(collectDefaults = true) {
    const r = [this.registry];
    // Default process metrics under their standard names (process_cpu_seconds_total,
    // nodejs_heap_size_used_bytes, ...), as every Node.js dashboard expects them.
    if (collectDefaults) client.collectDefaultMetrics({ register: this.registry });
    this.consumed = new client.Counter({ name: 'vqguard_records_consumed_total', help: 'Records read from input topics', labelNames: ['topic'], registers: r });
    this.produced = new client.Counter({
      name: 'vqguard_records_produced_total',
      help: 'Guarded records acknowledged by the broker, by outcome (clean, flagged)',
      labelNames: ['topic', 'pipeline', 'outcome'], registers: r,
    });
    this.flagged = new client.Counter({ name: 'vqguard_records_flagged_total', help: 'Records flagged as likely adversarial', labelNames: ['topic', 'pipeline'], registers: r });
    this.deadLettered = new client.Counter({ name: 'vqguard_records_dead_lettered_total', help: 'Records sent to the dead-letter topic, by reason code', labelNames: ['topic', 'reason'], registers: r });
    this.deadLettersDropped = new client.Counter({
      name: 'vqguard_dead_letters_dropped_total',
      help: 'Dead letters not produced because not even a truncated one fits the dead-letter topic (each also logged at error level), by reason code',
      labelNames: ['topic', 'reason'],
      registers: r,
    });
    this.alertsWebhook = new client.Counter({ name: 'vqguard_alert_webhook_deliveries_total', help: 'Webhook alert deliveries by outcome (ok, retry, failed, dropped_rate_limit, dropped_queue_full)', labelNames: ['outcome'], registers: r });
    this.batchSize = new client.Histogram({ name: 'vqguard_batch_size_records', help: 'Records per micro-batch', labelNames: ['topic'], buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], registers: r });
    this.batchLatency = new client.Histogram({
      name: 'vqguard_batch_duration_seconds', help: 'Time from micro-batch start to all outputs acknowledged',
      labelNames: ['topic', 'pipeline'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: r,
    });
    this.endToEnd = new client.Histogram({
      name: 'vqguard_end_to_end_latency_seconds', help: 'Record timestamp to output acknowledged',
      labelNames: ['topic'], buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60], registers: r,
    });
    this.consumerLag = new client.Gauge({ name: 'vqguard_consumer_lag', help: 'High watermark minus committed offset, per partition', labelNames: ['topic', 'partition'], registers: r });
    this.inFlight = new client.Gauge({ name: 'vqguard_in_flight_records', help: 'Records fetched but not yet committed', registers: r });
    this.inFlightMax = new client.Gauge({ name: 'vqguard_in_flight_records_max', help: 'The most records in flight at once since start', registers: r });
    this.paused = new client.Gauge({ name: 'vqguard_consumer_paused', help: '1 while fetching is paused for backpressure', registers: r });
    this.backendInfo = new client.Gauge({ name: 'vqguard_backend_info', help: 'Compute backend in use (value 1)', labelNames: ['package', 'native', 'gpu', 'tf_version', 'backend', 'choice', 'adapter', 'not_taken'], registers: r });
    this.modelInfo = new client.Gauge({ name: 'vqguard_model_info', help: 'Model bundles in use (value 1)', labelNames: ['topic', 'pipeline', 'model', 'version'], registers: r });
    this.ready = new client.Gauge({ name: 'vqguard_ready', help: '1 when the guard is ready (broker connected, models warm, partitions assigned)', registers: r });

    this.consumerCrashes = new client.Counter({
      name: 'vqguard_consumer_crashes_total', help: 'Consumer crashes; restart="true" when kafkajs restarts it itself, "false" when the guard recreates it',
      labelNames: ['restart'], registers: r,
    });
    this.consumerRestarts = new client.Counter({ name: 'vqguard_consumer_restarts_total', help: 'Consumer and producer recreated by the guard after a crash', registers: r });
    this.fencedCommits = new client.Counter({
      name: 'vqguard_fenced_commits_total', help: 'Exactly-once: transactions aborted instead of committed because group membership was last confirmed too long ago (a pause)',
      labelNames: ['topic'], registers: r,
    });
    this.consumerUp = new client.Gauge({ name: 'vqguard_consumer_up', help: '0 while the consumer is dead (crashed, not yet recreated); /healthz fails meanwhile', registers: r });
    this.consumerUp.set(1);
    this.retries = new client.Counter({ name: 'vqguard_processing_retries_total', help: 'Micro-batches or records whose processing failed and was tried again', labelNames: ['topic'], registers: r });
    this.imageWorkers = new client.Gauge({ name: 'vqguard_image_workers', help: 'Worker threads decoding and encoding images (config workers; 0 = the main thread)', registers: r });
    this.imageWorkerFailures = new client.Counter({
      name: 'vqguard_image_worker_failures_total', help: 'Image worker tasks that failed (worker crashed, ended or past its time limit); the pool is recreated and the records retried',
      registers: r,
    });
    this.topicMaxMessageBytes = new client.Gauge({ name: 'vqguard_topic_max_message_bytes', help: "Topics' max.message.bytes as read from the broker", labelNames: ['topic'], registers: r });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
