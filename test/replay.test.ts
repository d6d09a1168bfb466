// `vqguard replay` against a real broker (test/helpers/broker.ts): a range of a topic read without
// touching a live group's committed offsets, two pipelines side by side, the report files, and
// republishing to an output topic. Plus the range resolution on two partitions by offset and time.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { Kafka, logLevel, type Admin } from 'kafkajs';
import { createTopics, getTestBroker, uniqueTopic, type TestBroker } from './helpers/broker.ts';
import { loadDataset } from '../src/data/load.ts';
import { take } from '../src/data/dataset.ts';
import { ModelRegistry } from '../src/models/registry.ts';
import { Detector } from '../src/detect/detector.ts';
import { calibrate, defaultCalibrationPath, saveCalibration } from '../src/detect/calibration.ts';
import { calibrationScores } from '../src/eval/calibrationRun.ts';
import { buildSamples } from '../src/sample/produceSample.ts';
import { decodeGuardedImage } from '../src/records/avro.ts';
import { runReplay, type ReplayReport } from '../src/replay/replay.ts';
import { writeReplayReport } from '../src/replay/report.ts';
import { readRange, resolveRange, rangeSize } from '../src/replay/readRange.ts';
import { rangeFromArgs, parseTimeArg } from '../src/cli/replay.ts';

const MODELS = 'models/mnist';
const PIPELINES = ['split2>full', 'full'];
const N = 150;
const FROM = 20n, TO = 119n; // inclusive: 100 records

/** Same as `vqguard calibrate --pipeline <p>` (defaults), only when the file is missing. */
async function ensureCalibration(reg: ModelRegistry, pipeline: string): Promise<void> {
  const file = defaultCalibrationPath(MODELS, [pipeline]);
  if (existsSync(file)) return;
  const data = loadDataset('mnist', { seed: 1234 });
  const set = take(data.validation, Math.min(1000, data.validation.n));
  const det = new Detector(reg.classifier(), [reg.pipeline(pipeline)], { temperature: 10 });
  const { clean, attacked } = await calibrationScores(det, set, 100);
  const cal = calibrate(clean, attacked, det.scoreKeys(), [0.01, 0.05], {
    pipelines: [pipeline], temperature: 10, tileGrid: det.tileGrid, dataset: `${data.name} validation (${set.n})`,
    modelVersions: reg.versions(pipeline), command: `vqguard calibrate --pipeline '${pipeline}' (test/replay.test.ts)`,
  });
  saveCalibration(file, cal);
}

async function committed(admin: Admin, groupId: string, topic: string) {
  const res = await admin.fetchOffsets({ groupId, topics: [topic] });
  return res.flatMap((t) => t.partitions.map((p) => ({ partition: p.partition, offset: p.offset }))).sort((a, b) => a.partition - b.partition);
}

