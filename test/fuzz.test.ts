// Property / fuzz test of decode + verdict (no broker): at least 10,000 generated or mutated
// records through processChunk() with a real runtime (models, calibration). For every micro-batch:
// no exception, no hang (a time bound per chunk), and every input offset ends in exactly one
// output or one dead letter with a known reason code; no unhandled rejection in the whole run.
// Mutations: bit flips, truncations, insertions, deletions and overwrites of valid PNG / JPEG / GIF
// images and of Avro ImageRecords, PNGs mutated with their CRCs fixed (so the PNG fast path
// parses the damage), random headers, random Avro field values, random bytes.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { guardTopics, rawConfig, REPO, samples } from './helpers/guard.ts';
import { hostileImages, STRICT_IMAGE, type HostileImages } from './helpers/hostile.ts';
import { parseConfig } from '../src/config/schema.ts';
import { buildTopicRuntime, type TopicRuntime } from '../src/consumer/topicRuntime.ts';
import { processChunk, type InMessage } from '../src/consumer/processChunk.ts';
import { ModelRegistry } from '../src/models/registry.ts';
import { decodeDeadLetter, decodeGuardedImage, decodeImageRecord, encodeImageRecord } from '../src/records/avro.ts';
import { REASON_CODES } from '../src/records/reasons.ts';
import { crc32 } from '../src/image/png.ts';
import { decodeImage } from '../src/image/decode.ts';

const RECORDS = Number(process.env.FUZZ_RECORDS ?? 10_000);
const CHUNK = 50;
/** No micro-batch of 50 may take longer than this (a hang, or a bomb that got decoded). */
const CHUNK_LIMIT_MS = 20_000;
const SEED = Number(process.env.FUZZ_SEED ?? 20_241_125);

// ---------------------------------------------------------------------------------------------
// Mutations

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; n: number }
  | { kind: 'overwrite'; at: number; bytes: Uint8Array }
  | { kind: 'fixPngCrcs' };

const mutationArb: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), n: fc.integer({ min: 1, max: 32 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('overwrite' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'fixPngCrcs' as const }) },
);

/** Recomputes every chunk CRC of a (possibly damaged) PNG, as far as its chunk lengths allow. */
function fixPngCrcs(b: Buffer): Buffer {
  const out = Buffer.from(b);
  let pos = 8;
  while (pos + 12 <= out.length) {
    const len = out.readUInt32BE(pos);
    const end = pos + 8 + len;
    if (end + 4 > out.length) break;
    out.writeUInt32BE(crc32(out, pos + 4, end), end);
    pos = end + 4;
  }
  return out;
}

function mutate(src: Buffer, ms: Mutation[]): Buffer {
  let b: Buffer = Buffer.from(src);
  for (const m of ms) {
    const at = b.length ? m.kind === 'fixPngCrcs' ? 0 : m.at % (b.length + 1) : 0;
    switch (m.kind) {
      case 'flip':
        if (b.length) b[at % b.length]! ^= 1 << m.bit;
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.n)]);
        break;
      case 'overwrite':
        for (let i = 0; i < m.bytes.length && at + i < b.length; i++) b[at + i] = m.bytes[i]!;
        break;
      case 'fixPngCrcs':
        b = fixPngCrcs(b);
        break;
    }
  }
  return b;
}

// ---------------------------------------------------------------------------------------------
// Generated messages

interface Seeds {
  images: Buffer[];
  records: Buffer[];
}

const HEADER_NAMES = ['vqguard-id', 'vqguard-label', 'vqguard-produced-at', 'content-type', 'vqguard-attr-source', 'VQGUARD-LABEL', 'vqguard-max-bytes', 'x-anything'];

const headersArb = fc.option(
  fc.dictionary(
    fc.oneof(fc.constantFrom(...HEADER_NAMES), fc.string({ maxLength: 12 })),
    fc.oneof(fc.string({ maxLength: 24 }), fc.constantFrom('7', '-1', '99999999999', 'NaN', '2024-01-01T00:00:00Z', 'image/svg+xml', ''), fc.uint8Array({ maxLength: 16 }).map((u) => Buffer.from(u))),
    { maxKeys: 4 },
  ),
  { nil: undefined },
);

