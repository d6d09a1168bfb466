// The stage registry (src/purify/stages/): the shipped squeezers against plain references, a
// fixture stage added from outside the folder, and bits1 + median2 validated in a config and
// run by the guard against a real broker.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Tensor4D } from '@tensorflow/tfjs-node';
import { tf } from '../src/backend/tf.ts';
import { ModelRegistry } from '../src/models/registry.ts';
import { parsePipeline, pipelineBundles, registerStage, stageSyntax } from '../src/purify/stages/index.ts';
import { bitDepth, medianFilter } from '../src/purify/stages/squeeze.ts';
import { parseConfig } from '../src/config/schema.ts';
import { checkModelBundles } from '../src/config/load.ts';
import { Guard, createLogger } from '../src/consumer/guard.ts';
import { invertStage } from './fixtures/invertStage.ts';
import { getTestBroker, createTopics, type TestBroker } from './helpers/broker.ts';
import { coverage, decodeResults, collect, answered, guardTopics, LogSink, produce, rawConfig, REPO, samples, within, MODELS } from './helpers/guard.ts';

/** Median of the k x k window at rows y-a..y+b (a = floor((k-1)/2)), edges replicated. */
function medianRef(img: number[][], k: number): number[][] {
  const h = img.length, w = img[0]!.length, a = Math.floor((k - 1) / 2);
  const at = (y: number, x: number) => img[Math.min(h - 1, Math.max(0, y))]![Math.min(w - 1, Math.max(0, x))]!;
  return img.map((row, y) =>
    row.map((_, x) => {
      const v: number[] = [];
      for (let dy = 0; dy < k; dy++) for (let dx = 0; dx < k; dx++) v.push(at(y - a + dy, x - a + dx));
      v.sort((p, q) => p - q);
      return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
    }),
  );
}

test('squeezers match plain references: bits<n>, median<k> (k = 2, 3, 4)', () => {
  const h = 7, w = 9;
  const img = Array.from({ length: h }, (_, y) => Array.from({ length: w }, (_, x) => ((y * 31 + x * 17) % 23) / 23)); // no exact halves: tf.round rounds half to even;
  const x = tf.tensor4d(img.flat(), [1, h, w, 1]);
  for (const k of [2, 3, 4]) {
    const got = medianFilter(tf, x as Tensor4D, k);
    const want = medianRef(img, k).flat();
    Array.from(got.dataSync()).forEach((v, i) => assert.ok(Math.abs(v - want[i]!) < 1e-6, `median${k} pixel ${i}: ${v} vs ${want[i]}`));
    got.dispose();
  }
  for (const n of [1, 3]) {
    const got = bitDepth(tf, x as Tensor4D, n);
    const L = 2 ** n - 1;
    Array.from(got.dataSync()).forEach((v, i) => assert.ok(Math.abs(v - Math.round(img.flat()[i]! * L) / L) < 1e-6));
    got.dispose();
  }
  x.dispose();
});

test('a stage added from outside: registered, validated, bundle-checked, built, then gone', () => {
  const unregister = registerStage(invertStage);
  const reg = new ModelRegistry(MODELS);
  try {
    assert.match(stageSyntax(), /invert<p>/);
    assert.deepEqual(parsePipeline('invert50>full').stages.map((s) => s.options), [{ above: 50 }, { k: 1 }]);
    assert.throws(() => parsePipeline('invert100'), /pipeline stage "invert100": above .*less than or equal to 99/);
    const raw = rawConfig(guardTopics('fixture'), { brokers: ['127.0.0.1:9'], pipeline: 'invert>split2' });
    const config = parseConfig(raw);
    assert.deepEqual(pipelineBundles('invert>split2'), ['purifier-split2']);
    assert.deepEqual(checkModelBundles(config, REPO).problems, []);
    const p = reg.pipeline('invert50');
    const x = tf.tensor4d([0.2, 0.6, 0.9, 0.5], [1, 2, 2, 1]);
    const y = p.apply(x);
    assert.deepEqual(Array.from(y.dataSync()).map((v) => Math.round(v * 10) / 10), [0.2, 0.4, 0.1, 0.5]);
    tf.dispose([x, y]);
  } finally {
    reg.dispose();
    unregister();
  }
  assert.throws(() => parsePipeline('invert'), /unknown pipeline stage "invert"/);
});

describe('bits1 + median2 in the guard (real broker)', { timeout: 240_000 }, () => {
  let broker: TestBroker;
  before(async () => {
    broker = await getTestBroker();
  });
  after(async () => {
    await broker?.stop();
  });

  test('a topic with pipelines [bits1, median2] validates, starts and answers every record', { timeout: 180_000 }, async () => {
    const N = 60;
    const recs = await samples(N, { adversarialRatio: 0.5, eps: 0.3 });
    const t = guardTopics('squeeze');
    await createTopics(broker.brokers, [t.input, t.output, t.deadLetter, t.alerts], 1);
    await produce(broker.brokers, t.input, recs.map((r) => ({ key: r.id, value: r.value, partition: 0 })));
    const sink = new LogSink();
    const guard = new Guard(parseConfig(rawConfig(t, { brokers: broker.brokers, pipeline: ['bits1', 'median2'] })), { baseDir: REPO, httpPort: 0, logger: createLogger(sink) });
    await within(guard.start(), 60_000, 'guard.start()');
    let got;
    try {
      got = await collect(broker.brokers, [t.output, t.deadLetter, t.alerts], (g) => answered(g, t) >= N, { timeoutMs: 120_000, lingerMs: 500 });
    } finally {
      await within(guard.stop(), 30_000, 'guard.stop()');
    }
    const r = decodeResults(got, t);
    assert.equal(r.deadLetters.length, 0, JSON.stringify(r.deadLetters.map((d) => d.reason)));
    assert.equal(coverage(r).size, N, `every record answered:\n${sink.text().split('\n').slice(-20).join('\n')}`);
    for (const o of r.outputs) assert.equal(o.pipeline, 'bits1+median2');
    // The calibrated squeezing detector flags a good share of the eps 0.3 FGSM half, few clean ones.
    const adv = new Set(recs.filter((x) => x.adversarial).map((x) => x.id));
    const flaggedAdv = r.alerts.filter((a) => adv.has(a.id)).length;
    assert.ok(flaggedAdv >= N / 4, `flagged ${flaggedAdv} of ${adv.size} attacked`);
  });
});
