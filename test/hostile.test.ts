// Hostile inputs through a real guard on a real broker, interleaved with good records: each one
// ends in the dead-letter topic with the reason code the topic's strict image policy gives it,
// and the stream goes on (every good record, before and after, has its output).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import avro from 'avsc';
import { createTopics, getTestBroker, type TestBroker } from './helpers/broker.ts';
import { collect, coverage, decodeResults, guardTopics, LogSink, produce, rawConfig, REPO, samples, waitFor, within, type OutMsg } from './helpers/guard.ts';
import { hostileImages, STRICT_IMAGE } from './helpers/hostile.ts';
import { parseConfig } from '../src/config/schema.ts';
import { Guard, createLogger } from '../src/consumer/guard.ts';
import { encodeDeadLetter, encodeImageRecord } from '../src/records/avro.ts';
import { mulberry32 } from '../src/data/dataset.ts';

interface Case {
  name: string;
  value: Buffer | null;
  headers?: Record<string, string>;
  reason: string | string[];
}

describe('hostile inputs (real broker, strict image policy)', { timeout: 300_000 }, () => {
  let broker: TestBroker;
  before(async () => {
    broker = await getTestBroker();
  });
  after(async () => {
    await broker?.stop();
  });

  test('every hostile record is dead-lettered with its reason; good records around them have outputs', { timeout: 240_000 }, async (t) => {
    const h = await hostileImages();
    const rng = mulberry32(1234);
    const random = Buffer.from(Array.from({ length: 512 }, () => Math.floor(rng() * 256)));
    random[0] = 0x02; // not an image magic byte: read as Avro
    const avroOf = (id: string, image: Buffer, extra: Partial<Parameters<typeof encodeImageRecord>[0]> = {}) =>
      encodeImageRecord({ id, contentType: 'image/png', image, producedAt: Date.now(), ...extra });
    const partialType = avro.Type.forSchema({
      type: 'record',
      name: 'ImageRecord',
      namespace: 'io.vqguard',
      fields: [
        { name: 'id', type: 'string' },
        { name: 'contentType', type: 'string' },
        { name: 'image', type: 'bytes' },
      ],
    });
    const missingFields = partialType.toBuffer({ id: 'missing-fields', contentType: 'image/png', image: h.png28 });
    const wrongSchema = encodeDeadLetter({ id: 'x', reason: 'empty', detail: 'd', original: h.png28, topic: 't', partition: 0, offset: '1', at: 0 });
    const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, 7]), avroOf('framed', h.png28)]);
    const huge = Buffer.concat([h.png28.subarray(0, 16), Buffer.alloc(900_000, 7)]); // 900 KB on the wire, under Kafka's 1 MB
    const limitHeaders = { 'vqguard-max-bytes': '100000000', 'vqguard-max-pixels': '1000000000', maxBytes: '100000000', 'x-vqguard-policy': '{"maxBytes":1e9,"formats":["svg"]}' };
    const pdf = Buffer.from('%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n');

    const cases: Case[] = [
      { name: 'zero bytes', value: Buffer.alloc(0), reason: 'empty' },
      { name: 'null value (tombstone)', value: null, reason: 'empty' },
      { name: 'random bytes', value: random, reason: ['bad_avro', 'schema_mismatch', 'missing_field'] },
      { name: 'truncated PNG', value: h.truncatedPng, reason: 'corrupt_image' },
      { name: 'truncated JPEG', value: h.truncatedJpeg, reason: 'corrupt_image' },
      { name: 'truncated PNG in an ImageRecord', value: avroOf('trunc-in-avro', h.truncatedPng), reason: 'corrupt_image' },
      { name: 'PNG bomb 50000x50000', value: h.pngBomb, reason: 'too_many_pixels' },
      { name: 'PNG bomb in an ImageRecord declaring 28x28', value: avroOf('bomb-declared-small', h.pngBomb, { width: 28, height: 28 }), reason: 'too_many_pixels' },
      { name: 'JPEG declaring 65000x65000', value: h.hugeJpeg, reason: 'too_many_pixels' },
      { name: 'animated GIF', value: h.animatedGif, reason: 'animated_image' },
      { name: '16-bit PNG', value: h.png16, reason: 'high_bit_depth' },
      { name: 'float TIFF with NaN and Inf samples', value: h.nanTiff, reason: 'high_bit_depth' },
      { name: 'CMYK JPEG', value: h.cmykJpeg, reason: 'cmyk_not_allowed' },
      { name: 'PNG with alpha', value: h.alphaPng, reason: 'alpha_not_allowed' },
      { name: 'SVG', value: h.svg, reason: 'format_not_allowed' },
      { name: 'SVG in an ImageRecord claiming image/png', value: avroOf('svg-as-png', h.svg, { contentType: 'image/png' }), reason: 'format_not_allowed' },
      { name: 'WebP (not allowed on this topic)', value: h.webp, headers: { 'content-type': 'image/png' }, reason: 'format_not_allowed' },
      { name: 'PDF in an ImageRecord', value: avroOf('pdf', pdf, { contentType: 'image/png' }), reason: 'unsupported_format' },
      // Bytes of another schema read as an ImageRecord: garbage (bad_avro) or a misfit (schema_mismatch), by where they break.
      { name: 'Avro of another schema (DeadLetter)', value: wrongSchema, reason: ['bad_avro', 'schema_mismatch'] },
      { name: 'ImageRecord with Confluent framing', value: framed, reason: 'schema_mismatch' },
      { name: 'ImageRecord missing its trailing fields', value: missingFields, reason: 'missing_field' },
      { name: 'PNG over maxBytes, headers asking for more', value: h.bigPng, headers: limitHeaders, reason: 'too_large_bytes' },
      { name: 'ImageRecord over maxBytes declaring 28x28', value: avroOf('big-in-avro', h.bigPng, { width: 28, height: 28, attributes: { maxBytes: '1000000000' } }), reason: 'too_large_bytes' },
      { name: '900 KB message', value: huge, reason: 'too_large_bytes' },
      { name: 'bad label header', value: h.png28, headers: { 'vqguard-label': 'NaN' }, reason: 'bad_header' },
    ];

    const good = await samples(60, { adversarialRatio: 0.3, eps: 0.3, seed: 17, idPrefix: 'hostile-good' });
    type Msg = OutMsg & { hostile?: Case; goodId?: string };
    const msgs: Msg[] = [];
    let g = 0;
    const pushGood = (k: number) => {
      for (let i = 0; i < k; i++, g++) msgs.push({ key: good[g]!.id, value: good[g]!.value, partition: 0, goodId: good[g]!.id });
    };
    // Raw good images too (png and jpeg, no Avro), each with an id header.
    const pushRawGood = (name: string, value: Buffer) => msgs.push({ key: name, value, partition: 0, headers: { 'vqguard-id': name }, goodId: name });
    pushGood(2);
    for (const c of cases) {
      msgs.push({ key: `hostile-${c.name}`, value: c.value, headers: c.headers, partition: 0, hostile: c });
      pushGood(2);
    }
    pushRawGood('raw-good-png', h.png28);
    pushRawGood('raw-good-jpeg', h.jpeg28);
    pushRawGood('raw-good-tiff', h.tiff);
    for (const c of cases) msgs.push({ key: `hostile2-${c.name}`, value: c.value, headers: c.headers, partition: 0, hostile: c }); // a run of only hostile ones
    pushGood(good.length - g);

    const topics = guardTopics('hostile');
    await createTopics(broker.brokers, [topics.input, topics.output, topics.deadLetter, topics.alerts], 1);
    // The 900 KB record alone in its produce request (a batch with it would pass Kafka's 1 MB limit).
    const where: { partition: number; offset: string }[] = [];
    let seg: Msg[] = [];
    for (const m of msgs) {
      if (m.value && m.value.length > 100_000) {
        if (seg.length) where.push(...(await produce(broker.brokers, topics.input, seg)));
        where.push(...(await produce(broker.brokers, topics.input, [m])));
        seg = [];
      } else seg.push(m);
    }
    if (seg.length) where.push(...(await produce(broker.brokers, topics.input, seg)));

    const raw = rawConfig(topics, { brokers: broker.brokers, maxBatchSize: 8 });
    (raw.topics as Record<string, unknown>[])[0]!.image = STRICT_IMAGE;
    const sink = new LogSink();
    let answered = 0;
    const guard = new Guard(parseConfig(raw), {
      baseDir: REPO,
      httpPort: 0,
      logger: createLogger(sink),
      events: { onChunk: (_t, _p, r) => (answered += r.outputs.length + r.deadLetters.length) },
    });
    try {
      await within(guard.start(), 60_000, 'guard.start()');
      await waitFor(() => answered >= msgs.length, 150_000, () => `all ${msgs.length} answered (got ${answered})\n${sink.tail(30)}`);
    } finally {
      await within(guard.stop(), 30_000, 'guard.stop()');
    }

    const got = await collect(broker.brokers, [topics.output, topics.deadLetter], (x) => x.length >= msgs.length, { timeoutMs: 30_000, lingerMs: 1000 });
    const r = decodeResults(got, topics);
    const cov = coverage(r);
    assert.equal(cov.size, msgs.length, 'every record answered');
    for (const [k, n] of cov) assert.equal(n, 1, `exactly one answer for ${k}`);
    const dl = new Map(r.deadLetters.map((d) => [d.offset, d]));
    const out = new Map(r.outputs.map((o) => [o.source.offset, o]));
    const byReason = new Map<string, number>();
    msgs.forEach((m, i) => {
      const off = where[i]!.offset;
      if (m.hostile) {
        const d = dl.get(off);
        assert.ok(d, `${m.hostile.name}: dead-lettered`);
        const want = Array.isArray(m.hostile.reason) ? m.hostile.reason : [m.hostile.reason];
        assert.ok(want.includes(d.reason), `${m.hostile.name}: reason ${d.reason} (${d.detail}), expected ${want.join(' | ')}`);
        assert.ok(d.detail.length > 0 && d.detail.length <= 400, `${m.hostile.name}: a short detail`);
        assert.ok(d.original.equals(m.value ?? Buffer.alloc(0)), `${m.hostile.name}: original bytes kept`);
        byReason.set(d.reason, (byReason.get(d.reason) ?? 0) + 1);
      } else {
        const o = out.get(off);
        assert.ok(o, `good record ${m.goodId} has an output (${dl.get(off)?.reason ?? ''} ${dl.get(off)?.detail ?? ''})`);
        assert.equal(o.id, m.goodId);
        assert.ok(Object.values(o.verdict.scores).every(Number.isFinite), 'finite scores');
      }
    });
    const hostile = msgs.filter((m) => m.hostile).length;
    assert.equal(r.deadLetters.length, hostile, 'dead letters only for hostile records');
    t.diagnostic(`records=${msgs.length} hostile=${hostile} (${cases.length} kinds x 2) good=${msgs.length - hostile}; dead letters by reason: ${JSON.stringify(Object.fromEntries([...byReason].sort()))}`);
    // The process took no harm: its memory is not hundreds of MB up after the bombs.
    assert.ok(process.memoryUsage().rss < 3 * 1024 ** 3, `RSS ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB`);
  });
});
