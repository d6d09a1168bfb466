// `vqguard fit` on a tiny budget (the 50-image colour fixture, 32x32 RGB) with an external ONNX
// classifier (no gradients: a surrogate is trained and every attack is a transfer attack, and the
// report says so); the model set it writes runs in the guard on a real broker, where images of
// another size or colour are dead-lettered with a reason, and `replay` reads the topic back through
// it; fit and train refuse to overwrite.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { parse as parseYaml } from 'yaml';
import { fit, type FitOptions, type FitResult } from '../src/fit/fit.ts';
import { loadDatasetAsync } from '../src/data/load.ts';
import { ModelRegistry } from '../src/models/registry.ts';
import { buildSamples } from '../src/sample/produceSample.ts';
import { encodeImage } from '../src/image/decode.ts';
import { encodeImageRecord } from '../src/records/avro.ts';
import { parseConfig } from '../src/config/schema.ts';
import { Guard, createLogger } from '../src/consumer/guard.ts';
import { runReplay } from '../src/replay/replay.ts';
import { createTopics, getTestBroker, type TestBroker } from './helpers/broker.ts';
import { guardTopics, LogSink, produce, REPO, waitFor, within } from './helpers/guard.ts';

const FIXTURE = join(REPO, 'test/fixtures/colour-folder');
const ONNX = join(REPO, 'test/fixtures/external/colour/onnx.yaml');
const TFJS = join(REPO, 'test/fixtures/external/colour/tfjs-layers.yaml');

/** The fixture's train/val/test images as one ImageFolder tree (50 images), split 40/20/... by the loader. */
function imageFolder(root: string): string {
  const dir = join(root, 'images');
  for (const split of ['train', 'val', 'test']) {
    for (const cls of readdirSync(join(FIXTURE, split))) {
      mkdirSync(join(dir, cls), { recursive: true });
      for (const f of readdirSync(join(FIXTURE, split, cls))) cpSync(join(FIXTURE, split, cls, f), join(dir, cls, `${split}-${f}`));
    }
  }
  return `folder:${dir}?val=0.4&test=0.2`;
}

function options(dataset: string, classifier: string, out: string, over: Partial<FitOptions> = {}): FitOptions {
  return {
    dataset, classifier, pipeline: 'split2>full', out, force: false, budgetMinutes: 0.05, seed: 1, dataSeed: 1234, batchSize: 16,
    calibrationSamples: 100, testSamples: 20, eps: [0.05, 0.1], pgdSteps: 2, fpr: 0.01, command: 'test/fit.test.ts', log: () => {}, ...over,
  };
}

