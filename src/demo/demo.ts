/**
 * The main job (`make demo`): local broker, topics, 2,000 sample records (half attacked),
 * the guard until every record is processed, then a summary against ground truth.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Kafka, logLevel, Partitioners } from 'kafkajs';
import type { LocalBroker } from '../../tools/localBroker.ts';
import { brokersFromEnv } from '../config/schema.ts';
import { loadConfig, checkModelBundles } from '../config/load.ts';
import { Guard, createLogger } from '../consumer/guard.ts';
import { loadDataset } from '../data/load.ts';
import { ModelRegistry } from '../models/registry.ts';
import { buildSamples } from '../sample/produceSample.ts';
import { collectTopic } from '../kafka/collect.ts';
import { decodeGuardedImage, type GuardedImage } from '../records/avro.ts';
import { summarise, type StreamSummary } from './summary.ts';
import { formatTable } from '../report/table.ts';
import type { AttackName } from '../attacks/attacks.ts';

export interface DemoOptions {
  config: string;
  count: number;
  adversarialRatio: number;
  attack: AttackName;
  eps: number;
  partitions: number;
  outDir: string;
  timeoutMs: number;
}

export async function runDemo(o: DemoOptions): Promise<StreamSummary> {
  const say = (s: string) => process.stderr.write(`demo: ${s}\n`);
  let broker: LocalBroker | null = null;
  let brokers = brokersFromEnv();
  if (!brokers.length) {
    say('starting a local Kafka broker');
    broker = await (await import('../../tools/localBroker.ts')).startLocalBroker();
    brokers = broker.brokers;
  }
  try {
    const config = loadConfig(o.config);
    config.kafka.brokers = brokers;
    const check = checkModelBundles(config, process.cwd());
    if (!check.ok) throw new Error(check.problems.join('; '));
    const topic = config.topics[0]!;
    const input = topic.input!;
    const kafka = new Kafka({ clientId: 'vqguard-demo', brokers, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const names = [input, topic.output, topic.deadLetter, topic.alerts];
    const existing = await admin.listTopics();
    await admin.createTopics({
      topics: names.filter((t) => !existing.includes(t)).map((t) => ({ topic: t, numPartitions: t === input ? o.partitions : 1, replicationFactor: 1 })),
      waitForLeaders: true,
    });
    const before = await admin.fetchTopicOffsets(input);
    await admin.disconnect();

    say(`producing ${o.count} sample records (${Math.round(o.adversarialRatio * 100)}% attacked with ${o.attack} eps ${o.eps}) to ${input}`);
    const data = loadDataset('mnist');
    const reg = new ModelRegistry(topic.models);
    const samples = await buildSamples(data.test, reg.classifier(), { count: o.count, adversarialRatio: o.adversarialRatio, attack: o.attack, eps: o.eps, seed: 7, idPrefix: `demo-${Date.now()}` });
    reg.dispose();
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    for (let i = 0; i < samples.length; i += 500) {
      await producer.send({ topic: input, acks: -1, messages: samples.slice(i, i + 500).map((r) => ({ key: r.id, value: r.value })) });
    }
    await producer.disconnect();
    const already = before.reduce((s, p) => s + Number(p.offset), 0);

    say('running the guard until every record is processed');
    let done = 0;
    let first = 0, firstSize = 0, last = 0;
    let resolveDone!: () => void;
    const allDone = new Promise<void>((r) => (resolveDone = r));
    const guard = new Guard(config, {
      logger: createLogger(),
      httpPort: 0,
      events: {
        onChunk: (_t, _p, r) => {
          const n = r.outputs.length + r.deadLetters.length;
          const now = performance.now();
          if (!first) {
            first = now;
            firstSize = n;
          }
          last = now;
          done += n;
          if (done >= already + o.count) resolveDone();
        },
      },
    });
    await guard.start();
    const timeout = setTimeout(resolveDone, o.timeoutMs);
    await allDone;
    clearTimeout(timeout);
    await guard.stop();
    const seconds = (last - first) / 1000;

    const outs = await collectTopic(brokers, topic.output, already + o.count, 30000);
    const dlq = await collectTopic(brokers, topic.deadLetter, 0, 3000);
    const ids = new Set(samples.map((s) => s.id));
    const guarded: GuardedImage[] = [];
    for (const m of outs) {
      const d = decodeGuardedImage(m.value);
      if (d.ok && ids.has(d.record.id)) guarded.push(d.record);
    }
    const dead = dlq.filter((m) => m.key && ids.has(m.key)).length;
    const s = summarise(o.count, guarded, dead, seconds);
    // Throughput excludes the first micro-batch (its clock starts when it ends).
    s.imagesPerSecond = seconds > 0 ? (done - already - firstSize) / seconds : NaN;
    mkdirSync(o.outDir, { recursive: true });
    writeFileSync(`${o.outDir}/summary.json`, JSON.stringify({ ...s, attack: o.attack, eps: o.eps, pipeline: topic.pipelines.join('+'), action: topic.action }, null, 2) + '\n');
    process.stdout.write(
      formatTable(['metric', 'value'], [
        ['records produced', s.produced], ['records processed', s.processed], ['guarded outputs', s.outputs], ['dead-lettered', s.deadLettered],
        ['flagged', s.flagged], ['detection precision', s.precision], ['detection recall', s.recall], ['false-positive rate (clean)', s.falsePositiveRate],
        ['accuracy before purification', s.accuracyBefore], ['accuracy after purification', s.accuracyAfter],
        ['accuracy on attacked, before', s.accuracyBeforeOnAdversarial], ['accuracy on attacked, after', s.accuracyAfterOnAdversarial],
        ['throughput (images/s)', s.imagesPerSecond],
      ]) + `\nwritten to ${o.outDir}/summary.json\n`,
    );
    return s;
  } finally {
    if (broker) {
      say('stopping the local broker');
      await broker.stop();
    }
  }
}
