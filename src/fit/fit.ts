/**
 * `vqguard fit`: from a folder of the user's images and the user's classifier to a model set the
 * guard runs. Stages (each one a checkpoint in <out>/.fit-state.json, so a run stopped by
 * Ctrl-C resumes where it stopped):
 *   1. classifier   copy the classifier (declaration + model files) into the set; write modelset.json
 *   2. surrogate    only when the classifier has no gradients (SavedModel, ONNX): a vqguard
 *                   classifier trained on the same images; every attack below uses it and the
 *                   report says "transfer attack from a surrogate"
 *   3. purifier-*   the VQ-VAE purifiers the pipeline needs, trained on the clean training split
 *   4. calibration  thresholds at the target FPR on clean validation images (+ attacked copies)
 *   5. evaluation   on the test split calibration never saw: clean accuracy through the pipeline,
 *                   FGSM/PGD accuracy and detection TPR at the calibrated 1% FPR
 *   6. guard.yaml and report.md (+ PNG plots)
 * `--budget` (minutes) sets a deadline for each training stage (shares of the budget); the
 * best epoch before the deadline is kept.
 */
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { stringify as yamlStringify } from 'yaml';
import { tf } from '../backend/tf.ts';
import type { Tensor1D, Tensor4D } from '@tensorflow/tfjs-node';
import { loadDatasetAsync } from '../data/load.ts';
import { limitTrain, take, type DatasetSplits, type ImageSet } from '../data/dataset.ts';
import { resolveClassifierSpec } from '../models/formats/spec.ts';
import type { ClassifierDeclaration } from '../models/formats/declaration.ts';
import { loadClassifier } from '../models/formats/load.ts';
import { classPermutation } from '../models/guardClassifier.ts';
import { saveBundle } from '../models/bundle.ts';
import { MODELSET_FORMAT, ModelRegistry, type ModelSetManifest } from '../models/registry.ts';
import { parsePipeline, pipelineBundles } from '../purify/stages/index.ts';
import { trainClassifier } from '../train/trainClassifier.ts';
import { trainPurifier } from '../train/trainPurifier.ts';
import { batchTensor } from '../train/evaluate.ts';
import { backendInfo } from '../backend/tf.ts';
import { Detector } from '../detect/detector.ts';
import { calibrate, defaultCalibrationPath, saveCalibration } from '../detect/calibration.ts';
import { calibrationScores } from '../eval/calibrationRun.ts';
import { runAttack, type AttackName } from '../attacks/attacks.ts';
import { rateAbove } from '../eval/roc.ts';
import { lineChart, writeChart } from '../report/plot.ts';
import { epochBar } from '../train/progress.ts';

export const FIT_STATE = '.fit-state.json';

export interface FitOptions {
  dataset: string;
  classifier: string;
  pipeline: string;
  out: string;
  force: boolean;
  /** Minutes for the whole fit; training stages get shares of it. */
  budgetMinutes: number;
  maxTrain?: number;
  seed: number;
  dataSeed: number;
  batchSize: number;
  calibrationSamples: number;
  testSamples: number;
  eps: number[];
  pgdSteps: number;
  fpr: number;
  /** VQ-VAE codebook size (default 900 whole image, 300 tiles). */
  codebookSize?: number;
  /** VQ-VAE stride-2 stages (default from the tile size, see defaultDownsamples). */
  downsamples?: number;
  command: string;
  log: (line: string) => void;
}

interface FitState {
  dataset: string;
  classifier: string;
  pipeline: string;
  done: string[];
  seconds: Record<string, number>;
  notes: Record<string, unknown>;
}

export interface EvalRow {
  attack: string;
  eps: number;
  undefended: number;
  purified: number;
  tpr: number;
  samples: number;
}

export interface FitResult {
  out: string;
  threat: string;
  cleanAccuracy: number;
  cleanAccuracyPurified: number;
  testFpr: number;
  rows: EvalRow[];
  seconds: number;
}