describe('replay (real broker)', () => {
  let broker: TestBroker;
  let kafka: Kafka;
  let admin: Admin;
  let reg: ModelRegistry;
  const tmp = mkdtempSync(join(tmpdir(), 'vqguard-replay-test-'));

  before(async () => {
    broker = await getTestBroker();
    kafka = new Kafka({ clientId: 'replay-test', brokers: broker.brokers, logLevel: logLevel.WARN });
    admin = kafka.admin();
    await admin.connect();
    reg = new ModelRegistry(MODELS);
    for (const p of PIPELINES) await ensureCalibration(reg, p);
  });
  after(async () => {
    await admin?.disconnect();
    reg?.dispose();
    await broker?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('two pipelines over offsets 20..119: counts, live group untouched, report, output topic', async () => {
    const topic = uniqueTopic('replay-in');
    const outTopic = uniqueTopic('replay-out');
    await createTopics(broker.brokers, [topic, outTopic], 1);

    const samples = await buildSamples(loadDataset('mnist').test, reg.classifier(), { count: N, adversarialRatio: 0.5, attack: 'fgsm', eps: 0.3, seed: 11, idPrefix: 'replay' });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: samples.map((r) => ({ key: r.id, value: r.value })) });
    await producer.disconnect();

    // A "live" guard group has committed part of the topic.
    const live = uniqueTopic('live-group');
    await admin.setOffsets({ groupId: live, topic, partitions: [{ partition: 0, offset: '57' }] });
    const liveBefore = await committed(admin, live, topic);
    assert.deepEqual(liveBefore, [{ partition: 0, offset: '57' }]);

    const progress: number[] = [];
    const report = await runReplay({
      brokers: broker.brokers, topic, range: { from: { offset: FROM }, to: { offset: TO } }, pipelines: PIPELINES, models: MODELS,
      outputTopic: outTopic, batchSize: 32, registries: () => reg, onProgress: (p) => progress.push(p.done), command: 'test',
    });
    const size = Number(TO - FROM + 1n);

    // Counts equal the range.
    assert.equal(report.records, size);
    assert.deepEqual(report.range.partitions.map((p) => [p.start, p.end]), [['20', '120']]);
    assert.equal(progress.at(-1), size);
    assert.deepEqual(report.pipelines.map((p) => p.pipeline), PIPELINES);
    const adv = samples.slice(Number(FROM), Number(TO) + 1).filter((s) => s.adversarial).length;
    for (const p of report.pipelines) {
      assert.equal(p.counts.records, size, `${p.pipeline} records`);
      assert.equal(p.counts.outputs + p.counts.deadLetters, size);
      assert.equal(p.counts.deadLetters, 0, `${p.pipeline} dead letters ${JSON.stringify(p.counts.deadLettersByReason)}`);
      assert.equal(p.counts.withGroundTruth, size);
      assert.equal(p.counts.labelled, size);
      const d = p.detection!;
      assert.equal(d.truePositives + d.falseNegatives, adv, 'positives = attacked records in the range');
      assert.equal(d.truePositives + d.falsePositives + d.falseNegatives + d.trueNegatives, size);
      assert.ok(d.recall >= 0.8, `${p.pipeline} recall ${d.recall} at eps 0.3`);
      assert.ok(d.precision >= 0.8, `${p.pipeline} precision ${d.precision}`);
      assert.ok(d.falsePositiveRate <= 0.2, `${p.pipeline} FPR ${d.falsePositiveRate}`);
      assert.ok(d.auc > 0.9, `${p.pipeline} AUC ${d.auc}`);
      assert.ok(p.accuracy!.afterOnAdversarial > p.accuracy!.beforeOnAdversarial, `${p.pipeline}: purification restores attacked accuracy`);
      assert.equal(p.scores.all.reduce((a, b) => a + b, 0), size, 'histogram holds every output');
      assert.equal(p.scores.adversarial!.reduce((a, b) => a + b, 0), adv);
      assert.ok(Math.abs(p.flagRate - p.counts.flagged / p.counts.outputs) < 1e-12);
      assert.ok(p.imagesPerSecond > 0);
    }

    // The live group's committed offsets are unchanged, and the throwaway read group is gone.
    assert.deepEqual(await committed(admin, live, topic), liveBefore);
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId);
    assert.ok(!groups.includes(report.readGroupId), `throwaway group ${report.readGroupId} deleted`);

    // The output topic holds exactly the range's records (first pipeline, once each).
    assert.deepEqual(report.output, { topic: outTopic, produced: size, pipeline: PIPELINES[0] });
    const marks = await admin.fetchTopicOffsets(outTopic);
    assert.equal(marks.reduce((s, m) => s + Number(m.high) - Number(m.low), 0), size, 'records in the output topic');
    const got: string[] = [];
    await readRange({
      kafka, topic: outTopic, ranges: await resolveRange(admin, outTopic),
      onBatch: async (_p, msgs) => {
        for (const m of msgs) {
          const g = decodeGuardedImage(m.value!);
          assert.ok(g.ok);
          assert.equal(g.record.pipeline, PIPELINES[0]);
          assert.equal(g.record.source.topic, topic);
          got.push(g.record.source.offset);
        }
      },
    });
    assert.deepEqual(got.map(Number).sort((a, b) => a - b), Array.from({ length: size }, (_, i) => Number(FROM) + i));

    // Report files exist and parse.
    const dir = join(tmp, 'report');
    const files = await writeReplayReport(dir, report);
    const json = JSON.parse(readFileSync(files.json, 'utf8')) as ReplayReport;
    assert.equal(json.records, size);
    assert.equal(json.pipelines.length, 2);
    assert.equal(json.pipelines[0]!.detection!.recall, report.pipelines[0]!.detection!.recall);
    const md = readFileSync(files.markdown, 'utf8');
    assert.match(md, /Command: `test`/);
    for (const p of PIPELINES) assert.ok(md.includes(`## ${p}`), `markdown section for ${p}`);
    assert.match(md, /\| pipeline \| records \|/);
    const meta = await sharp(readFileSync(files.png)).metadata();
    assert.equal(meta.format, 'png');
    assert.ok((meta.width ?? 0) > 400 && (meta.height ?? 0) > 200, `png ${meta.width}x${meta.height}`);
  });

  test('range by offset and by time on two partitions; each offset once, in order', async () => {
    const topic = uniqueTopic('replay-range');
    await createTopics(broker.brokers, [topic], 2);
    const t0 = Date.UTC(2024, 0, 1);
    const producer = kafka.producer();
    await producer.connect();
    // Partition 0: 30 records at t0 + i s; partition 1: 10 records at t0 + 100 s + i s.
    await producer.send({
      topic,
      messages: [
        ...Array.from({ length: 30 }, (_, i) => ({ partition: 0, value: `a${i}`, timestamp: String(t0 + i * 1000) })),
        ...Array.from({ length: 10 }, (_, i) => ({ partition: 1, value: `b${i}`, timestamp: String(t0 + 100_000 + i * 1000) })),
      ],
    });
    await producer.disconnect();

    const byOffset = await resolveRange(admin, topic, { from: { offset: 5n }, to: { offset: 24n } });
    assert.deepEqual(byOffset.map((r) => [r.partition, r.start, r.end]), [[0, '5', '25'], [1, '5', '10']]);
    assert.equal(rangeSize(byOffset), 25);
    const all = await resolveRange(admin, topic);
    assert.deepEqual(all.map((r) => [r.start, r.end]), [['0', '30'], ['0', '10']]);
    // Times: inclusive on both ends; partition 1 starts after to-time -> empty.
    const byTime = await resolveRange(admin, topic, rangeFromArgs({ fromTime: new Date(t0 + 10_000).toISOString(), toTime: String(t0 + 19_000) }));
    assert.deepEqual(byTime.map((r) => [r.partition, r.start, r.end]), [[0, '10', '20'], [1, '0', '0']]);
    const late = await resolveRange(admin, topic, { from: { time: t0 + 105_000 } });
    assert.deepEqual(late.map((r) => [r.start, r.end]), [['30', '30'], ['5', '10']]);

    const seen = new Map<number, string[]>();
    const res = await readRange({
      kafka, topic, ranges: byOffset, maxBatch: 4,
      onBatch: async (p, msgs) => {
        assert.ok(msgs.length <= 4);
        seen.set(p, [...(seen.get(p) ?? []), ...msgs.map((m) => `${m.offset}:${m.value}`)]);
      },
    });
    assert.equal(res.records, 25);
    assert.deepEqual(seen.get(0), Array.from({ length: 20 }, (_, i) => `${i + 5}:a${i + 5}`));
    assert.deepEqual(seen.get(1), Array.from({ length: 5 }, (_, i) => `${i + 5}:b${i + 5}`));

    const empty = await readRange({ kafka, topic, ranges: late.map((r) => ({ ...r, end: r.start })), onBatch: async () => assert.fail('nothing to read') });
    assert.equal(empty.records, 0);
  });

  test('range arguments', () => {
    assert.equal(parseTimeArg('1700000000000'), 1_700_000_000_000);
    assert.equal(parseTimeArg('2024-01-01T00:00:00Z'), Date.UTC(2024, 0, 1));
    assert.throws(() => parseTimeArg('yesterday'), /ISO-8601/);
    assert.deepEqual(rangeFromArgs({ fromOffset: '20', toOffset: '119' }), { from: { offset: 20n }, to: { offset: 119n } });
    assert.throws(() => rangeFromArgs({ fromOffset: '1', fromTime: '2' }), /at most one/);
    assert.throws(() => rangeFromArgs({ fromOffset: '9', toOffset: '3' }), /before/);
    assert.throws(() => rangeFromArgs({ toOffset: '-1' }), /non-negative/);
  });
});
