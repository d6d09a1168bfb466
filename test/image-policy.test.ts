// The topic image policy in the guard's own per-batch code (processChunk, with the shipped MNIST
// models and their calibration): by default an image of another size or colour is dead-lettered
// with a reason; a grey image stored as RGB is grey; a topic that asks for resizing gets it, and
// every output says both the original and the model size (headers vqguard-original-size and
// vqguard-model-size). What the downstream consumer receives: with forward-cleaned the purified
// image at the model size and colour, with forward-original the input bytes unchanged.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import sharp from 'sharp';
import { parseConfig } from '../src/config/schema.ts';
import { buildTopicRuntime, type TopicRuntime } from '../src/consumer/topicRuntime.ts';
import { processChunk, type InMessage } from '../src/consumer/processChunk.ts';
import { ModelRegistry } from '../src/models/registry.ts';
import { decodeGuardedImage, decodeImageRecord, encodeImageRecord } from '../src/records/avro.ts';
import { guardTopics, rawConfig, REPO, samples } from './helpers/guard.ts';

describe('image policy in the guard: defaults, resizing, size headers, what goes downstream', { timeout: 120_000 }, () => {
  const registries = new Map<string, ModelRegistry>();
  const registry = (dir: string) => {
    let r = registries.get(dir);
    if (!r) registries.set(dir, (r = new ModelRegistry(dir)));
    return r;
  };
  const runtime = (image?: Record<string, unknown>, action?: 'forward-cleaned' | 'forward-original'): TopicRuntime => {
    const raw = rawConfig(guardTopics('policy'), { brokers: ['127.0.0.1:9'], action });
    if (image) (raw.topics as Record<string, unknown>[])[0]!.image = image;
    return buildTopicRuntime(parseConfig(raw).topics[0]!, registry, REPO);
  };
  let digit: Buffer; // a 28x28 grey MNIST test digit (PNG)
  let offset = 0;
  const msg = (id: string, image: Buffer): InMessage => ({
    key: Buffer.from(id),
    value: encodeImageRecord({ id, contentType: 'image/png', image, producedAt: 1 }),
    offset: String(offset++),
    timestamp: '1',
  });

  before(async () => {
    const [rec] = await samples(1, { adversarialRatio: 0, seed: 5, idPrefix: 'policy' });
    const d = decodeImageRecord(rec!.value);
    assert.ok(d.ok);
    digit = d.record.image;
  });
  after(() => {
    for (const r of registries.values()) r.dispose();
  });

  async function variants() {
    const px = await sharp(digit).toColourspace('b-w').raw().toBuffer();
    const rgbOf = (f: (v: number, i: number) => [number, number, number]) => Buffer.from(Array.from(px).flatMap((v, i) => f(v, i)));
    return {
      grey28: digit,
      greyAsRgb28: await sharp(rgbOf((v) => [v, v, v]), { raw: { width: 28, height: 28, channels: 3 } }).png().toBuffer(),
      tinted28: await sharp(rgbOf((v) => [v, v, Math.round(v / 2)]), { raw: { width: 28, height: 28, channels: 3 } }).png().toBuffer(),
      colour224: await sharp(digit).resize(224, 224).toColourspace('srgb').tint('#c04020').png().toBuffer(),
    };
  }

  test('defaults: another size -> size_mismatch, colour -> colour_mismatch, RGB-stored grey passes; headers give both sizes', async () => {
    const v = await variants();
    assert.equal((await sharp(v.greyAsRgb28).metadata()).channels, 3);
    const rt = runtime();
    assert.deepEqual([rt.settings.image.resize, rt.settings.image.colourMismatch], ['reject', 'reject']);
    const r = await processChunk(rt, 'policy.in', 0, [msg('grey', v.grey28), msg('grey-as-rgb', v.greyAsRgb28), msg('tinted', v.tinted28), msg('big', v.colour224)]);
    assert.deepEqual(new Map(r.deadLetters.map((d) => [d.id, d.reason])), new Map([['tinted', 'colour_mismatch'], ['big', 'size_mismatch']]));
    assert.deepEqual(r.outputs.map((o) => o.id), ['grey', 'grey-as-rgb']);
    const out = r.out.get(rt.settings.output)!;
    assert.deepEqual(out.map((m) => [String(m.key), m.headers?.['vqguard-original-size'], m.headers?.['vqguard-model-size']]), [
      ['grey', '28x28x1', '28x28x1'],
      ['grey-as-rgb', '28x28x3', '28x28x1'],
    ]);
    // The same digit grey or grey-stored-as-RGB gets the same verdict.
    assert.equal(r.outputs[0]!.verdict.score.toFixed(6), r.outputs[1]!.verdict.score.toFixed(6));
  });

  test('resize: fill + colourMismatch: convert: a 224x224 colour image is guarded at 28x28 grey, and the output says so', async () => {
    const v = await variants();
    for (const action of ['forward-cleaned', 'forward-original'] as const) {
      const rt = runtime({ width: 28, height: 28, colour: 'grey', resize: 'fill', colourMismatch: 'convert' }, action);
      const r = await processChunk(rt, 'policy.in', 0, [msg('big', v.colour224)]);
      assert.deepEqual(r.deadLetters, []);
      const [m] = r.out.get(rt.settings.output)!;
      assert.equal(m!.headers?.['vqguard-original-size'], '224x224x3');
      assert.equal(m!.headers?.['vqguard-model-size'], '28x28x1');
      const g = decodeGuardedImage(m!.value);
      assert.ok(g.ok);
      assert.deepEqual([g.record.width, g.record.height, g.record.action], [28, 28, action]);
      const meta = await sharp(g.record.image).metadata();
      if (action === 'forward-cleaned') {
        // The purified image at the model size and colour: not the original's.
        assert.deepEqual([meta.width, meta.height, meta.channels, g.record.contentType], [28, 28, 1, 'image/png']);
      } else {
        // The input bytes, unchanged.
        assert.deepEqual(g.record.image, v.colour224);
        assert.deepEqual([meta.width, meta.height], [224, 224]);
      }
    }
  });
});