/** Refuses to write into an existing model set or bundle unless `force`; never touches other folders. */
export function prepareOutDir(out: string, force: boolean, same: (s: FitState) => boolean): FitState | null {
  if (!existsSync(out)) return null;
  if (!statSync(out).isDirectory()) throw new Error(`--out ${out} exists and is not a folder`);
  const entries = readdirSync(out);
  if (entries.length === 0) return null;
  const statePath = join(out, FIT_STATE);
  const isSet = existsSync(join(out, 'modelset.json')) || existsSync(statePath) || existsSync(join(out, 'model.json'));
  const looksLikeModels = isSet || entries.some((e) => existsSync(join(out, e, 'model.json')));
  if (!looksLikeModels) throw new Error(`--out ${out} is a non-empty folder that is not a vqguard model set: choose another folder`);
  if (force) {
    rmSync(out, { recursive: true, force: true });
    return null;
  }
  if (existsSync(statePath)) {
    const st = JSON.parse(readFileSync(statePath, 'utf8')) as FitState;
    if (!st.done.includes('report') && same(st)) return st; // an unfinished fit of the same inputs: resume
  }
  throw new Error(`--out ${out} already holds a model set: pass --force to replace it (or choose another --out)`);
}

/** Copies the classifier into <out> and returns the modelset.json `classifier` entry (null: a vqguard bundle in <out>/classifier). */
function copyClassifier(d: ClassifierDeclaration, out: string): string | null {
  if (d.format === 'vqguard-bundle') {
    cpSync(d.path, join(out, 'classifier'), { recursive: true });
    return null;
  }
  const modelDir = join(out, 'classifier-model');
  let relPath: string;
  if (statSync(d.path).isDirectory()) {
    cpSync(d.path, modelDir, { recursive: true });
    relPath = 'classifier-model';
  } else if (d.format.startsWith('tfjs')) {
    cpSync(dirname(d.path), modelDir, { recursive: true }); // model.json and its weight shards
    relPath = `classifier-model/${basename(d.path)}`;
  } else {
    mkdirSync(modelDir, { recursive: true });
    cpSync(d.path, join(modelDir, basename(d.path)));
    relPath = `classifier-model/${basename(d.path)}`;
  }
  const decl: Record<string, unknown> = { ...d, path: relPath };
  if (d.reference) {
    cpSync(d.reference.file, join(out, 'classifier-reference.json'));
    decl.reference = { ...d.reference, file: 'classifier-reference.json' };
  }
  writeFileSync(join(out, 'classifier.yaml'), `# the classifier this model set guards (copied by vqguard fit)\n${yamlStringify(decl)}`);
  return 'classifier.yaml';
}