function messageArb(s: Seeds): fc.Arbitrary<{ value: Buffer | null; headers?: Record<string, string | Buffer>; kind: string }> {
  const image = fc.constantFrom(...s.images);
  const record = fc.constantFrom(...s.records);
  const muts = fc.array(mutationArb, { minLength: 1, maxLength: 4 });
  const randomRecord = fc
    .record({
      id: fc.string({ maxLength: 40, unit: 'binary' }),
      contentType: fc.oneof(fc.constantFrom('image/png', 'image/jpeg', 'image/svg+xml', ''), fc.string({ maxLength: 20 })),
      image: fc.oneof(image, fc.tuple(image, muts).map(([b, m]) => mutate(b, m)), fc.uint8Array({ maxLength: 256 }).map((u) => Buffer.from(u))),
      width: fc.option(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
      height: fc.option(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
      label: fc.option(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 })),
      attributes: fc.dictionary(fc.string({ maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 3 }),
      producedAt: fc.oneof(fc.integer({ min: 0, max: 2 ** 45 }), fc.constantFrom(2 ** 52, -(2 ** 52), 0, -1)),
    })
    .map((r) => encodeImageRecord(r));
  return fc.oneof(
    { weight: 5, arbitrary: fc.tuple(image, muts, headersArb).map(([b, m, h]) => ({ value: mutate(b, m), headers: h, kind: 'mutated image' })) },
    { weight: 4, arbitrary: fc.tuple(record, muts, headersArb).map(([b, m, h]) => ({ value: mutate(b, m), headers: h, kind: 'mutated Avro' })) },
    {
      weight: 3,
      arbitrary: fc.tuple(record, image, muts).map(([r, img, m]) => {
        // A valid Avro container around a mutated image.
        const d = decodeImageRecord(r);
        if (!d.ok) throw new Error('seed record does not decode');
        return { value: encodeImageRecord({ ...d.record, image: mutate(img, m) }), kind: 'Avro around a mutated image' };
      }),
    },
    { weight: 3, arbitrary: randomRecord.map((value) => ({ value, kind: 'random Avro fields' })) },
    { weight: 2, arbitrary: fc.tuple(fc.oneof(image, record), headersArb).map(([value, h]) => ({ value, headers: h, kind: 'valid with random headers' })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 1024 }).map((u) => ({ value: Buffer.from(u), kind: 'random bytes' })) },
    { weight: 1, arbitrary: fc.constantFrom({ value: null, kind: 'null' }, { value: Buffer.alloc(0), kind: 'empty' }) },
  );
}

// ---------------------------------------------------------------------------------------------

function runtimeFor(image: Record<string, unknown> | undefined, registry: (dir: string) => ModelRegistry): TopicRuntime {
  const raw = rawConfig(guardTopics('fuzz'), { brokers: ['127.0.0.1:9'], maxBatchSize: CHUNK });
  if (image) (raw.topics as Record<string, unknown>[])[0]!.image = image;
  return buildTopicRuntime(parseConfig(raw).topics[0]!, registry, REPO);
}

