// The image worker pool (src/consumer/imagePool.ts, piscina worker threads running
// src/consumer/imageWorker.ts): the same pixels, reasons and bytes as the main thread, results in
// input order, a crashed or timed-out worker never stalls a batch (records retried or failed,
// pool recreated), processChunk gives the same messages with and without the pool, and the guard
// with `workers: 1` on the real broker answers every record once and commits its offsets.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImagePool, ImagePoolClosedError, workerFile, type PoolDecodeResult } from '../src/consumer/imagePool.ts';
import { decodeImage, encodeImage, type ImagePolicy, type OutputImageFormat } from '../src/image/decode.ts';
import { processChunk, type InMessage } from '../src/consumer/processChunk.ts';
import { pipelineRuntime } from '../src/bench/pipeline.ts';
import { decodeDeadLetter, encodeImageRecord } from '../src/records/avro.ts';
import { mulberry32 } from '../src/data/dataset.ts';
import { hostileImages, STRICT_IMAGE } from './helpers/hostile.ts';
import { createTopics, getTestBroker, type TestBroker } from './helpers/broker.ts';
import { committedOffsets, guardTopics, LogSink, MODELS, produce, rawConfig, REPO, samples, waitFor, within, type OutMsg } from './helpers/guard.ts';
import { parseConfig } from '../src/config/schema.ts';
import { Guard, createLogger } from '../src/consumer/guard.ts';

const rng = mulberry32(17);
const noise = (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(rng() * 256)));
const raw = (w: number, h: number, c: 1 | 3) => ({ raw: { width: w, height: h, channels: c } });

/**
 * Decoding on the main thread, shaped like the pool's results (a throw becomes `thrown`). One
 * image at a time, like a worker: libvips keeps one error buffer per process, so two failing
 * sharp calls at once can swap or lose their messages (on the main thread too).
 */
async function mainDecode(images: Uint8Array[], policy: Partial<ImagePolicy>): Promise<PoolDecodeResult[]> {
  const out: PoolDecodeResult[] = [];
  for (const b of images) out.push(await decodeImage(b, policy).catch((e: Error) => ({ ok: 'thrown' as const, message: e.message })));
  return out;
}

/** Comparable form: pixels as plain arrays. */
const plain = (rs: PoolDecodeResult[]) => rs.map((r) => (r.ok === true ? { ...r, pixels: Array.from(r.pixels) } : r));
/**
 * The same, without the text of libvips errors (corrupt_image): libvips keeps one error buffer per
 * process, so with other sharp calls running at once (another thread, or an operation a killed
 * worker left behind) a failure's text can be another's or "Unknown error". The reason holds.
 */
const loose = (rs: PoolDecodeResult[]) => plain(rs).map((r) => (r.ok === false && r.reason === 'corrupt_image' ? { ...r, detail: '(libvips error)' } : r));

const pools: ImagePool[] = [];
function pool(o: ConstructorParameters<typeof ImagePool>[0]): ImagePool {
  const p = new ImagePool(o);
  pools.push(p);
  return p;
}
after(async () => {
  for (const p of pools) await p.close();
});

test('the worker file sits beside the pool module with its extension (.ts under tsx)', () => {
  assert.match(workerFile(), /src\/consumer\/imageWorker\.ts$/);
});

