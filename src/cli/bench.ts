/** `vqguard bench [backend] [--quick] [--json]`: benchmarks (tables on stdout, JSON under reports/bench/). */
import type { Command } from 'commander';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { loadavg } from 'node:os';
import { brokersFromEnv } from '../config/schema.ts';
import { benchBackend } from '../bench/backend.ts';
import { backendInfo, tfVersion } from '../backend/tf.ts';
import { formatTable } from '../report/table.ts';
import { machineDescription } from '../bench/machine.ts';
import { benchModel, ceiling } from '../bench/model.ts';
import { benchStream } from '../bench/stream.ts';
import { benchBaselines } from '../bench/baselines.ts';
import { ModelRegistry } from '../models/registry.ts';
import { loadDataset } from '../data/load.ts';
import { take } from '../data/dataset.ts';
import { buildSamples } from '../sample/produceSample.ts';
import { commandLine, jsonOption } from './options.ts';
import { benchPng } from '../bench/png.ts';
import { benchPipeline, colourJpegRecords, readRecordsFile, writeRecordsFile } from '../bench/pipeline.ts';
import { resolveWorkers } from '../consumer/imagePool.ts';
import { getBackendInfo } from '../backend/tf.ts';
import { benchGuardDatasets, parseGuardDatasetSet } from '../bench/guardDatasets.ts';

interface SuiteOpts {
  json?: boolean;
  out?: string;
  quick?: boolean;
  pipeline?: string[];
  batch?: string;
  records?: string;
  recordsFile?: string;
  saveRecords?: string;
  concurrency?: string;
  models?: string;
  set?: string[];
  repeat?: string;
  workers?: string;
  images?: string;
  rounds?: string;
}

/** Timing per measured point; VQGUARD_BENCH_MIN_MS shortens or lengthens it (the GPU check sets it). */
function suiteTiming(quick?: boolean) {
  const env = Number(process.env.VQGUARD_BENCH_MIN_MS);
  const t = quick ? { minMs: 150, minReps: 2 } : { minMs: 1000, minReps: 3 };
  return Number.isFinite(env) && env > 0 ? { ...t, minMs: env } : t;
}

const listOf = (s: string | undefined, d: number[]) => (s ? s.split(',').map((x) => Number(x.trim())).filter((x) => Number.isInteger(x) && x > 0) : d);

function backendSummary() {
  const i = getBackendInfo();
  return { choice: i.choice, kind: i.kind, package: i.packageName, adapter: i.adapter, notTaken: i.notTaken };
}

/** `bench model`: purify and detect images/s per pipeline and batch on the chosen backend (no dataset, no broker). */
async function modelSuite(o: SuiteOpts) {
  const say = (s: string) => process.stderr.write(`bench: ${s}\n`);
  const reg = new ModelRegistry(o.models ?? 'models/mnist');
  const pipelines = o.pipeline?.length ? o.pipeline : ['full', 'split2>full'];
  const batches = listOf(o.batch, o.quick ? [1, 32] : [1, 64, 256, 1024]);
  const timing = suiteTiming(o.quick);
  const rows = await benchModel(reg, pipelines, batches, null, { ...timing, log: say });
  const best = (mode: string, p: string) => rows.filter((r) => r.mode === mode && r.pipeline === p).sort((a, b) => b.imagesPerSec - a.imagesPerSec)[0] ?? null;
  const result = {
    command: commandLine(), machine: machineDescription(), backend: backendSummary(), rows,
    best: Object.fromEntries(pipelines.flatMap((p) => [[`${p} purify`, best('purify', p)], [`${p} detect`, best('detect', p)]])),
    date: new Date().toISOString(),
  };
  const out = o.out ?? `reports/bench/model-${getBackendInfo().kind}.json`;
  write(out, result);
  reg.dispose();
  if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
  else process.stdout.write(formatTable(['pipeline', 'mode', 'batch', 'images/s', 'ms/batch', 'GFLOP/img', 'GFLOP/s'], rows.map((r) => [r.pipeline, r.mode, r.batch, r.imagesPerSec, r.msPerBatch, r.gflopPerImage, r.gflops])) + `\nwritten to ${out}\n`);
}

