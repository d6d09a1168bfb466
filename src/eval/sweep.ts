/**
 * Codebook-size sweep (the paper's Tables 2 and 3): for each K, train a purifier (whole
 * image or tiles) and measure accuracy under FGSM. Resumable: results are appended to a
 * JSON file after each K, and a K already there is skipped when it was measured with the same
 * classifier (weights sha256), epsilons and sample count; otherwise it is re-evaluated. A
 * trained bundle in the work folder is reused rather than retrained.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DatasetSplits, ImageSet } from '../data/dataset.ts';
import type { Classifier } from '../detect/classifier.ts';
import { loadBundle, saveBundle } from '../models/bundle.ts';
import type { VqVae } from '../purify/vqvae.ts';
import { composePipeline } from '../purify/pipeline.ts';
import { vqStage } from '../purify/stages/vqvae.ts';
import { trainPurifier } from '../train/trainPurifier.ts';
import { evaluateRobustness } from './robustness.ts';
import { backendInfo, tf } from '../backend/tf.ts';

export interface SweepEntry {
  k: number;
  split: number;
  trainSeconds: number;
  testMse: number;
  perplexity: number;
  codesUsed: number;
  accuracy: Record<string, number>;
  /** sha256 prefix of the classifier the accuracies were measured with. */
  classifier?: string;
  samples?: number;
}

export interface SweepOptions {
  split: number;
  ks: number[];
  epochs: number;
  seed: number;
  eps: number[];
  workDir: string;
  resultsFile: string;
  command: string;
  /** sha256 (prefix) of the classifier's weights: results measured with another one are redone. */
  classifierSha: string;
  log: (line: string) => void;
}

/** Whether a stored entry was measured under the same protocol (classifier, epsilons, samples). */
export function entryIsCurrent(e: SweepEntry, classifierSha: string, eps: number[], samples: number): boolean {
  const have = Object.keys(e.accuracy).map(Number).sort((a, b) => a - b);
  const want = [...eps].sort((a, b) => a - b);
  return e.classifier === classifierSha && e.samples === samples && have.length === want.length && have.every((x, i) => x === want[i]);
}

export function readSweep(file: string): SweepEntry[] {
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { entries: SweepEntry[] }).entries : [];
}

export function runSweep(data: DatasetSplits, testSet: ImageSet, clf: Classifier, opts: SweepOptions): SweepEntry[] {
  const entries = readSweep(opts.resultsFile).filter((e) => e.split === opts.split);
  mkdirSync(opts.workDir, { recursive: true });
  for (const [i, k] of opts.ks.entries()) {
    const earlier = entries.findIndex((e) => e.k === k);
    if (earlier >= 0 && entryIsCurrent(entries[earlier]!, opts.classifierSha, opts.eps, testSet.n)) {
      opts.log(`[${i + 1}/${opts.ks.length}] split${opts.split} K=${k}: done earlier, skipped`);
      continue;
    }
    if (earlier >= 0) {
      opts.log(`[${i + 1}/${opts.ks.length}] split${opts.split} K=${k}: measured with another classifier or protocol, re-evaluating`);
      entries.splice(earlier, 1);
    }
    const dir = join(opts.workDir, `split${opts.split}-K${k}`);
    let model: VqVae;
    let trainSeconds: number;
    if (existsSync(join(dir, 'model.json'))) {
      const b = loadBundle<VqVae>(dir);
      model = b.model;
      trainSeconds = b.manifest.training.trainSeconds;
      opts.log(`[${i + 1}/${opts.ks.length}] split${opts.split} K=${k}: reusing trained bundle ${dir}`);
    } else {
      opts.log(`[${i + 1}/${opts.ks.length}] split${opts.split} K=${k}: training ${opts.epochs} epochs`);
      const r = trainPurifier(data, { seed: opts.seed, epochs: opts.epochs, batchSize: 64, learningRate: 1e-3, split: opts.split, codebookSize: k });
      model = r.model;
      trainSeconds = r.seconds;
      saveBundle(dir, model, {
        name: `sweep-split${opts.split}-K${k}`,
        dataset: { name: data.name, trainSize: data.train.n, validationSize: data.validation.n, testSize: data.test.n, seed: 0 },
        training: { command: opts.command, seed: opts.seed, epochs: opts.epochs, batchSize: 64, learningRate: 1e-3, adversarial: null, trainSeconds, backend: backendInfo.packageName },
        metrics: { ...r.metrics },
      });
    }
    const pipe = composePipeline(opts.split === 1 ? 'full' : `split${opts.split}`, [vqStage(tf, opts.split, model)]);
    const rows = evaluateRobustness(clf, [pipe], testSet, { attack: { name: 'fgsm' }, eps: opts.eps });
    const manifest = loadBundle(dir).manifest;
    const entry: SweepEntry = {
      k, split: opts.split, trainSeconds,
      testMse: manifest.metrics.testMse ?? NaN,
      perplexity: manifest.metrics.perplexity ?? NaN,
      codesUsed: manifest.metrics.codesUsed ?? NaN,
      accuracy: Object.fromEntries(rows.filter((r) => r.pipeline === pipe.name).map((r) => [String(r.eps), r.accuracy])),
      classifier: opts.classifierSha,
      samples: testSet.n,
    };
    entries.push(entry);
    model.dispose();
    const others = readSweep(opts.resultsFile).filter((e) => e.split !== opts.split);
    writeFileSync(opts.resultsFile, JSON.stringify({ command: opts.command, samples: testSet.n, entries: [...others, ...entries] }, null, 1) + '\n');
    opts.log(`   K=${k}: ${Object.entries(entry.accuracy).map(([e, a]) => `eps ${e}: ${a.toFixed(3)}`).join(', ')}`);
  }
  return entries.sort((a, b) => a.k - b.k);
}