test('the workers start when tsx was registered through its API (bin/vqguard.mjs) and node has per-process options', () => {
  const dir = mkdtempSync(join(tmpdir(), 'vqguard-pool-'));
  try {
    const script = join(dir, 'start.mjs');
    writeFileSync(script, [
      `const { register } = await import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))});`,
      'register();',
      `const { ImagePool } = await import(${JSON.stringify(new URL('../src/consumer/imagePool.ts', import.meta.url).href)});`,
      'const p = new ImagePool({ threads: 1 });',
      'await p.check();',
      "console.log(JSON.stringify(await p.decode([Buffer.from('not an image')], {})));",
      'await p.close();',
    ].join('\n'));
    const r = spawnSync(process.execPath, ['--max-old-space-size=256', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout.trim().split('\n').pop()!)[0].reason, 'unsupported_format');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('decode: the same pixels and the same reasons as the main thread, for every kind of image', async () => {
  const h = await hostileImages();
  const colourJpeg = await sharp(noise(96 * 64 * 3), raw(96, 64, 3)).jpeg({ quality: 90 }).toBuffer();
  const rgbPng = await sharp(noise(28 * 28 * 3), raw(28, 28, 3)).png().toBuffer();
  const images: Uint8Array[] = [
    ...Object.values(h),
    colourJpeg,
    rgbPng,
    Buffer.alloc(0),
    noise(300),
    new Uint8Array(h.png28), // a plain Uint8Array, not a Buffer
    h.png28.subarray(0, 0),
  ];
  // One thread: the worker decodes its records one after the other, so even sharp's error texts are
  // deterministic (with two threads, two failing sharp calls at once can swap their messages).
  const p = pool({ threads: 1 });
  for (const policy of [STRICT_IMAGE as Partial<ImagePolicy>, { width: 28, height: 28 }, { colour: 'rgb' as const, width: 32, height: 32, resize: 'cover' as const }]) {
    const want = await mainDecode(images, policy);
    const got = await p.decode(images, policy);
    assert.equal(got.length, images.length);
    assert.deepEqual(plain(got), plain(want));
  }
  // The strict policy tells the kinds apart: the comparison above covered many reasons, not one.
  const reasons = new Set((await p.decode(images, STRICT_IMAGE as Partial<ImagePolicy>)).map((r) => (r.ok === false ? r.reason : String(r.ok))));
  assert.ok(reasons.size >= 8, `reasons seen: ${[...reasons].join(', ')}`);
  assert.equal(p.crashes, 0);
});

test('encode: the same bytes as the main thread; a bad input throws the same message', async () => {
  const p = pool({ threads: 2, minRecordsPerTask: 1 });
  const grey = new Float32Array(noise(28 * 28)).map((v) => v / 255);
  const rgb = new Float32Array(noise(20 * 12 * 3)).map((v) => v / 255);
  const withNaN = grey.slice();
  withNaN[5] = NaN;
  const jobs: { pixels: Float32Array; width: number; height: number; channels: 1 | 3; format: OutputImageFormat }[] = [
    { pixels: grey, width: 28, height: 28, channels: 1, format: 'png' },
    { pixels: rgb, width: 20, height: 12, channels: 3, format: 'png' },
    { pixels: rgb, width: 20, height: 12, channels: 3, format: 'jpeg' },
    { pixels: grey, width: 28, height: 28, channels: 1, format: 'webp' },
    { pixels: grey, width: 28, height: 28, channels: 1, format: 'tiff' },
    { pixels: withNaN, width: 28, height: 28, channels: 1, format: 'png' },
    { pixels: grey.subarray(0, 100), width: 28, height: 28, channels: 1, format: 'png' },
    { pixels: grey, width: 28, height: 28, channels: 1, format: 'gif' },
  ];
  const got = await p.encode(jobs);
  assert.equal(got.length, jobs.length);
  for (const [i, j] of jobs.entries()) {
    const g = got[i]!;
    try {
      const want = await encodeImage(j.pixels, j.width, j.height, j.channels, j.format);
      assert.equal(g.ok, true, `job ${i}: ${JSON.stringify(g)}`);
      assert.ok(g.ok === true && g.bytes.equals(want), `job ${i} (${j.format}): identical bytes`);
    } catch (e) {
      assert.deepEqual(g, { ok: 'thrown', message: (e as Error).message }, `job ${i}: the main thread's error`);
    }
  }
  assert.deepEqual(got.map((g) => g.ok), [true, true, true, true, true, 'thrown', 'thrown', true]);
});

test('order: many slices over two threads come back in input order', async () => {
  const p = pool({ threads: 2, minRecordsPerTask: 4, maxRecordsPerTask: 16 });
  // Image k is filled with grey level k (so each result names its input).
  const n = 255;
  const images = await Promise.all(Array.from({ length: n }, (_, k) => sharp(Buffer.alloc(28 * 28, k), raw(28, 28, 1)).png().toBuffer()));
  const got = await p.decode(images, { width: 28, height: 28 });
  assert.equal(got.length, n);
  got.forEach((r, k) => {
    assert.equal(r.ok, true);
    assert.ok(r.ok === true && r.pixels.every((v) => v === Math.fround(k / 255)), `record ${k} holds grey level ${k}`);
  });
  const enc = await p.encode(got.map((r) => ({ pixels: (r as { pixels: Float32Array }).pixels, width: 28, height: 28, channels: 1 as const, format: 'png' as const })));
  const back = await mainDecode(enc.map((e) => (e as { bytes: Buffer }).bytes), { width: 28, height: 28 });
  back.forEach((r, k) => assert.ok(r.ok === true && r.pixels[0] === Math.fround(k / 255), `encoded record ${k} in place`));
});

test('a worker killed mid-task: the batch still completes with the same results, the pool is recreated and keeps working', async () => {
  const h = await hostileImages();
  // Slow enough that the task is still running when its thread is ended: colour JPEGs resized by libvips.
  const big = await Promise.all(Array.from({ length: 24 }, () => sharp(noise(512 * 384 * 3), raw(512, 384, 3)).jpeg().toBuffer()));
  const images = [...big, h.truncatedPng, h.png28];
  const policy: Partial<ImagePolicy> = { width: 28, height: 28 };
  const want = await mainDecode(images, policy);
  const events: string[] = [];
  const p = pool({ threads: 2, onEvent: (e) => events.push(e.event) });
  await p.check();
  const running = p.decode(images, policy);
  const victims = p.workerThreads();
  assert.equal(victims.length, 2);
  await Promise.all(victims.map((w) => w.terminate()));
  const got = await within(running, 120_000, 'decode after the crash');
  assert.deepEqual(loose(got), loose(want));
  assert.equal(got[24]!.ok === false && got[24]!.reason, 'corrupt_image');
  assert.ok(p.crashes >= 1 && p.recreated >= 1, `crashes ${p.crashes}, recreated ${p.recreated}`);
  assert.ok(events.includes('crash') && events.includes('recreate'), events.join(','));
  // The new workers are other threads, and they work.
  const ids = new Set(victims.map((w) => w.threadId));
  assert.ok(p.workerThreads().every((w) => !ids.has(w.threadId)));
  assert.deepEqual(plain(await p.decode([h.png28], policy)), plain(await mainDecode([h.png28], policy)));
});

test('a task past its time limit: its worker is ended, its records come back as crashed (never a stall), then the pool works again', async () => {
  let limitMs = 1;
  const p = pool({ threads: 1, taskTimeoutMs: () => limitMs });
  await p.check();
  const big = await Promise.all(Array.from({ length: 3 }, () => sharp(noise(1024 * 768 * 3), raw(1024, 768, 3)).jpeg().toBuffer()));
  const t0 = performance.now();
  const got = await within(p.decode(big, { colour: 'rgb', width: 64, height: 64, resize: 'fill' }), 60_000, 'decode under a 1 ms limit');
  assert.deepEqual(got.map((r) => r.ok), ['crashed', 'crashed', 'crashed'], JSON.stringify(got));
  assert.ok(got.every((r) => r.ok === 'crashed' && /abort/i.test(r.message)), JSON.stringify(got[0]));
  assert.ok(p.crashes >= 4, `the slice, then each record alone: ${p.crashes} failed tasks`);
  limitMs = 60_000;
  const again = await p.decode(big, { colour: 'rgb', width: 64, height: 64, resize: 'fill' });
  assert.deepEqual(again.map((r) => r.ok), [true, true, true]);
  assert.ok(performance.now() - t0 < 60_000);
});

test('a pool closed: its calls throw (the batch fails as a whole, no record is dead-lettered), not a hang; close is idempotent', async () => {
  const p = pool({ threads: 1 });
  await p.close();
  await p.close();
  await assert.rejects(p.decode([Buffer.from('x')], {}), ImagePoolClosedError);
  await assert.rejects(p.encode([{ pixels: new Float32Array(4), width: 2, height: 2, channels: 1, format: 'png' }]), ImagePoolClosedError);
  // Closed while a task runs: the call throws too.
  const q = pool({ threads: 1 });
  await q.check();
  const big = await sharp(noise(1024 * 768 * 3), raw(1024, 768, 3)).jpeg().toBuffer();
  const running = assert.rejects(q.decode([big, big, big, big], { colour: 'rgb', width: 64, height: 64, resize: 'fill' }), ImagePoolClosedError);
  await q.close();
  await running;
  assert.equal(q.crashes, 0);
});

test('processChunk with the pool: the very same outputs and dead letters (bytes) as on the main thread', { timeout: 120_000 }, async () => {
  const h = await hostileImages();
  const good = await samples(40, { adversarialRatio: 0.5, eps: 0.3, seed: 21, idPrefix: 'pool' });
  const colourJpeg = await sharp(noise(64 * 48 * 3), raw(64, 48, 3)).jpeg().toBuffer();
  // One kind only whose reason comes from a sharp error text (truncated PNG): two failing sharp
  // calls at once share libvips' error buffer, on the main thread too.
  const bad = [h.truncatedPng, h.svg, noise(200), Buffer.alloc(0), colourJpeg, h.animatedGif, h.nanTiff, h.alphaPng];
  const values: Buffer[] = [];
  good.forEach((s, i) => {
    values.push(s.value);
    if (i % 5 === 0) values.push(encodeImageRecord({ id: `bad-${i}`, contentType: 'image/png', image: bad[(i / 5) % bad.length]!, producedAt: 1 }));
  });
  values.push(noise(50)); // not Avro
  const msgs: InMessage[] = values.map((value, i) => ({ key: null, value, offset: String(100 + i), timestamp: '1700000000000' }));
  const rt = pipelineRuntime(MODELS, 'split2>full', 64);
  const now = () => 1_700_000_000_123;
  try {
    const main = await processChunk(rt, 'in', 3, msgs, now, { now });
    rt.pool = pool({ threads: 2, minRecordsPerTask: 4 });
    const pooled = await processChunk(rt, 'in', 3, msgs, now, { now });
    assert.equal(main.outputs.length + main.deadLetters.length, msgs.length);
    assert.deepEqual(pooled.deadLetters, main.deadLetters, 'same dead letters, same reasons, same order');
    assert.deepEqual(pooled.outputs.map((o) => o.offset), main.outputs.map((o) => o.offset));
    assert.deepEqual([...pooled.out.keys()].sort(), [...main.out.keys()].sort());
    for (const [topic, list] of main.out) {
      const other = pooled.out.get(topic)!;
      assert.equal(other.length, list.length, topic);
      list.forEach((m, i) => {
        assert.equal(other[i]!.key, m.key);
        assert.deepEqual(other[i]!.headers, m.headers);
        if (other[i]!.value.equals(m.value)) return;
        // Only a libvips error text may differ: libvips keeps one error buffer per process, which
        // sharp calls running at the same time (or an operation left behind by a worker ended in
        // an earlier test) can add to; the reason and everything else must be the same.
        const a = decodeDeadLetter(m.value);
        const b = decodeDeadLetter(other[i]!.value);
        assert.ok(a.ok && b.ok, `${topic}[${i}]: identical bytes (not dead letters)`);
        assert.equal(b.record.reason, 'corrupt_image', `${topic}[${i}]: identical bytes (${a.record.detail} / ${b.record.detail})`);
        assert.deepEqual({ ...b.record, detail: '' }, { ...a.record, detail: '' }, `${topic}[${i}]`);
      });
    }
    assert.ok(new Set(main.deadLetters.map((d) => d.reason)).size >= 4, JSON.stringify(main.deadLetters.map((d) => d.reason)));
    assert.ok(main.outputs.length >= 30);
  } finally {
    rt.pool = null;
  }
});

test('processChunk: a worker that fails decoding or encoding dead-letters those records (processing_error / encode_error); every record answered', { timeout: 120_000 }, async () => {
  const good = await samples(12, { adversarialRatio: 0, seed: 22, idPrefix: 'fail' });
  const msgs: InMessage[] = good.map((s, i) => ({ key: null, value: s.value, offset: String(i), timestamp: '1700000000000' }));
  const rt = pipelineRuntime(MODELS, 'split2>full', 64);
  let failing: 'decode' | 'encode' = 'decode';
  // A time limit of 0 ms on one kind of task: every such task is aborted (before it runs), every time.
  rt.pool = pool({ threads: 2, minRecordsPerTask: 4, taskTimeoutMs: (_n, kind) => (kind === failing ? 0 : 60_000) });
  try {
    const d = await processChunk(rt, 'in', 0, msgs);
    assert.equal(d.outputs.length, 0);
    assert.deepEqual(d.deadLetters.map((x) => [x.offset, x.reason]), msgs.map((m) => [m.offset, 'processing_error']));
    const dl = d.outcomes.map((o) => (o.kind === 'dead' ? o.detail : ''));
    assert.ok(dl.every((x) => /^the image worker failed while decoding this record: .*(abort|terminat)/i.test(x)), JSON.stringify(dl));
    failing = 'encode';
    const e = await processChunk(rt, 'in', 0, msgs);
    assert.equal(e.outputs.length, 0);
    assert.deepEqual(e.deadLetters.map((x) => [x.offset, x.reason]), msgs.map((m) => [m.offset, 'encode_error']));
    assert.ok(e.outcomes.every((o) => o.kind === 'dead' && /^the image worker failed while encoding this record/.test(o.detail)));
    assert.ok(rt.pool.recreated >= 2);
    // Healthy again: outputs.
    failing = 'none' as 'decode';
    const ok = await processChunk(rt, 'in', 0, msgs);
    assert.equal(ok.outputs.length, msgs.length);
  } finally {
    rt.pool = null;
  }
});

describe('guard with workers: 1 (real broker)', { timeout: 300_000 }, () => {
  let broker: TestBroker;
  before(async () => {
    broker = await getTestBroker();
  });
  after(async () => {
    await broker?.stop();
  });

  test('N records in, N outputs or dead letters, offsets committed; decode and encode ran on the worker', { timeout: 240_000 }, async () => {
    const good = await samples(120, { adversarialRatio: 0.5, eps: 0.3, seed: 23, idPrefix: 'w1' });
    const h = await hostileImages();
    const msgs: OutMsg[] = good.map((s, i) => ({ key: s.id, value: s.value, partition: i % 2 }));
    for (let i = 0; i < 10; i++) msgs.splice(i * 11, 0, { key: `bad-${i}`, value: encodeImageRecord({ id: `bad-${i}`, contentType: 'image/png', image: h.truncatedPng, producedAt: 1 }), partition: i % 2 });
    const t = guardTopics('workers1');
    await createTopics(broker.brokers, [t.input, t.output, t.deadLetter, t.alerts], 2);
    await produce(broker.brokers, t.input, msgs);
    const sink = new LogSink();
    const answers = new Map<string, number>();
    const reasons: string[] = [];
    let n = 0;
    const guard = new Guard(parseConfig({ ...rawConfig(t, { brokers: broker.brokers, maxBatchSize: 16 }), workers: 1 }), {
      baseDir: REPO, httpPort: 0, logger: createLogger(sink),
      events: {
        onChunk: (_topic, partition, r) => {
          for (const o of r.outputs) answers.set(`${partition}:${o.offset}`, (answers.get(`${partition}:${o.offset}`) ?? 0) + 1);
          for (const d of r.deadLetters) {
            answers.set(`${partition}:${d.offset}`, (answers.get(`${partition}:${d.offset}`) ?? 0) + 1);
            reasons.push(d.reason);
          }
          n += r.outputs.length + r.deadLetters.length;
        },
      },
    });
    assert.equal(guard.imagePool?.threads, 1);
    const pool = guard.imagePool!;
    await within(guard.start(), 60_000, 'guard.start()');
    try {
      await waitFor(() => n >= msgs.length, 120_000, () => `all ${msgs.length} answered (got ${n})\n${sink.text().split('\n').slice(-20).join('\n')}`);
      const perPartition = [0, 1].map((p) => msgs.filter((m) => m.partition === p).length);
      await waitFor(async () => {
        const c = await committedOffsets(broker.brokers, t.groupId, t.input);
        return c.get(0) === perPartition[0] && c.get(1) === perPartition[1];
      }, 30_000, 'offsets committed to the end of both partitions');
    } finally {
      await within(guard.stop(), 30_000, 'guard.stop()');
    }
    assert.equal(answers.size, msgs.length, 'every record answered');
    for (const [k, c] of answers) assert.equal(c, 1, `exactly one answer for ${k}`);
    assert.deepEqual(reasons, Array(10).fill('corrupt_image'));
    assert.equal(pool.crashes, 0);
    const metrics = await guard.metrics.text();
    assert.match(metrics, /^vqguard_image_workers 1$/m);
    assert.match(metrics, /^vqguard_image_worker_failures_total 0$/m);
    assert.ok(pool.tasksDone >= 2 * Math.ceil(msgs.length / 16), `decode and encode tasks ran on the worker (${pool.tasksDone})`);
    // The pool is closed with the guard: a late call does no work.
    await assert.rejects(pool.decode([h.png28], {}), ImagePoolClosedError);
  });
});