/** `--workers 0,1,auto`: each setting and the threads it means on this machine. */
function workersList(s: string | undefined): { setting: string; threads: number }[] {
  return (s ?? '0').split(',').map((x) => x.trim()).filter(Boolean).map((x) => {
    if (x === 'auto') return { setting: x, threads: resolveWorkers('auto') };
    const n = Number(x);
    if (!Number.isInteger(n) || n < 0 || n > 256) throw new Error(`--workers: "${x}" is not auto or a thread count 0..256`);
    return { setting: x, threads: n };
  });
}

/** `bench pipeline`: the in-memory stream (Avro records in, records out, no broker) against model-only. */
async function pipelineSuite(o: SuiteOpts) {
  const say = (s: string) => process.stderr.write(`bench: ${s}\n`);
  const models = o.models ?? 'models/mnist';
  const images = o.images ?? 'png28';
  if (images !== 'png28' && !/^jpeg\d+$/.test(images)) throw new Error(`--images: expected png28 or jpeg<size> (e.g. jpeg224), got "${images}"`);
  let records: Buffer[];
  if (o.recordsFile) {
    records = readRecordsFile(o.recordsFile);
    if (o.records) records = records.slice(0, Number(o.records));
  }
  else {
    const n = Number(o.records ?? (o.quick ? 256 : 4096));
    const data = loadDataset('mnist');
    if (images === 'png28') {
      const reg = new ModelRegistry(models);
      say(`encoding ${n} records (PNG in Avro ImageRecord)`);
      records = (await buildSamples(data.test, reg.classifier(), { count: n, adversarialRatio: 0, attack: 'fgsm', eps: 0, seed: 3, idPrefix: 'bench' })).map((r) => r.value);
    } else {
      const size = Number(images.slice(4));
      say(`encoding ${n} records (${size}x${size} colour JPEG in Avro ImageRecord)`);
      records = await colourJpegRecords(data.test, n, size);
    }
  }
  if (o.saveRecords) {
    writeRecordsFile(o.saveRecords, records);
    say(`wrote ${records.length} records to ${o.saveRecords}`);
    return;
  }
  const pipelines = o.pipeline?.length ? o.pipeline : ['full', 'split2>full'];
  const batches = listOf(o.batch, o.quick ? [32] : [64, 256]);
  const concurrency = Number(o.concurrency ?? 2);
  const workers = workersList(o.workers);
  const timing = suiteTiming(o.quick);
  const rows = [];
  for (const p of pipelines) for (const b of batches) rows.push(...(await benchPipeline(records, { models, pipeline: p, batch: b, concurrency, workers, rounds: Number(o.rounds ?? 1), ...timing, log: say })));
  const avgBytes = records.reduce((n, r) => n + r.length, 0) / records.length;
  const result = {
    command: commandLine(), machine: machineDescription(), backend: backendSummary(),
    images: o.recordsFile ? `records file ${o.recordsFile}` : images, recordBytesMean: avgBytes, workers, rows,
    loadAverageAtEnd: loadavg(), date: new Date().toISOString(),
  };
  const out = o.out ?? (workers.length > 1 ? `reports/bench/pipeline-pool-${getBackendInfo().kind}.json` : `reports/bench/pipeline-${getBackendInfo().kind}.json`);
  write(out, result);
  if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
  else {
    process.stdout.write(
      formatTable(
        ['pipeline', 'batch', 'workers', 'in flight', 'records', 'stream img/s', 'model-only img/s', 'stream / model-only', 'main thread CPU ms/rec', 'process CPU ms/rec', 'dead letters'],
        rows.map((r) => [r.pipeline, r.batch, `${r.workersSetting} (${r.workers})`, r.concurrency, r.records, r.streamImagesPerSec, r.modelOnlyImagesPerSec, r.share, r.mainThreadCpuMsPerRecord ?? '-', r.cpuMsPerRecord, r.deadLetters]),
      ) + `\nimages: ${result.images}, ${avgBytes.toFixed(0)} bytes per record on average; load average at the end ${result.loadAverageAtEnd.map((x) => x.toFixed(1)).join(' ')}\nwritten to ${out}\n`,
    );
  }
}

