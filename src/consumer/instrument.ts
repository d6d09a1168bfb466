/**
 * Metrics and logs of the runner, as subscribers to its instrumentation events
 * (src/consumer/runner.ts, RunnerEventMap). The runner itself neither counts nor logs.
 */
import type { Logger } from 'pino';
import type { GuardMetrics } from '../ops/metrics.ts';
import type { Runner } from './runner.ts';

export function attachMetrics(runner: Runner, metrics: GuardMetrics): void {
  runner.on('consumed', (e) => metrics.consumed.inc({ topic: e.topic }, e.count));
  let peak = 0;
  runner.on('in-flight', (e) => {
    metrics.inFlight.set(e.inFlight);
    if (e.inFlight > peak) metrics.inFlightMax.set((peak = e.inFlight));
  });
  runner.on('pause', () => metrics.paused.set(1));
  runner.on('resume', () => metrics.paused.set(0));
  runner.on('lag', (e) => metrics.consumerLag.set({ topic: e.topic, partition: String(e.partition) }, e.lag));
  runner.on('retry', (e) => metrics.retries.inc({ topic: e.topic }));
  runner.on('crash', (e) => {
    metrics.consumerCrashes.inc({ restart: String(e.restart) });
    if (!e.restart) metrics.consumerUp.set(0);
  });
  runner.on('restart', () => metrics.consumerRestarts.inc());
  runner.on('fenced', (e) => metrics.fencedCommits.inc({ topic: e.topic }));
  runner.on('recovered', () => metrics.consumerUp.set(1));
  runner.on('limits', (e) => {
    for (const [topic, v] of Object.entries(e.limits)) metrics.topicMaxMessageBytes.set({ topic }, v);
  });
  runner.on('batch.end', (e) => {
    const { topic, result: r, pipeline } = e;
    metrics.batchSize.observe({ topic }, e.size);
    metrics.batchLatency.observe({ topic, pipeline }, e.seconds);
    const now = Date.now();
    for (const ts of r.timestamps) if (Number.isFinite(ts)) metrics.endToEnd.observe({ topic }, Math.max(0, (now - ts) / 1000));
    for (const o of r.outputs) metrics.produced.inc({ topic, pipeline, outcome: o.flagged ? 'flagged' : 'clean' });
    if (r.alerts.length) metrics.flagged.inc({ topic, pipeline }, r.alerts.length);
    for (const d of r.deadLetters) {
      metrics.deadLettered.inc({ topic, reason: d.reason });
      if (d.dropped) metrics.deadLettersDropped.inc({ topic, reason: d.reason });
    }
  });
}

export function attachLogging(runner: Runner, log: Logger): void {
  runner.on('rebalance', (e) => log.info({ assignment: e.assignment }, 'partitions assigned'));
  runner.on('pause', (e) => log.info({ inFlight: e.inFlight }, 'backpressure: paused fetching'));
  runner.on('resume', (e) => log.info({ inFlight: e.inFlight }, 'backpressure: resumed fetching'));
  runner.on('limits', (e) => log.info({ maxMessageBytes: e.limits, unknown: e.missing.length ? e.missing : undefined }, 'topic size limits'));
  runner.on('retry', (e) => log.warn({ topic: e.topic, partition: e.partition, offsets: e.offsets.length > 8 ? `${e.offsets[0]}..${e.offsets.at(-1)}` : e.offsets, attempt: e.attempt, error: e.error }, 'processing failed; trying again'));
  runner.on('poison', (e) => log.error({ topic: e.topic, partition: e.partition, offset: e.offset, attempts: e.attempts, error: e.error }, 'poison record: dead-lettered after repeated failures'));
  runner.on('too-large', (e) => log.warn({ topic: e.topic, partition: e.partition, error: e.error, maxBytes: e.limits }, 'broker refused a message as too large; refitted the micro-batch to the topic limits'));
  runner.on('fenced', (e) => log.warn({ topic: e.topic, partition: e.partition, ageMs: e.ageMs, boundMs: e.boundMs }, 'paused past the membership bound before a commit: transaction aborted; checking membership'));
  runner.on('crash', (e) => {
    // One error line naming the cause when the guard has to recreate the consumer; kafkajs's own restarts are warnings.
    const cause = e.error?.message ?? String(e.error);
    if (e.restart) log.warn({ cause, restart: true }, 'consumer crashed; kafkajs restarts it');
    else log.error({ cause, errorName: e.error?.name, restart: false }, `consumer crashed: ${cause}; recreating consumer and producer`);
  });
  runner.on('restart', (e) => log.info({ attempt: e.attempt, downMs: e.downMs }, 'consumer and producer recreated; rejoining the group'));
  runner.on('recovered', (e) => log.info({ downMs: e.downMs }, 'consumer working again'));
  runner.on('fatal', (e) => log.fatal({ cause: e.error?.message, downMs: e.downMs }, 'consumer could not be recreated in time; exiting'));
  runner.on('batch.end', (e) => {
    const r = e.result;
    for (const a of r.alerts) {
      log.warn({ recordId: a.id, topic: e.topic, partition: a.partition, offset: a.offset, score: a.score, labelBefore: a.labelBefore, labelAfter: a.labelAfter }, 'flagged: likely adversarial input');
    }
    for (const d of r.deadLetters) {
      if (d.dropped) log.error({ recordId: d.id, topic: e.topic, partition: e.partition, offset: d.offset, reason: d.reason }, 'dead letter dropped: not even a truncated dead letter fits the dead-letter topic (raise its max.message.bytes)');
      else log.info({ recordId: d.id, topic: e.topic, offset: d.offset, reason: d.reason, truncated: d.truncated }, 'dead-lettered');
    }
  });
}
