import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDataset } from '../src/data/load.ts';
import { limitTrain, take } from '../src/data/dataset.ts';
import { Classifier, defaultClassifierConfig } from '../src/detect/classifier.ts';
import { entryIsCurrent, readSweep, runSweep } from '../src/eval/sweep.ts';

test('codebook sweep is resumable: a finished K is skipped, a changed classifier re-evaluates without retraining', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vqguard-sweep-'));
  const data = limitTrain(loadDataset('mnist'), 128);
  const set = take(data.test, 16);
  const clf = new Classifier(defaultClassifierConfig({ height: 28, width: 28, channels: 1, classes: 10 }), 3);
  try {
    const run = (sha: string) => {
      const lines: string[] = [];
      const entries = runSweep(data, set, clf, {
        split: 1, ks: [8, 16], epochs: 1, seed: 1, eps: [0, 0.1], workDir: join(dir, 'work'), resultsFile: join(dir, 'sweep.json'),
        command: 'test', classifierSha: sha, log: (l) => lines.push(l),
      });
      return { entries, log: lines.join('\n') };
    };
    const first = run('aaa');
    assert.equal((first.log.match(/training 1 epochs/g) ?? []).length, 2);
    assert.deepEqual(first.entries.map((e) => e.k), [8, 16]);
    assert.ok(first.entries.every((e) => e.classifier === 'aaa' && e.samples === 16 && Object.keys(e.accuracy).length === 2));
    const again = run('aaa');
    assert.equal((again.log.match(/done earlier, skipped/g) ?? []).length, 2);
    assert.doesNotMatch(again.log, /training|re-evaluating/);
    const other = run('bbb');
    assert.equal((other.log.match(/re-evaluating/g) ?? []).length, 2);
    assert.equal((other.log.match(/reusing trained bundle/g) ?? []).length, 2);
    assert.doesNotMatch(other.log, /training 1 epochs/);
    assert.deepEqual(readSweep(join(dir, 'sweep.json')).map((e) => [e.k, e.classifier]).sort(), [[16, 'bbb'], [8, 'bbb']]);
    const e = other.entries[0]!;
    assert.ok(entryIsCurrent(e, 'bbb', [0.1, 0], 16));
    assert.ok(!entryIsCurrent(e, 'bbb', [0, 0.1, 0.2], 16));
    assert.ok(!entryIsCurrent(e, 'bbb', [0, 0.1], 17));
  } finally {
    clf.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