export async function fit(o: FitOptions): Promise<FitResult> {
  const t0 = Date.now();
  const deadlineBase = t0 + o.budgetMinutes * 60_000;
  const parsed = parsePipeline(o.pipeline);
  if (parsed.variant === 'adv') throw new Error(`fit trains clean purifiers; pipeline '${o.pipeline}' needs adversarially trained ones (train them with \`vqguard train purifier --adversarial-training\`)`);
  const bundles = pipelineBundles(parsed);
  const unsupported = bundles.filter((b) => !/^purifier-split\d+$/.test(b));
  if (unsupported.length) throw new Error(`fit trains VQ-VAE purifiers only; pipeline '${o.pipeline}' also needs ${unsupported.join(', ')}`);

  const out = resolve(o.out);
  const resumed = prepareOutDir(out, o.force, (s) => s.dataset === o.dataset && s.classifier === o.classifier && s.pipeline === o.pipeline);
  mkdirSync(out, { recursive: true });
  const state: FitState = resumed ?? { dataset: o.dataset, classifier: o.classifier, pipeline: o.pipeline, done: [], seconds: {}, notes: {} };
  const save = () => writeFileSync(join(out, FIT_STATE), JSON.stringify(state, null, 1) + '\n');
  if (resumed) o.log(`resuming the fit in ${out}: done ${state.done.join(', ') || 'nothing'}`);
  save();
  const stage = async (name: string, run: () => Promise<void> | void) => {
    if (state.done.includes(name)) return;
    const s0 = Date.now();
    o.log(`fit: ${name} ...`);
    await run();
    state.done.push(name);
    state.seconds[name] = (Date.now() - s0) / 1000;
    save();
  };

  // Data and classifier.
  const data0 = await loadDatasetAsync(o.dataset, { seed: o.dataSeed });
  const data: DatasetSplits = limitTrain(data0, o.maxTrain);
  const { height, width, channels } = data.train;
  if (data.validation.n < 20) throw new Error(`dataset ${o.dataset}: calibration needs at least 20 validation images, it has ${data.validation.n} (add images to val/, or raise ?val=)`);
  if (data.test.n < 10) throw new Error(`dataset ${o.dataset}: the evaluation needs at least 10 test images, it has ${data.test.n}`);
  const decl = await resolveClassifierSpec(o.classifier);
  if (decl.input.height !== height || decl.input.width !== width || decl.input.channels !== channels) {
    throw new Error(
      `the classifier reads ${decl.input.height}x${decl.input.width}x${decl.input.channels} images but dataset ${o.dataset} has ${height}x${width}x${channels}: ` +
        `resize the dataset to the model (folder:<dir>?size=${decl.input.height}x${decl.input.width}&colour=${decl.input.channels === 3 ? 'rgb' : 'grey'})`,
    );
  }
  const classNames = data.classNames ?? decl.classes;
  classPermutation(decl.classes, classNames); // a clear error now when the class names differ
  const probe = await loadClassifier(decl);
  const needSurrogate = !(probe.hasGradients && probe.logits);
  probe.dispose();

  await stage('classifier', () => {
    const entry = copyClassifier(decl, out);
    const ms: ModelSetManifest = {
      format: MODELSET_FORMAT, classifier: entry, classes: [...classNames], surrogate: needSurrogate ? 'surrogate' : null,
      dataset: data.name, height, width, channels: channels as 1 | 3,
    };
    writeFileSync(join(out, 'modelset.json'), JSON.stringify(ms, null, 2) + '\n');
  });

  const trainShare = needSurrogate ? 0.75 : 0.7;
  const nTrainStages = bundles.length + (needSurrogate ? 1 : 0);
  const perStageMs = (o.budgetMinutes * 60_000 * trainShare) / Math.max(1, nTrainStages);
  const deadlineFor = () => Math.min(deadlineBase, Date.now() + perStageMs);
  const meta = { name: '', dataset: { name: data.name, trainSize: data.train.n, validationSize: data.validation.n, testSize: data.test.n, seed: o.dataSeed } };
  const interruptedError = () => new Error(`interrupted: ${out} keeps the finished stages; run the same command again to resume`);

  if (needSurrogate) {
    await stage('surrogate', () => {
      const r = trainClassifier(data, {
        seed: o.seed, epochs: 50, batchSize: o.batchSize, learningRate: 0.001, maxShift: 2, dropout: 0.3, lrSchedule: 'constant',
        deadline: deadlineFor(), log: o.log,
      });
      if (r.interrupted) throw interruptedError();
      saveBundle(join(out, 'surrogate'), r.model, {
        ...meta, name: 'surrogate',
        training: { command: o.command, seed: o.seed, epochs: r.metrics.epochsRun, batchSize: o.batchSize, learningRate: 0.001, adversarial: null, trainSeconds: r.seconds, backend: backendInfo.packageName },
        metrics: { ...r.metrics },
      });
      state.notes.surrogate = { ...r.metrics, seconds: r.seconds };
      r.model.dispose();
    });
  }
  for (const b of bundles) {
    const k = Number(/^purifier-split(\d+)$/.exec(b)![1]);
    await stage(b, () => {
      const r = trainPurifier(data, {
        seed: o.seed, split: k, epochs: 50, batchSize: o.batchSize, learningRate: 0.001, deadline: deadlineFor(), log: o.log,
        codebookSize: o.codebookSize, downsamples: o.downsamples,
      });
      if (r.interrupted) throw interruptedError();
      saveBundle(join(out, b), r.model, {
        ...meta, name: b,
        training: { command: o.command, seed: o.seed, epochs: r.history.length, batchSize: o.batchSize, learningRate: 0.001, adversarial: null, trainSeconds: r.seconds, backend: backendInfo.packageName },
        metrics: { ...r.metrics },
      });
      state.notes[b] = { ...r.metrics, epochs: r.history.length, seconds: r.seconds };
      r.model.dispose();
    });
  }

  const reg = new ModelRegistry(out);
  await reg.prepare();
  const attackModel = reg.attackModel();
  const pipelines = [o.pipeline];
  const calPath = defaultCalibrationPath(out, pipelines);
  try {
    await stage('calibration', async () => {
      const det = new Detector(reg.scoring(), [reg.pipeline(o.pipeline)], { temperature: 10 });
      const set = take(data.validation, Math.min(o.calibrationSamples, data.validation.n));
      const { clean, attacked } = await calibrationScores(det, set, 100, attackModel.logits);
      const cal = calibrate(clean, attacked, det.scoreKeys(), [...new Set([o.fpr, 0.01, 0.05])], {
        pipelines, temperature: 10, tileGrid: det.tileGrid, dataset: `${data.name} validation (${set.n})`,
        modelVersions: reg.versions(o.pipeline), command: o.command,
      });
      saveCalibration(calPath, cal);
    });

    let result: FitResult | null = null;
    await stage('evaluation', async () => {
      const { loadCalibration } = await import('../detect/calibration.ts');
      const cal = loadCalibration(calPath);
      const det = new Detector(reg.scoring(), [reg.pipeline(o.pipeline)], { temperature: cal.temperature, tileGrid: cal.tileGrid }, cal);
      const set = take(data.test, Math.min(o.testSamples, data.test.n));
      const ev = await evaluate(det, set, attackModel.logits, o, cal.thresholdsByFpr['0.01']?.combined ?? cal.thresholds.combined!);
      state.notes.evaluation = ev;
    });
    const ev = state.notes.evaluation as Omit<FitResult, 'out' | 'threat' | 'seconds'>;
    await stage('guard.yaml', () => writeGuardYaml(out, o, { height, width, channels }));
    const seconds = Object.values(state.seconds).reduce((a, b) => a + b, 0); // all stages, over resumed sessions too
    result = { out, threat: attackModel.describe, ...ev, seconds };
    await stage('report', async () => writeReport(out, o, state, result!, data));
    return result;
  } finally {
    reg.dispose();
  }
}

