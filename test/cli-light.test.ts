// What the light commands load: `vqguard --help` and `vqguard config check` load neither
// TensorFlow nor sharp (nor the lab: vega, cli-progress, the dev broker) and print no TensorFlow
// log lines; `vqguard run` loads TensorFlow but none of the lab. Usage errors exit 2.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const HEAVY = /@tensorflow|tfjs|libtensorflow|[/\\]sharp[/\\]|@img[/\\]sharp/;
const LAB = /[/\\]vega|cli-progress|localBroker|[/\\]src[/\\](train|eval|report|research|attacks|bench)[/\\]/;
const TF_LOG = /absl::|oneDNN|tensorflow\/core|I0000|cpu_feature_guard/;

function traced(args: string[]): { loaded: string[]; status: number | null; stdout: string; stderr: string } {
  const file = join(mkdtempSync(join(tmpdir(), 'vqguard-trace-')), 'loads.txt');
  writeFileSync(file, '');
  const r = spawnSync(process.execPath, ['--import', './test/helpers/trace-loads.mjs', 'bin/vqguard.mjs', ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, VQGUARD_TRACE_LOADS: file, KAFKA_BROKERS: '127.0.0.1:9' },
  });
  return { loaded: readFileSync(file, 'utf8').split('\n').filter(Boolean), status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('vqguard --help and config check load neither TensorFlow nor sharp, and print no TF log lines', { timeout: 120_000 }, () => {
  for (const args of [['--help'], ['config', 'check', 'examples/guard.yaml'], ['config', 'check', 'test/does-not-exist.yaml']]) {
    const r = traced(args);
    assert.ok(r.loaded.some((u) => /commander/.test(u)), `the trace works (${args.join(' ')})`);
    assert.deepEqual(r.loaded.filter((u) => HEAVY.test(u)), [], `${args.join(' ')} loads no TensorFlow or sharp`);
    assert.deepEqual(r.loaded.filter((u) => LAB.test(u)), [], `${args.join(' ')} loads no lab code`);
    assert.doesNotMatch(r.stderr + r.stdout, TF_LOG);
    if (args[0] === '--help') {
      assert.equal(r.status, 0);
      for (const c of ['run', 'config', 'train', 'eval', 'bench', 'replay']) assert.match(r.stdout, new RegExp(`\\n  ${c}\\b`));
    }
  }
  const ok = traced(['config', 'check', 'examples/guard.yaml']);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /examples\/guard\.yaml: ok \(1 topic; pipelines split2>full\)/);
  const bad = traced(['config', 'check', 'test/does-not-exist.yaml']);
  assert.equal(bad.status, 78, 'a configuration problem exits 78 (EX_CONFIG)');
  assert.match(bad.stderr, /cannot read test\/does-not-exist\.yaml/);
});

test('config check names every problem, bundles included (bits1 + median2 are valid stages)', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vqguard-cfg-'));
  const file = join(dir, 'guard.yaml');
  writeFileSync(file, 'models: models/none\ntopics:\n  - input: in\n    output: out\n    deadLetter: dlq\n    pipeline: [bits1, median2, spilt2]\n');
  let r = spawnSync(process.execPath, ['bin/vqguard.mjs', 'config', 'check', file], { encoding: 'utf8', env: { ...process.env, KAFKA_BROKERS: '127.0.0.1:9' } });
  assert.equal(r.status, 78);
  assert.match(r.stderr, /topics\[0\]\.pipeline\[2\]: unknown pipeline stage "spilt2"/);
  assert.doesNotMatch(r.stderr, /"bits1"|"median2"/);
  writeFileSync(file, 'models: models/none\ntopics:\n  - input: in\n    output: out\n    deadLetter: dlq\n    pipeline: [bits1, median2]\n');
  r = spawnSync(process.execPath, ['bin/vqguard.mjs', 'config', 'check', file], { encoding: 'utf8', env: { ...process.env, KAFKA_BROKERS: '127.0.0.1:9' } });
  assert.equal(r.status, 78);
  assert.match(r.stderr, /topics\[0\]\.models: model directory .*models\/none does not exist/);
});

test('vqguard run loads TensorFlow but none of the lab (vega, cli-progress, the dev broker), nor sharp at start', { timeout: 120_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'vqguard-run-'));
  const file = join(dir, 'guard.yaml');
  // Models that do not exist: run stops after its whole module graph is loaded, before any broker.
  writeFileSync(file, 'models: models/none\ntopics:\n  - input: in\n    output: out\n    deadLetter: dlq\n    pipeline: full\n');
  const r = traced(['run', '--config', file]);
  assert.equal(r.status, 78, `missing model bundles are a configuration error: ${r.stderr}`);
  assert.match(r.stderr, /model directory .* does not exist/);
  assert.ok(r.loaded.some((u) => /tfjs-node/.test(u)), 'run loads the backend');
  assert.ok(r.loaded.some((u) => /kafkajs/.test(u)), 'run loads kafkajs');
  assert.deepEqual(r.loaded.filter((u) => LAB.test(u)), []);
  assert.deepEqual(r.loaded.filter((u) => /[/\\]sharp[/\\]|@img[/\\]sharp/.test(u)), [], 'sharp waits for the first image the PNG fast path cannot take');
});

test('usage errors exit 2 before any work: bad numbers, unknown options', { timeout: 120_000 }, () => {
  const out = join(mkdtempSync(join(tmpdir(), 'vqguard-usage-')), 'bundle');
  const cases: [string[], RegExp][] = [
    [['eval', '--samples', 'abc'], /--samples <n>' expects a whole number/],
    [['eval', '--bogus'], /unknown option '--bogus'/],
    [['train', 'classifier', '--epochs', 'abc', '--out', out], /--epochs <n>' expects a whole number/],
    [['train', 'purifier', '--split', '0', '--out', out], /--split <k>' must be between 1 and 99/],
    [['run', '--config', 'x', '--http-port', '70000'], /--http-port <n>' must be between 0 and 65535/],
    [['run', '--config', 'x', '--http-port', 'abc'], /--http-port <n>' expects a whole number/],
    [['calibrate', '--temperature', 'hot'], /--temperature <x>' expects a number/],
    [['demo', '--timeout', '-5'], /--timeout <x>' must be between 0 and 86400/],
    [['dlq', 'replay', '--topic', 'a', '--to', 'b', '--limit', 'many'], /--limit <n>' expects a whole number/],
    [['eval', '--eps', '0.1,abc'], /--eps <list>' expects comma-separated numbers between 0 and 1, got 'abc'/],
    [['sweep', '--k', '100,2.5'], /--k <list>' expects comma-separated whole numbers/],
  ];
  for (const [args, re] of cases) {
    const r = spawnSync(process.execPath, ['bin/vqguard.mjs', ...args], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re, args.join(' '));
    assert.equal(existsSync(out), false, 'nothing written');
  }
});

test('calibrate does not overwrite a shipped calibration without --force (before any work)', { timeout: 120_000 }, () => {
  const file = 'models/mnist/calibration/split2-full.json';
  const before = readFileSync(file);
  const r = spawnSync(process.execPath, ['bin/vqguard.mjs', 'calibrate', '--pipeline', 'split2>full', '--samples', '10'], { encoding: 'utf8', timeout: 100_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /split2-full\.json already exists: pass --force/);
  assert.deepEqual(readFileSync(file), before);
});

test('--version is the package version', { timeout: 30_000 }, () => {
  const r = spawnSync(process.execPath, ['bin/vqguard.mjs', '--version'], { encoding: 'utf8' });
  assert.equal(r.stdout.trim(), (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version);
});