describe('vqguard fit', { timeout: 600_000 }, () => {
  let root: string;
  let dataset: string;
  let out: string;
  let result: FitResult;
  let broker: TestBroker;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'vqguard-fit-'));
    dataset = imageFolder(root);
    out = join(root, 'models-onnx');
    result = await fit(options(dataset, ONNX, out));
  });
  after(async () => {
    await broker?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  test('an ONNX classifier (no gradients): a surrogate is trained and the attacks are called transfer attacks', () => {
    assert.match(result.threat, /^transfer attack from a surrogate/);
    const ms = JSON.parse(readFileSync(join(out, 'modelset.json'), 'utf8'));
    assert.equal(ms.surrogate, 'surrogate');
    assert.equal(ms.classifier, 'classifier.yaml');
    assert.ok(existsSync(join(out, 'surrogate', 'model.json')));
    for (const b of ['purifier-split1', 'purifier-split2']) assert.ok(existsSync(join(out, b, 'model.json')), b);
    const report = readFileSync(join(out, 'report.md'), 'utf8');
    assert.match(report, /transfer attack from a surrogate/);
    assert.doesNotMatch(report, /white-box/);
    assert.ok(existsSync(join(out, 'accuracy.png')));
    assert.equal(result.rows.length, 4, 'fgsm and pgd at two epsilons');
    for (const r of result.rows) for (const v of [r.undefended, r.purified, r.tpr]) assert.ok(v >= 0 && v <= 1);
    const guard = parseYaml(readFileSync(join(out, 'guard.yaml'), 'utf8'));
    assert.equal(guard.topics[0].image.width, 32);
    assert.equal(guard.topics[0].image.colour, 'rgb');
    assert.equal(guard.topics[0].image.resize, 'reject');
  });

  test('vqguard eval on the fitted set: the ONNX classifier judges, the surrogate attacks (said), clean accuracy equals fit\'s', () => {
    const r = spawnSync(process.execPath, ['bin/vqguard.mjs', 'eval', '--models', out, '--dataset', dataset, '--samples', '20', '--eps', '0,0.1', '--attack', 'fgsm', '--pipelines', 'split2>full', '--json'], { cwd: REPO, encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { threat: string; classifier: string; rows: { pipeline: string; eps: number; accuracy: number }[] };
    assert.match(res.threat, /^transfer attack from a surrogate/);
    assert.match(res.classifier, /^onnx:/);
    const clean = res.rows.find((x) => x.pipeline === 'undefended' && x.eps === 0)!;
    const cleanP = res.rows.find((x) => x.pipeline === 'split2>full' && x.eps === 0)!;
    // Same 20 test images as fit's evaluation (same data seed and split): the same clean accuracies.
    assert.equal(clean.accuracy, result.cleanAccuracy);
    assert.equal(cleanP.accuracy, result.cleanAccuracyPurified);
  });

  test('a TF.js Layers classifier has gradients: white-box, no surrogate', async () => {
    const r = await fit(options(dataset, TFJS, join(root, 'models-tfjs')));
    assert.ok(r.threat.startsWith('white-box'), r.threat);
    assert.equal(JSON.parse(readFileSync(join(root, 'models-tfjs', 'modelset.json'), 'utf8')).surrogate, null);
    assert.ok(!existsSync(join(root, 'models-tfjs', 'surrogate')));
  });

  test('fit refuses to overwrite a model set without --force, and a folder that is not one even with it', async () => {
    const before = readFileSync(join(out, 'purifier-split2', 'weights.bin'));
    await assert.rejects(fit(options(dataset, ONNX, out)), /already holds a model set: pass --force/);
    assert.deepEqual(readFileSync(join(out, 'purifier-split2', 'weights.bin')), before);
    const other = join(root, 'not-models');
    mkdirSync(other);
    cpSync(FIXTURE, join(other, 'x'), { recursive: true });
    await assert.rejects(fit(options(dataset, ONNX, other, { force: true })), /not a vqguard model set/);
    assert.ok(existsSync(join(other, 'x', 'README.txt')));
  });

  test('train refuses to overwrite a bundle without --force', () => {
    const bundle = join(out, 'surrogate');
    const before = readFileSync(join(bundle, 'weights.bin'));
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'train', 'classifier', '--out', bundle, '--epochs', '1'], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /already holds a model bundle: pass --force/);
    assert.deepEqual(readFileSync(join(bundle, 'weights.bin')), before);
  });

  test('the guard runs the fitted set on a real broker; other sizes and colours are dead-lettered with a reason', async () => {
    broker = await getTestBroker();
    const t = guardTopics('fit');
    await createTopics(broker.brokers, [t.input, t.output, t.deadLetter, t.alerts], 1);
    const data = await loadDatasetAsync(dataset, { seed: 1234 });
    const reg = new ModelRegistry(out);
    await reg.prepare();
    const good = await buildSamples(data.test, reg.attackModel().logits, { count: 6, adversarialRatio: 0.5, attack: 'fgsm', eps: 0.1, seed: 3, idPrefix: 'fit' });
    reg.dispose();
    const bad = async (id: string, w: number, h: number, c: 1 | 3) => ({
      key: id,
      value: encodeImageRecord({ id, contentType: 'image/png', image: await encodeImage(new Float32Array(w * h * c).fill(0.5), w, h, c, 'png'), width: w, height: h, label: 0, attributes: {}, producedAt: Date.now() }),
    });
    const msgs = [...good.map((r) => ({ key: r.id, value: r.value })), await bad('wrong-size', 28, 28, 3), await bad('wrong-colour', 32, 32, 1)];
    await produce(broker.brokers, t.input, msgs.map((m) => ({ ...m, partition: 0 })));
    const guardYaml = parseYaml(readFileSync(join(out, 'guard.yaml'), 'utf8'));
    const topic = { ...guardYaml.topics[0], input: t.input, output: t.output, deadLetter: t.deadLetter, alerts: t.alerts, maxBatchSize: 16, maxBatchWaitMs: 20 };
    const config = parseConfig({ ...guardYaml, kafka: { brokers: broker.brokers, clientId: 'fit-test', groupId: t.groupId }, http: { port: 0, host: '127.0.0.1' }, models: out, alerts: { topic: t.alerts }, topics: [topic] });
    const outputs: string[] = [];
    const dead = new Map<string, string>();
    const sizes = new Set<string>();
    const guard = new Guard(config, {
      baseDir: REPO, httpPort: 0, logger: createLogger(new LogSink()),
      events: {
        onChunk: (_t, _p, r) => {
          outputs.push(...r.outputs.map((o) => o.id));
          for (const d of r.deadLetters) dead.set(d.id ?? '?', d.reason);
          for (const m of r.out.get(t.output) ?? []) sizes.add(`${m.headers?.['vqguard-original-size']} ${m.headers?.['vqguard-model-size']}`);
        },
      },
    });
    try {
      await within(guard.start(), 90_000, 'guard.start()');
      await waitFor(() => outputs.length + dead.size >= msgs.length, 90_000, () => `all answered (${outputs.length} out, ${dead.size} dead)`);
    } finally {
      await within(guard.stop(), 30_000, 'guard.stop()');
    }
    assert.deepEqual(outputs.sort(), good.map((r) => r.id).sort());
    assert.equal(dead.get('wrong-size'), 'size_mismatch');
    assert.equal(dead.get('wrong-colour'), 'colour_mismatch');
    // Every output says the original and the model size (equal here: the policy rejects the rest).
    assert.deepEqual([...sizes], ['32x32x3 32x32x3']);

    // Replay of the same topic through the fitted set (external classifier, 32x32 RGB): the same answers.
    const rep = await runReplay({ brokers: broker.brokers, topic: t.input, pipelines: ['split2>full'], models: out, idleTimeoutMs: 30_000 });
    const [p] = rep.pipelines;
    assert.equal(rep.records, msgs.length);
    assert.deepEqual([p!.counts.outputs, p!.counts.deadLetters, p!.counts.deadLettersByReason], [good.length, 2, { size_mismatch: 1, colour_mismatch: 1 }]);
  });
});