async function evaluate(det: Detector, set: ImageSet, attackLogits: (x: Tensor4D) => ReturnType<NonNullable<Detector['classifier']['logits']>>, o: FitOptions, threshold: number) {
  const batch = 100;
  const attacks: { name: AttackName; eps: number }[] = [];
  for (const name of ['fgsm', 'pgd'] as const) for (const eps of o.eps) attacks.push({ name, eps });
  const steps = Math.ceil(set.n / batch) * (1 + attacks.length);
  const bar = epochBar('evaluation', steps, process.stderr.isTTY === true);
  let step = 0;
  const run = async (attack: { name: AttackName; eps: number } | null) => {
    let undefended = 0, purified = 0, flagged = 0;
    for (let s = 0; s < set.n; s += batch) {
      const e = Math.min(set.n, s + batch);
      const x = batchTensor(set, s, e);
      const y = tf.tensor1d(set.labels.subarray(s, e), 'int32') as Tensor1D;
      const xi = attack ? runAttack({ name: attack.name, steps: o.pgdSteps, seed: s }, attackLogits, x, y, attack.eps) : x;
      const raw = det.withCombined(await det.rawAsync(xi));
      raw.labelBefore.forEach((l, i) => (undefended += l === set.labels[s + i] ? 1 : 0));
      raw.labelAfter.forEach((l, i) => (purified += l === set.labels[s + i] ? 1 : 0));
      flagged += rateAbove(raw.scores.map((r) => r.combined!), threshold) * (e - s);
      if (xi !== x) xi.dispose();
      tf.dispose([x, y]);
      bar.update(++step, {});
    }
    return { undefended: undefended / set.n, purified: purified / set.n, flagged: flagged / set.n };
  };
  const clean = await run(null);
  const rows: EvalRow[] = [];
  for (const a of attacks) {
    const r = await run(a);
    rows.push({ attack: a.name === 'pgd' ? `pgd-${o.pgdSteps}` : 'fgsm', eps: a.eps, undefended: r.undefended, purified: r.purified, tpr: r.flagged, samples: set.n });
  }
  bar.stop();
  return { cleanAccuracy: clean.undefended, cleanAccuracyPurified: clean.purified, testFpr: clean.flagged, rows };
}

