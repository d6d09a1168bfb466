// `vqguard bench --quick --json` in CI size: it runs end to end against the real broker and
// its figures are sane. Speed is not asserted (that is the benchmark's job, not a test's).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { getTestBroker, type TestBroker } from './helpers/broker.ts';

let broker: TestBroker;
before(async () => {
  broker = await getTestBroker();
});
after(async () => {
  await broker.stop();
});

test('vqguard bench --quick --json runs and reports sane figures', { timeout: 600_000 }, () => {
  const out = join(mkdtempSync(join(tmpdir(), 'vqg-bench-')), 'bench.json');
  const r = spawnSync('node', ['bin/vqguard.mjs', 'bench', '--quick', '--json', '--out', out], {
    env: { ...process.env, KAFKA_BROKERS: broker.brokers.join(',') },
    encoding: 'utf8',
    timeout: 590_000,
  });
  assert.equal(r.status, 0, `bench failed: ${r.stderr.slice(-2000)}`);
  const printed = JSON.parse(r.stdout.trim().split('\n').pop()!);
  const saved = JSON.parse(readFileSync(out, 'utf8'));
  assert.deepEqual(Object.keys(printed).sort(), Object.keys(saved).sort());
  assert.ok(saved.ceilingGflops > 1 && saved.ceilingGflops < 1e5, `ceiling ${saved.ceilingGflops}`);
  assert.ok(saved.model.length >= 4);
  for (const m of saved.model) {
    for (const k of ['pipeline', 'batch', 'imagesPerSec', 'gflopPerImage', 'peakFraction']) assert.ok(k in m, `model row has ${k}`);
    assert.ok(m.imagesPerSec > 0 && Number.isFinite(m.imagesPerSec));
    assert.ok(m.gflopPerImage > 0.01 && m.gflopPerImage < 1, `FLOPs per image ${m.gflopPerImage}`);
    // The share of the ceiling divides two timings taken at different moments: on a shared, loaded
    // machine it is not bounded above (3.9 was seen with four other jobs running), so only its sign is
    // checked here; FLOP-counting errors show in gflopPerImage above.
    assert.ok(m.peakFraction > 0 && Number.isFinite(m.peakFraction), `peak fraction ${m.peakFraction}`);
  }
  const s = saved.stream;
  for (const k of ['guardImagesPerSec', 'passThroughImagesPerSec', 'ratio', 'p50Ms', 'p99Ms']) assert.ok(Number.isFinite(s[k]) && s[k] > 0, `stream.${k} = ${s[k]}`);
  assert.ok(s.p99Ms >= s.p50Ms);
  assert.ok(s.ratio > 0 && s.ratio < 2, 'the guard is not faster than copying bytes');
  assert.ok(saved.baselines.length >= 4);
  for (const b of saved.baselines) {
    assert.ok(b.imagesPerSec > 0, `${b.name} speed`);
    assert.ok(b.accuracyEps01 >= 0 && b.accuracyEps01 <= 1 && b.accuracyEps03 >= 0 && b.accuracyEps03 <= 1);
  }
});

test('vqguard bench footprint measures vqguard run after /readyz: RSS by mapping adds up', { timeout: 300_000 }, () => {
  const out = join(mkdtempSync(join(tmpdir(), 'vqg-bench-')), 'footprint.json');
  const r = spawnSync('node', ['bin/vqguard.mjs', 'bench', 'footprint', '--json', '--idle', '1', '--out', out], {
    env: { ...process.env, KAFKA_BROKERS: broker.brokers.join(',') },
    encoding: 'utf8',
    timeout: 290_000,
  });
  assert.equal(r.status, 0, `footprint failed: ${r.stderr.slice(-2000)}`);
  const saved = JSON.parse(readFileSync(out, 'utf8'));
  assert.ok(saved.runs.length >= 1);
  for (const run of saved.runs) {
    assert.ok(run.startToReadyMs > 0 && run.startToReadyMs < 120_000, `start to ready ${run.startToReadyMs}`);
    assert.ok(run.idleRssMiB > 50, `RSS ${run.idleRssMiB}`);
    assert.ok(run.breakdownMiB.libtensorflow > 10, 'libtensorflow is mapped');
    const sum = Object.values(run.breakdownMiB as Record<string, number>).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - run.idleRssMiB) < 0.1 * run.idleRssMiB, `breakdown ${sum} vs RSS ${run.idleRssMiB}`);
    assert.ok(Math.abs(run.cleanFileMiB + run.privateDirtyMiB - run.idleRssMiB) < 0.2 * run.idleRssMiB);
  }
});
