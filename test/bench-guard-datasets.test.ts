// `vqguard bench guard-datasets`: the set syntax, and one real run on the shipped MNIST set
// through the guard's per-batch code (every clean record answered by an output, none dead-lettered).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { benchGuardDatasets, parseGuardDatasetSet } from '../src/bench/guardDatasets.ts';

test('set specs: name=<model set>@<dataset>[@<classifier declaration>]; anything else is refused', () => {
  assert.deepEqual(parseGuardDatasetSet('mnist=models/mnist@mnist'), { name: 'mnist', models: 'models/mnist', dataset: 'mnist' });
  assert.deepEqual(parseGuardDatasetSet('f-tfjs=/tmp/f@folder:datasets/f@test/fixtures/external/fashion/tfjs-layers.yaml'), {
    name: 'f-tfjs', models: '/tmp/f', dataset: 'folder:datasets/f', classifier: 'test/fixtures/external/fashion/tfjs-layers.yaml',
  });
  for (const bad of ['models/mnist@mnist', 'mnist=models/mnist', 'a b=m@d']) assert.throws(() => parseGuardDatasetSet(bad), /expected name=<model set>@<dataset spec>/);
});

test('the shipped MNIST set: 64 clean records, all guarded, at the model size, twice (median)', { timeout: 300_000 }, async () => {
  const [row, ...rest] = await benchGuardDatasets([parseGuardDatasetSet('mnist=models/mnist@mnist')], {
    records: 64, batch: 32, concurrency: 2, minMs: 50, minReps: 1, pipeline: 'split2>full', repeat: 2,
  });
  assert.equal(row!.runs.length, 2);
  const g = row!.runs.map((r) => r.streamImagesPerSec);
  assert.ok(row!.streamImagesPerSec >= Math.min(...g) && row!.streamImagesPerSec <= Math.max(...g), 'the row gives the median of the runs');
  assert.equal(rest.length, 0);
  assert.deepEqual([row!.set, row!.size, row!.pipeline, row!.records, row!.outputs, row!.deadLetters], ['mnist', '28x28x1', 'split2>full', 64, 64, 0]);
  assert.match(row!.classifier, /^vqguard-bundle:/);
  assert.ok(row!.streamImagesPerSec > 0 && row!.modelOnlyImagesPerSec > 0);
  await assert.rejects(
    benchGuardDatasets([parseGuardDatasetSet('x=models/mnist@folder:test/fixtures/colour-folder')], { records: 8, batch: 8, concurrency: 1, minMs: 10, minReps: 1, pipeline: 'split2>full' }),
    /dataset folder:test\/fixtures\/colour-folder is 32x32x3, the model set takes 28x28x1/,
  );
});