function writeGuardYaml(out: string, o: FitOptions, shape: { height: number; width: number; channels: number }): void {
  const rel = relative(process.cwd(), out) || '.';
  const text = `# written by: ${o.command}
# Run it with: vqguard topics create --config ${join(rel, 'guard.yaml')}   (once: the guard checks its topics exist)
#              vqguard run --config ${join(rel, 'guard.yaml')}   (brokers: edit below or set KAFKA_BROKERS)
kafka:
  clientId: vqguard
  groupId: vqguard-${basename(out)}
models: ${rel}
alerts:
  topic: vqguard.alerts
topics:
  - input: images.raw
    format: auto
    pipeline: ${o.pipeline}
    action: forward-cleaned          # forward-original | quarantine
    output: images.clean
    deadLetter: images.dlq
    alerts: vqguard.alerts
    image:
      colour: ${shape.channels === 3 ? 'rgb' : 'grey'}
      width: ${shape.width}
      height: ${shape.height}
      resize: reject                 # an image of another size is dead-lettered (size_mismatch); fill | contain | cover resize it
      colourMismatch: reject         # ${shape.channels === 3 ? 'a 1-channel grey image on this colour topic' : 'a colour image on this grey topic (an RGB-stored grey one counts as grey)'} is dead-lettered (colour_mismatch); convert converts it
`;
  writeFileSync(join(out, 'guard.yaml'), text);
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

async function writeReport(out: string, o: FitOptions, state: FitState, r: FitResult, data: DatasetSplits): Promise<void> {
  const rows = r.rows.map((x) => `| ${x.attack} | ${x.eps} | ${pct(x.undefended)} | ${pct(x.purified)} | ${pct(x.tpr)} |`).join('\n');
  const stages = Object.entries(state.seconds).map(([k, v]) => `| ${k} | ${v.toFixed(1)} |`).join('\n');
  const notes = Object.entries(state.notes)
    .filter(([k]) => k !== 'evaluation')
    .map(([k, v]) => `- ${k}: ${JSON.stringify(v)}`)
    .join('\n');
  const md = `# vqguard fit report

Command: \`${o.command}\`

- dataset: ${data.name} (${data.train.height}x${data.train.width}x${data.train.channels}; train ${data.train.n}, validation ${data.validation.n}, test ${data.test.n})
- classifier: \`${o.classifier}\`
- pipeline: \`${o.pipeline}\`
- attacks: **${r.threat}**${r.threat.startsWith('transfer') ? ' (the classifier has no gradients: adversarial images are made against the surrogate and sent to the classifier; an attacker with its own gradients is stronger)' : ''}
- budget: ${o.budgetMinutes} min; fit time ${r.seconds.toFixed(0)} s

## Test split (${r.rows[0]?.samples ?? 0} images, never used by calibration)

Clean accuracy: ${pct(r.cleanAccuracy)} undefended, ${pct(r.cleanAccuracyPurified)} through \`${o.pipeline}\`; clean images flagged at the calibrated 1% FPR threshold: ${pct(r.testFpr)}.

| attack | eps | accuracy undefended | accuracy after purification | detection TPR @ 1% FPR |
| --- | --- | --- | --- | --- |
${rows}

![accuracy](accuracy.png)

## Stages (seconds)

| stage | s |
| --- | --- |
${stages}

${notes}
`;
  writeFileSync(join(out, 'report.md'), md);
  for (const attack of [...new Set(r.rows.map((x) => x.attack))]) {
    const rs = r.rows.filter((x) => x.attack === attack);
    const pts = (f: (x: EvalRow) => number, clean: number) => [{ x: 0, y: clean }, ...rs.map((x) => ({ x: x.eps, y: f(x) }))];
    const chart = await lineChart({
      title: `${attack} (${r.threat.startsWith('transfer') ? 'transfer from a surrogate' : 'white-box on the classifier, purifier-oblivious'})`,
      xTitle: 'epsilon', yTitle: 'rate', yDomain: [0, 1],
      series: [
        { name: 'accuracy undefended', points: pts((x) => x.undefended, r.cleanAccuracy) },
        { name: 'accuracy purified', points: pts((x) => x.purified, r.cleanAccuracyPurified) },
        { name: 'flagged (TPR; FPR at 0)', points: pts((x) => x.tpr, r.testFpr) },
      ],
    });
    writeChart(join(out, attack === 'fgsm' ? 'accuracy' : `accuracy-${attack}`), chart);
  }
}
