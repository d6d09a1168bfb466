/**
 * Guard images/s per dataset and classifier (`vqguard bench guard-datasets`): for each model set
 * (the shipped MNIST one, or one written by `vqguard fit`), clean test images of its dataset are
 * encoded as Avro ImageRecords (PNG at the model size and colour) and run through the guard's own
 * per-batch code (processChunk, the in-memory stream of `bench pipeline`) with the model set's
 * classifier, purifiers and calibration, under the default image policy at the model's size.
 *
 * A set is `name=<model set>@<dataset spec>[@<classifier declaration>]`. The optional declaration
 * swaps the guarded classifier (a temporary copy of the model set points its modelset.json at it):
 * the same fitted purifiers and calibration, another classifier format (e.g. the TF.js, SavedModel
 * and ONNX exports of one Keras model, which agree to 1e-6, so the calibration holds for all).
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadDatasetAsync } from '../data/load.ts';
import type { DatasetSplits } from '../data/dataset.ts';
import { ModelRegistry } from '../models/registry.ts';
import { buildSamples } from '../sample/produceSample.ts';
import { benchPipeline, pipelineRuntime, type PipelineBenchRow } from './pipeline.ts';

export interface GuardDatasetSet {
  name: string;
  models: string;
  dataset: string;
  /** Declaration file of a classifier to guard instead of the model set's own. */
  classifier?: string;
}

export interface GuardDatasetRow extends PipelineBenchRow {
  set: string;
  dataset: string;
  models: string;
  /** The guarded classifier: its format and path (or the vqguard bundle). */
  classifier: string;
  /** Model input, WxHxC. */
  size: string;
  /** Guard and model-only images/s of every repetition (the row's figures are their medians). */
  runs: { streamImagesPerSec: number; modelOnlyImagesPerSec: number }[];
}

const median = (xs: number[]) => {
  const v = [...xs].sort((a, b) => a - b);
  return v.length % 2 ? v[(v.length - 1) / 2]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
};

/** `name=<model set>@<dataset spec>[@<classifier declaration>]`. */
export function parseGuardDatasetSet(spec: string): GuardDatasetSet {
  const m = /^([A-Za-z0-9._-]+)=([^@]+)@([^@]+)(?:@([^@]+))?$/.exec(spec);
  if (!m) throw new Error(`--set '${spec}': expected name=<model set>@<dataset spec>[@<classifier declaration>], e.g. mnist=models/mnist@mnist`);
  return { name: m[1]!, models: m[2]!, dataset: m[3]!, ...(m[4] ? { classifier: m[4] } : {}) };
}

/** A temporary copy of a model set whose modelset.json names another classifier declaration. */
function withClassifier(models: string, decl: string): string {
  const manifest = join(models, 'modelset.json');
  const set = JSON.parse(readFileSync(manifest, 'utf8')) as Record<string, unknown>;
  const dir = join(mkdtempSync(join(tmpdir(), 'vqguard-bench-set-')), 'models');
  cpSync(models, dir, { recursive: true });
  writeFileSync(join(dir, 'modelset.json'), JSON.stringify({ ...set, classifier: resolve(decl) }, null, 2) + '\n');
  return dir;
}

export async function benchGuardDatasets(
  sets: GuardDatasetSet[],
  o: { records: number; batch: number; concurrency: number; minMs: number; minReps: number; pipeline: string; repeat?: number; log?: (s: string) => void },
): Promise<GuardDatasetRow[]> {
  const datasets = new Map<string, DatasetSplits>();
  const rows: GuardDatasetRow[] = [];
  for (const s of sets) {
    const dir = s.classifier ? withClassifier(s.models, s.classifier) : s.models;
    const reg = new ModelRegistry(dir);
    try {
      await reg.prepare();
      const shape = reg.inputShape();
      let data = datasets.get(s.dataset);
      if (!data) datasets.set(s.dataset, (data = await loadDatasetAsync(s.dataset, { seed: 1234 })));
      if (data.test.height !== shape.height || data.test.width !== shape.width || data.test.channels !== shape.channels) {
        throw new Error(`set ${s.name}: dataset ${s.dataset} is ${data.test.width}x${data.test.height}x${data.test.channels}, the model set takes ${shape.width}x${shape.height}x${shape.channels}`);
      }
      o.log?.(`${s.name}: encoding ${o.records} clean test images of ${s.dataset} (${shape.width}x${shape.height}x${shape.channels})`);
      const records = (await buildSamples(data.test, reg.attackModel().logits, { count: o.records, adversarialRatio: 0, attack: 'fgsm', eps: 0, seed: 3, idPrefix: s.name })).map((r) => r.value);
      const image = { colour: shape.channels === 3 ? 'rgb' : 'grey', width: shape.width, height: shape.height };
      const runtime = pipelineRuntime(dir, o.pipeline, o.batch, { registry: reg, image });
      const reps: PipelineBenchRow[] = [];
      for (let i = 0; i < Math.max(1, o.repeat ?? 1); i++) {
        const row = (await benchPipeline(records, { models: dir, pipeline: o.pipeline, batch: o.batch, concurrency: o.concurrency, minMs: o.minMs, minReps: o.minReps, runtime, log: (l) => o.log?.(`${s.name}: ${l}`) }))[0]!;
        if (row.deadLetters) throw new Error(`set ${s.name}: ${row.deadLetters} of ${row.records} clean records were dead-lettered`);
        reps.push(row);
      }
      const runs = reps.map((r) => ({ streamImagesPerSec: r.streamImagesPerSec, modelOnlyImagesPerSec: r.modelOnlyImagesPerSec }));
      const stream = median(runs.map((r) => r.streamImagesPerSec));
      const modelOnly = median(runs.map((r) => r.modelOnlyImagesPerSec));
      rows.push({
        set: s.name, dataset: s.dataset, models: s.models, classifier: reg.scoring().source, size: `${shape.width}x${shape.height}x${shape.channels}`,
        ...reps[reps.length - 1]!, streamImagesPerSec: stream, modelOnlyImagesPerSec: modelOnly, share: stream / modelOnly, runs,
      });
    } finally {
      reg.dispose();
      if (s.classifier) rmSync(join(dir, '..'), { recursive: true, force: true });
    }
  }
  return rows;
}