/** `bench guard-datasets`: guard images/s per dataset and classifier format, through the guard's per-batch code. */
async function guardDatasetsSuite(o: SuiteOpts) {
  const say = (s: string) => process.stderr.write(`bench: ${s}\n`);
  const sets = (o.set?.length ? o.set : ['mnist=models/mnist@mnist']).map(parseGuardDatasetSet);
  const pipeline = o.pipeline?.[0] ?? 'split2>full';
  const batch = listOf(o.batch, [64])[0]!;
  const rows = await benchGuardDatasets(sets, {
    records: Number(o.records ?? (o.quick ? 256 : 1024)), batch, concurrency: Number(o.concurrency ?? 2), pipeline, repeat: Number(o.repeat ?? (o.quick ? 1 : 3)), ...suiteTiming(o.quick), log: say,
  });
  const result = { command: commandLine(), machine: machineDescription(), backend: backendSummary(), rows, date: new Date().toISOString() };
  const out = o.out ?? 'reports/bench/guard-datasets.json';
  write(out, result);
  if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
  else {
    process.stdout.write(formatTable(
      ['set', 'classifier', 'size', 'pipeline', 'batch', 'in flight', 'records', 'guard img/s (median)', 'min-max', 'model-only img/s (median)', 'share'],
      rows.map((r) => {
        const g = r.runs.map((x) => x.streamImagesPerSec);
        return [r.set, r.classifier.replace(/^(\S+?):.*\/([^/]+)$/, '$1:$2'), r.size, r.pipeline, r.batch, r.concurrency, r.records, r.streamImagesPerSec, `${Math.min(...g).toFixed(0)}-${Math.max(...g).toFixed(0)}`, r.modelOnlyImagesPerSec, r.share];
      }),
    ) + `\nwritten to ${out}\n`);
  }
}

function write(out: string, obj: unknown): void {
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(obj, null, 2) + '\n');
}

async function backendSuite(o: { json?: boolean; out?: string; js: boolean }) {
  const backends = ['tensorflow', ...(o.js ? ['cpu'] : [])];
  if (!backendInfo.native) throw new Error('the native backend is not loaded; run make install');
  const rows = await benchBackend(backends);
  const ratio = (op: string) => {
    const n = rows.find((r) => r.op === op && r.backend === 'tensorflow');
    const j = rows.find((r) => r.op === op && r.backend === 'cpu');
    return n && j ? n.gflops / j.gflops : null;
  };
  const result = {
    command: commandLine(),
    machine: machineDescription(),
    tfVersion: tfVersion(),
    rows,
    nativeOverJs: { conv2dTrainStep: ratio('conv2d train step'), matMul: ratio('matMul') },
    date: new Date().toISOString(),
  };
  const out = o.out ?? 'reports/bench/backend.json';
  write(out, result);
  if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
  else {
    process.stdout.write(formatTable(['op', 'shape', 'backend', 'GFLOP/call', 'median ms', 'GFLOP/s'], rows.map((r) => [r.op, r.shape, r.backend, r.gflopPerCall, r.medianMs, r.gflops])) + '\n');
    process.stdout.write(`native / pure-JS: conv2d step ${result.nativeOverJs.conv2dTrainStep?.toFixed(1)}x, matMul ${result.nativeOverJs.matMul?.toFixed(1)}x\nwritten to ${out}\n`);
  }
}