async function withLimit<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (timer = setTimeout(() => rej(new Error(`${what}: no result after ${ms} ms (a hang?)`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

const REASONS = new Set<string>(REASON_CODES);

/** Runs one micro-batch and checks the invariants; returns its outcome counts. */
async function checkChunk(rt: TopicRuntime, msgs: InMessage[]) {
  const t0 = performance.now();
  const r = await withLimit(processChunk(rt, 'fuzz.in', 0, msgs), CHUNK_LIMIT_MS, `processChunk of ${msgs.length}`);
  const ms = performance.now() - t0;
  const answers = [...r.outputs.map((o) => o.offset), ...r.deadLetters.map((d) => d.offset)];
  assert.equal(answers.length, msgs.length, 'one answer per input');
  assert.deepEqual(new Set(answers), new Set(msgs.map((m) => m.offset)), 'every offset answered exactly once');
  for (const d of r.deadLetters) assert.ok(REASONS.has(d.reason), `known reason code: ${d.reason}`);
  const outMsgs = r.out.get(rt.settings.output) ?? [];
  const dlMsgs = r.out.get(rt.settings.deadLetter) ?? [];
  assert.equal(outMsgs.length, r.outputs.length, 'one output message per output');
  assert.equal(dlMsgs.length, r.deadLetters.length, 'one dead-letter message per dead letter');
  for (const o of r.outputs) assert.ok(Object.values(o.verdict.scores).every(Number.isFinite) && Number.isFinite(o.verdict.score), 'finite scores');
  // What goes on the wire decodes.
  for (const m of outMsgs) assert.ok(decodeGuardedImage(m.value).ok, 'output decodes as GuardedImage');
  for (const m of dlMsgs) assert.ok(decodeDeadLetter(m.value).ok, 'dead letter decodes as DeadLetter');
  return { ms, outputs: r.outputs.length, deadLetters: r.deadLetters, stageMs: r.stageMs };
}

describe('fuzz: decode and verdict on generated and mutated records', { timeout: 400_000 }, () => {
  const registries = new Map<string, ModelRegistry>();
  const registry = (dir: string) => {
    let r = registries.get(dir);
    if (!r) registries.set(dir, (r = new ModelRegistry(dir)));
    return r;
  };
  let lenient: TopicRuntime;
  let strict: TopicRuntime;
  let h: HostileImages;
  let seeds: Seeds;
  const rejections: unknown[] = [];
  const onRejection = (e: unknown) => rejections.push(e);

  before(async () => {
    process.on('unhandledRejection', onRejection);
    lenient = runtimeFor(undefined, registry);
    strict = runtimeFor(STRICT_IMAGE, registry);
    h = await hostileImages();
    const recs = await samples(40, { adversarialRatio: 0.5, eps: 0.3, seed: 3, idPrefix: 'fuzz' });
    const pngs = recs.slice(0, 8).map((r) => {
      const d = decodeImageRecord(r.value);
      assert.ok(d.ok);
      return d.record.image;
    });
    seeds = {
      images: [...pngs, h.png28, h.jpeg28, h.animatedGif, h.png16, h.alphaPng, h.cmykJpeg, h.tiff, h.webp, h.svg, h.pngBomb, h.nanTiff],
      records: recs.map((r) => r.value),
    };
  });
  after(() => {
    process.off('unhandledRejection', onRejection);
    for (const r of registries.values()) r.dispose();
  });

  test(`${RECORDS} records: no crash, no hang, exactly one output or dead letter each`, { timeout: 380_000 }, async (t) => {
    const arb = fc.array(messageArb(seeds), { minLength: CHUNK, maxLength: CHUNK });
    const runs = Math.ceil(RECORDS / CHUNK);
    let total = 0, outputs = 0, maxMs = 0, totalMs = 0, chunks = 0;
    const reasons = new Map<string, number>();
    const kinds = new Map<string, number>();
    let offset = 0;
    await fc.assert(
      fc.asyncProperty(arb, fc.boolean(), async (gen, useStrict) => {
        const msgs: InMessage[] = gen.map((g) => ({
          key: null,
          value: g.value,
          headers: g.headers,
          offset: String(offset++),
          timestamp: String(Date.now()),
        }));
        const r = await checkChunk(useStrict ? strict : lenient, msgs);
        total += msgs.length;
        outputs += r.outputs;
        chunks++;
        totalMs += r.ms;
        maxMs = Math.max(maxMs, r.ms);
        for (const d of r.deadLetters) reasons.set(d.reason, (reasons.get(d.reason) ?? 0) + 1);
        for (const g of gen) kinds.set(g.kind, (kinds.get(g.kind) ?? 0) + 1);
      }),
      { numRuns: runs, seed: SEED, endOnFailure: true },
    );
    t.diagnostic(`records=${total} in ${chunks} chunks of ${CHUNK}: outputs=${outputs} deadLetters=${total - outputs}; per chunk avg ${(totalMs / chunks).toFixed(0)} ms, max ${maxMs.toFixed(0)} ms`);
    t.diagnostic(`kinds: ${JSON.stringify(Object.fromEntries(kinds))}`);
    t.diagnostic(`dead letters by reason: ${JSON.stringify(Object.fromEntries([...reasons].sort()))}`);
    assert.ok(total >= RECORDS, `at least ${RECORDS} records (${total})`);
    assert.ok(outputs > total * 0.05, 'some mutated records still decode and get verdicts');
    assert.ok(reasons.size >= 8, `many different reasons (${reasons.size})`);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(rejections, [], 'no unhandled rejection');
  });

  test('NaN and Inf samples never reach the model: float TIFFs are refused (strict) or converted to finite pixels (lenient)', async () => {
    const d = await decodeImage(h.nanTiff, lenient.settings.image);
    assert.ok(d.ok, 'lenient policy converts the float TIFF');
    assert.ok(d.pixels.every(Number.isFinite), 'finite pixels');
    const msg = (v: Buffer, o: number): InMessage => ({ key: null, value: v, offset: String(o), timestamp: '0' });
    const rs = await checkChunk(strict, [msg(h.nanTiff, 0)]);
    assert.equal(rs.deadLetters[0]?.reason, 'high_bit_depth');
    const rl = await checkChunk(lenient, [msg(h.nanTiff, 0), msg(h.png28, 1)]);
    assert.equal(rl.outputs, 2, 'converted and judged, with finite scores');
  });

  test('a detector producing non-finite scores dead-letters the record as nan_input', async () => {
    const real = lenient.detector;
    const nanDetector = Object.create(real) as typeof real;
    nanDetector.verdicts = (raw) => real.verdicts(raw).map((v, i) => (i % 2 === 0 ? { ...v, score: NaN, scores: { ...v.scores, combined: NaN } } : v));
    const rt: TopicRuntime = { ...lenient, detector: nanDetector };
    const msgs: InMessage[] = seeds.records.slice(0, 6).map((value, i) => ({ key: null, value, offset: String(i), timestamp: '0' }));
    const r = await checkChunk(rt, msgs);
    assert.equal(r.deadLetters.length, 3);
    assert.ok(r.deadLetters.every((d) => d.reason === 'nan_input'));
    assert.equal(r.outputs, 3);
  });
});