async function fullSuite(o: { json?: boolean; out?: string; quick?: boolean; stream: boolean }) {
  const quick = Boolean(o.quick);
  const timing = quick ? { minMs: 150, minReps: 2 } : { minMs: 1000, minReps: 5 };
  const say = (s: string) => process.stderr.write(`bench: ${s}\n`);
  say('ceiling');
  const ceil = ceiling(timing);
  const ceilingGflops = ceil.conv2dGflops;
  const reg = new ModelRegistry('models/mnist');
  const pipelines = quick ? ['full', 'split2>full'] : ['full', 'split2', 'split2>full', 'full>split2'];
  const batches = quick ? [1, 32] : [1, 8, 32, 128, 512];
  say(`model: ${pipelines.join(', ')} at batch ${batches.join(', ')}`);
  const model = await benchModel(reg, pipelines, batches, ceilingGflops, timing);
  const data = loadDataset('mnist');
  let stream = null;
  if (o.stream) {
    const n = quick ? 300 : 3000;
    say(`stream: ${n} records`);
    const samples = await buildSamples(data.test, reg.classifier(), { count: n, adversarialRatio: 0, attack: 'fgsm', eps: 0, seed: 3, idPrefix: 'bench' });
    let brokers = brokersFromEnv();
    const local = brokers.length ? null : await (await import('../../tools/localBroker.ts')).startLocalBroker();
    if (local) brokers = local.brokers;
    try {
      stream = await benchStream(brokers, samples, { maxBatchSize: quick ? 64 : 128, latencySeconds: quick ? 3 : 15, partitions: 4 });
    } finally {
      await local?.stop();
    }
  }
  say('baselines');
  const set = take(data.test, quick ? 200 : 1000);
  const baselines = benchBaselines(reg, [
    { name: 'vqguard split2>full', pipeline: 'split2>full' },
    { name: 'vqguard full', pipeline: 'full' },
    { name: 'feature squeezing: bit depth 1', pipeline: 'bits1' },
    { name: 'feature squeezing: median 2x2', pipeline: 'median2' },
    { name: 'Defense-GAN-style, L=200 R=10', pipeline: 'defensegan', samples: quick ? 20 : 100, batch: 10 },
  ], set);
  const best = (mode: string, p: string) => model.filter((r) => r.mode === mode && r.pipeline === p).sort((a, b) => b.imagesPerSec - a.imagesPerSec)[0];
  const result = {
    command: commandLine(),
    machine: machineDescription(),
    quick,
    ceilingGflops,
    ceiling: ceil,
    model: model.map((r) => ({ ...r })),
    bestPurifyFull: best('purify', 'full'),
    bestDetectFull: best('detect', 'full'),
    stream: stream && { ...stream, p50Ms: stream.latency[0]?.p50Ms ?? null, p99Ms: stream.latency[0]?.p99Ms ?? null },
    baselines,
    reference: { pytorchPurifyBatch32: 1442, pytorchPurifyPlusClassifierBatch32: 837, source: 'shared/docs/reference-findings.md' },
    date: new Date().toISOString(),
  };
  const out = o.out ?? (quick ? 'reports/bench/bench-quick.json' : 'reports/bench/bench.json');
  write(out, result);
  reg.dispose();
  if (o.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  process.stdout.write(`ceiling: conv2d ${ceil.conv2dGflops.toFixed(1)} GFLOP/s, matMul ${ceil.matMulGflops.toFixed(1)} GFLOP/s\n\n`);
  process.stdout.write(formatTable(['pipeline', 'mode', 'batch', 'images/s', 'ms/batch', 'GFLOP/img', 'GFLOP/s', 'of peak'], model.map((r) => [r.pipeline, r.mode, r.batch, r.imagesPerSec, r.msPerBatch, r.gflopPerImage, r.gflops, r.peakFraction])) + '\n\n');
  if (stream) {
    process.stdout.write(formatTable(['stream', 'value'], [
      ['guard images/s (saturation)', stream.guardImagesPerSec], ['pass-through images/s', stream.passThroughImagesPerSec], ['guard / pass-through', stream.ratio],
      ...stream.latency.map((l) => [`latency at ${l.offeredPerSec}/s: p50 / p99 ms`, `${l.p50Ms.toFixed(1)} / ${l.p99Ms.toFixed(1)}`] as [string, string]),
      ...Object.entries(stream.stageMsPerRecord).map(([k, v]) => [`ms per record: ${k}`, v] as [string, number]),
    ]) + '\n\n');
  }
  process.stdout.write(formatTable(['baseline', 'images/s', 'acc FGSM 0.1', 'acc FGSM 0.3', 'images'], baselines.map((b) => [b.name, b.imagesPerSec, b.accuracyEps01, b.accuracyEps03, b.samples])) + `\nwritten to ${out}\n`);
}

/** `bench footprint`: idle RSS and start-to-ready of `vqguard run` (src/bench/footprint.ts). */
async function footprintSuite(o: { json?: boolean; out?: string; bin: string[]; idle: string }): Promise<void> {
  const { measureFootprint } = await import('../bench/footprint.ts');
  const { freePort, startLocalBroker } = await import('../../tools/localBroker.ts');
  let brokers = brokersFromEnv();
  const local = brokers.length ? null : await startLocalBroker();
  if (local) brokers = local.brokers;
  const runs = [];
  try {
    for (const bin of o.bin.map((b) => resolve(b))) {
      const modes: ('default' | 'source')[] = existsSync(join(bin, '..', '..', 'dist', 'src', 'cli', 'main.js')) ? ['default', 'source'] : ['source'];
      for (const mode of modes) {
        process.stderr.write(`footprint: ${bin} (${mode})\n`);
        runs.push(await measureFootprint({ brokers, bin, mode, pipeline: 'split2>full', idleSeconds: Number(o.idle), port: await freePort() }));
      }
    }
  } finally {
    await local?.stop();
  }
  const out = o.out ?? 'reports/bench/footprint.json';
  const command = `vqguard bench footprint${o.bin.length > 1 ? ' --bin bin/vqguard.mjs <the main checkout>/bin/vqguard.mjs' : ''}`;
  write(out, { command, machine: machineDescription(), runs, date: new Date().toISOString() });
  if (o.json) return void process.stdout.write(JSON.stringify(runs) + '\n');
  process.stdout.write(formatTable(['checkout', 'mode', 'start to ready s', 'idle RSS MiB', 'clean file pages MiB', 'private dirty MiB', 'JS heap used MiB'],
    runs.map((r) => [r.checkout, r.mode, r.startToReadyMs / 1000, r.idleRssMiB, r.cleanFileMiB, r.privateDirtyMiB, r.jsHeapUsedMiB ?? NaN])) + '\n\n');
  for (const r of runs) {
    process.stdout.write(`RSS by mapping, ${r.checkout} (${r.mode}):\n` + formatTable(['mapping', 'MiB'], Object.entries(r.breakdownMiB).filter(([, v]) => v >= 1)) + '\n\n');
  }
  process.stdout.write(`written to ${out}\n`);
}

export function registerBench(program: Command): void {
  program
    .command('bench [suite]')
    .option('--quick', 'short run (about a minute) for routine checks')
    .addOption(jsonOption())
    .option('--out <file>', 'JSON output file')
    .option('--no-js', 'backend suite: skip the pure-JS backend')
    .option('--no-stream', 'skip the stream benchmark (no broker needed)')
    .option('--bin <launcher...>', 'footprint: launchers to measure (another checkout\'s bin/vqguard.mjs for a before/after)', ['bin/vqguard.mjs'])
    .option('--idle <n>', 'footprint: seconds idle after /readyz before reading RSS', '5')
    .option('--pipeline <spec...>', 'model/pipeline suites: pipelines (default full, split2>full)')
    .option('--batch <list>', 'model/pipeline suites: batch sizes, comma-separated')
    .option('--records <n>', 'pipeline suite: records to encode from the MNIST test set')
    .option('--records-file <file>', 'pipeline suite: read encoded records from this file instead')
    .option('--save-records <file>', 'pipeline suite: only write the encoded records to this file')
    .option('--concurrency <n>', 'pipeline suite: batches in flight (default 2)')
    .option('--workers <list>', 'pipeline suite: image worker threads per run, comma-separated: 0 (main thread), a count, auto (default 0)')
    .option('--rounds <n>', 'pipeline suite: runs per workers setting, order rotated; rows hold the medians (default 1)')
    .option('--images <kind>', 'pipeline suite: png28 (MNIST digits, 28x28 grey PNG; default) or jpeg<size> (the digits upscaled to size x size, colour JPEG, e.g. jpeg224)')
    .option('--models <dir>', 'model/pipeline suites: model set (default models/mnist)')
    .option('--repeat <n>', 'guard-datasets suite: measurements per set (medians reported; default 3, 1 with --quick)')
    .option('--set <spec...>', 'guard-datasets suite: name=<model set>@<dataset spec>[@<classifier declaration>] (default mnist=models/mnist@mnist)')
    .action(async (suite: string | undefined, o: SuiteOpts & { js: boolean; stream: boolean; bin: string[]; idle: string }) => {
      if (suite === 'backend') await backendSuite(o);
      else if (suite === 'model') await modelSuite(o);
      else if (suite === 'pipeline') await pipelineSuite(o);
      else if (suite === 'guard-datasets') await guardDatasetsSuite(o);
      else if (suite === 'png') {
        const r = await benchPng();
        const out = o.out ?? 'reports/bench/png.json';
        write(out, { command: commandLine(), machine: machineDescription(), ...r, date: new Date().toISOString() });
        if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
        else process.stdout.write(formatTable(['operation (28x28 grey)', 'sharp us', 'fast path us', 'ratio'], [
          ['decode', r.decodeSharpUs, r.decodeFastUs, r.decodeSharpUs / r.decodeFastUs],
          ['encode PNG', r.encodeSharpUs, r.encodeFastUs, r.encodeSharpUs / r.encodeFastUs],
        ]) + `\nwritten to ${out}\n`);
      }
      else if (suite === 'footprint') await footprintSuite(o);
      else if (suite === undefined || suite === 'all') await fullSuite(o);
      else throw new Error(`unknown bench suite "${suite}": expected backend, png, model, pipeline, guard-datasets, footprint or nothing`);
    });
}
