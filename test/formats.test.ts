/**
 * Classifier formats: each loads from a committed fixture trained outside vqguard
 * (scripts/external-classifier/make.py: Keras on Fashion-MNIST, exported as TF.js Layers, TF.js
 * Graph, SavedModel and ONNX), reproduces the source model's probabilities, and refuses a
 * declaration the model contradicts with an error that names the key.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Tensor4D } from '@tensorflow/tfjs-node';
import { tf } from '../src/backend/tf.ts';
import {
  bundleDeclaration,
  compareToReference,
  DeclarationError,
  loadClassifier,
  loadClassifierFile,
  readDeclarationFile,
  readReference,
  resolveClassifierSpec,
  type ClassifierDeclaration,
} from '../src/models/formats/index.ts';
import { loadBundle } from '../src/models/bundle.ts';
import type { Classifier } from '../src/detect/classifier.ts';

const FIX = join(import.meta.dirname, 'fixtures', 'external', 'fashion');
const FORMATS = ['tfjs-layers', 'tfjs-graph', 'savedmodel', 'onnx'] as const;
// Stated tolerance: every format reproduces the Keras probabilities to within 1e-4 (measured: <= 1.4e-6).
const TOL = 1e-4;

const ref = readReference(join(FIX, 'reference.json'));
const decl = (f: (typeof FORMATS)[number]): ClassifierDeclaration => readDeclarationFile(join(FIX, `${f}.yaml`));

async function refused(d: unknown, key: string, pattern: RegExp): Promise<void> {
  await assert.rejects(
    () => loadClassifier(d as ClassifierDeclaration),
    (e: unknown) => {
      assert.ok(e instanceof DeclarationError, `DeclarationError expected, got ${String(e)}`);
      assert.equal(e.key, key, e.message);
      assert.match(e.message, new RegExp(`classifier declaration: ${key.replace('.', '\\.')}:`));
      assert.match(e.message, pattern);
      return true;
    },
  );
}

describe('classifier formats', { timeout: 120_000 }, () => {
  const probs = new Map<string, Float32Array>();

  for (const f of FORMATS) {
    test(`${f}: loads from the fixture and reproduces the source model's probabilities`, async () => {
      const c = await loadClassifierFile(join(FIX, `${f}.yaml`));
      try {
        assert.equal(c.referenceCheck?.n, 64);
        assert.ok(c.referenceCheck!.maxAbsDiff <= TOL, `max |p - p_keras| = ${c.referenceCheck!.maxAbsDiff}`);
        assert.equal(c.referenceCheck!.top1Agreement, 1);
        assert.deepEqual([c.height, c.width, c.channels], [28, 28, 1]);
        assert.equal(c.classes[9], 'ankle-boot');
        const x = tf.tensor4d(ref.images, [ref.n, 28, 28, 1]);
        const p = await c.probabilities(x);
        assert.deepEqual(p.shape, [64, 10]);
        probs.set(f, (await p.data()) as Float32Array);
        // Independent check of the same thing, and that the model is a real classifier.
        const check = compareToReference(probs.get(f)!, ref, TOL);
        assert.ok(check.maxAbsDiff <= TOL);
        let correct = 0;
        for (let i = 0; i < ref.n; i++) {
          const row = Array.from(probs.get(f)!.subarray(i * 10, i * 10 + 10));
          if (row.indexOf(Math.max(...row)) === ref.labels![i]) correct++;
        }
        assert.ok(correct / ref.n > 0.7, `accuracy on the 64 reference images ${correct / ref.n}`);
        // Gradients: TF.js formats have them, SavedModel and ONNX are forward only.
        const white = f.startsWith('tfjs');
        assert.equal(c.hasGradients, white);
        assert.equal(typeof c.logits, white ? 'function' : 'undefined');
        // A synchronous forward pass everywhere but ONNX, giving the same probabilities.
        assert.equal(typeof c.forward, f === 'onnx' ? 'undefined' : 'function');
        if (c.forward) {
          const fp = tf.softmax(c.forward(x));
          const d = tf.max(tf.abs(tf.sub(fp, p)));
          assert.ok((await d.data())[0]! < 1e-6);
          tf.dispose([fp, d]);
        }
        if (c.logits) {
          const g = tf.grad((z) => c.logits!(z as Tensor4D).max(1).sum())(x.slice(0, 4));
          assert.deepEqual(g.shape, [4, 28, 28, 1]);
          assert.ok((await g.abs().sum().data())[0]! > 0, 'input gradient is non-zero');
          // softmax(logits) == probabilities
          const sp = tf.softmax(c.logits(x.slice(0, 4)));
          const d = tf.max(tf.abs(tf.sub(sp, p.slice(0, 4))));
          assert.ok((await d.data())[0]! < 1e-6);
        }
        tf.dispose([x, p]);
      } finally {
        c.dispose();
      }
    });
  }

  test('the four formats agree with each other', () => {
    assert.equal(probs.size, FORMATS.length, 'the per-format tests ran first');
    for (const a of FORMATS) {
      for (const b of FORMATS) {
        const pa = probs.get(a)!;
        const pb = probs.get(b)!;
        let m = 0;
        for (let i = 0; i < pa.length; i++) m = Math.max(m, Math.abs(pa[i]! - pb[i]!));
        assert.ok(m <= 1e-5, `${a} vs ${b}: ${m}`);
      }
    }
  });

  test('ONNX declared NHWC (the file is NCHW): input.layout', async () => {
    const d = decl('onnx');
    await refused({ ...d, input: { ...d.input, layout: 'NHWC' } }, 'input.layout', /\[N, 1, 28, 28\].*NCHW/);
  });

  test('wrong channel count: input.channels', async () => {
    const d = decl('tfjs-layers');
    await refused({ ...d, input: { ...d.input, channels: 3 } }, 'input.channels', /\[N, 28, 28, 1\]/);
    const o = decl('onnx');
    await refused({ ...o, input: { ...o.input, height: 32 } }, 'input.height', /expects \[N, 1, 32, 28\]/);
  });

  test('wrong value range is caught by the reference check: input.range', async () => {
    for (const f of ['tfjs-graph', 'onnx', 'savedmodel'] as const) {
      const d = decl(f);
      await refused({ ...d, input: { ...d.input, range: '0-1' } }, 'input.range', /only with input\.range: "0-255"/);
    }
  });

  test('logits declared as probabilities: output.kind', async () => {
    const d = decl('onnx');
    const { reference: _r, ...noRef } = d;
    await refused({ ...noRef, output: { ...d.output, kind: 'probabilities' } }, 'output.kind', /seems to return logits/);
  });

  test('tensor names, class count, signature, format', async () => {
    const d = decl('onnx');
    await refused({ ...d, input: { ...d.input, name: 'pixels' } }, 'input.name', /no input 'pixels'.*'image'/);
    await refused({ ...d, output: { ...d.output, name: 'probs' } }, 'output.name', /no output 'probs'.*'logits'/);
    await refused({ ...d, classes: d.classes.slice(0, 9) }, 'classes', /10 classes.*lists 9/);
    const s = decl('savedmodel');
    await refused({ ...s, signature: 'predict' }, 'signature', /no signature 'predict'.*serving_default/);
    await refused({ ...s, classes: [...s.classes, 'hat'] }, 'classes', /10 scores per image.*11 classes/);
    const l = decl('tfjs-layers');
    await refused({ ...l, format: 'tfjs-graph' }, 'format', /layers model, declared tfjs-graph/);
    await refused({ ...l, input: { ...l.input, layout: 'NWHC' } }, 'input.layout', /NHWC.*NCHW/);
    await refused({ ...l, input: { ...l.input, range: { mean: [0.5, 0.5], std: [0.2, 0.2] } } }, 'input.range', /2 values but input.channels is 1/);
  });

  test('a SavedModel given the wrong layout fails on the probe batch, naming the input', async () => {
    const s = decl('savedmodel');
    const { reference: _r, ...noRef } = s;
    await refused({ ...noRef, input: { ...s.input, layout: 'NCHW' } }, 'input', /probe batch of shape \[N, 1, 28, 28\]/);
  });

  test('mean/std normalisation: mean 0, std 1/255 is the same as range 0-255', async () => {
    const d = decl('tfjs-layers');
    const c = await loadClassifier({ ...d, input: { ...d.input, range: { mean: [0], std: [1 / 255] } } });
    try {
      assert.ok(c.referenceCheck!.maxAbsDiff <= TOL);
    } finally {
      c.dispose();
    }
  });

  test('a vqguard bundle behind the same interface gives the Classifier its own probabilities', async () => {
    const dir = join(import.meta.dirname, '..', 'models', 'fashion-mnist', 'classifier');
    const c = await loadClassifier(bundleDeclaration(dir, decl('onnx').classes));
    const { model } = loadBundle<Classifier>(dir);
    try {
      assert.equal(c.hasGradients, true);
      const x = tf.tensor4d(ref.images, [ref.n, 28, 28, 1]);
      const a = await (await c.probabilities(x)).data();
      const b = await model.probabilities(x).data();
      let m = 0;
      for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
      assert.ok(m < 1e-6, `max diff ${m}`);
      x.dispose();
    } finally {
      c.dispose();
      model.dispose();
    }
  });

  test('--classifier values: declaration files, <format>:<path> with the declaration beside it, bundles', async () => {
    const sm = await resolveClassifierSpec(`savedmodel:${join(FIX, 'savedmodel')}`);
    assert.equal(sm.format, 'savedmodel');
    assert.equal(sm.input.range, '0-255');
    const g = await resolveClassifierSpec(`tfjs:${join(FIX, 'tfjs-graph')}`);
    assert.equal(g.format, 'tfjs-graph');
    const y = await resolveClassifierSpec(join(FIX, 'onnx.yaml'));
    assert.equal(y.input.layout, 'NCHW');
    const b = await resolveClassifierSpec(join(import.meta.dirname, '..', 'models', 'mnist', 'classifier'));
    assert.equal(b.format, 'vqguard-bundle');
    assert.equal(b.classes.length, 10);
    // No declaration beside model.onnx: refused with a template from the model's own metadata.
    await assert.rejects(
      () => resolveClassifierSpec(`onnx:${join(FIX, 'model.onnx')}`),
      (e: Error) => {
        assert.match(e.message, /has no declaration; write .*model\.onnx\.yaml/);
        assert.match(e.message, /path: model\.onnx/);
        assert.match(e.message, /height: 28, width: 28, channels: 1, layout: NCHW/);
        assert.match(e.message, /name: image/);
        assert.match(e.message, /classes: \[\? 10 names\]/);
        return true;
      },
    );
    await assert.rejects(() => resolveClassifierSpec(`onnx:${join(FIX, 'missing.onnx')}`), /does not exist/);
    await assert.rejects(() => resolveClassifierSpec('keras:model.h5'), /expected a declaration file/);
  });
});

describe('classifier formats: a 32x32 RGB model with mean/std input and softmax output', { timeout: 120_000 }, () => {
  const DIR = join(import.meta.dirname, 'fixtures', 'external', 'colour');
  const cref = readReference(join(DIR, 'reference.json'));
  const cdecl = (f: (typeof FORMATS)[number]): ClassifierDeclaration => readDeclarationFile(join(DIR, `${f}.yaml`));
  const probs = new Map<string, Float32Array>();

  for (const f of FORMATS) {
    test(`${f}: reproduces the source model's probabilities`, async () => {
      const d = cdecl(f);
      assert.equal(d.output.kind, 'probabilities');
      assert.equal(typeof d.input.range, 'object');
      assert.equal(d.input.layout, 'NHWC');
      const c = await loadClassifier(d);
      try {
        assert.ok(c.referenceCheck!.maxAbsDiff <= TOL, `max |p - p_keras| = ${c.referenceCheck!.maxAbsDiff}`);
        assert.equal(c.referenceCheck!.top1Agreement, 1);
        assert.deepEqual([c.height, c.width, c.channels], [32, 32, 3]);
        const x = tf.tensor4d(cref.images, [cref.n, 32, 32, 3]);
        const p = await c.probabilities(x);
        probs.set(f, (await p.data()) as Float32Array);
        if (c.logits) {
          // log p as logits: softmax gives back p, and gradients flow.
          const sp = tf.softmax(c.logits(x));
          const dd = tf.max(tf.abs(tf.sub(sp, p)));
          assert.ok((await dd.data())[0]! < 1e-5);
          const g = tf.grad((z) => c.logits!(z as Tensor4D).max(1).sum())(x.slice(0, 2));
          assert.ok((await g.abs().sum().data())[0]! > 0);
        }
        tf.dispose([x, p]);
      } finally {
        c.dispose();
      }
    });
  }

  test('the four formats agree with each other', () => {
    assert.equal(probs.size, FORMATS.length);
    for (const a of FORMATS) {
      for (const b of FORMATS) {
        let m = 0;
        const pa = probs.get(a)!;
        const pb = probs.get(b)!;
        for (let i = 0; i < pa.length; i++) m = Math.max(m, Math.abs(pa[i]! - pb[i]!));
        assert.ok(m <= 1e-5, `${a} vs ${b}: ${m}`);
      }
    }
  });

  test('probabilities declared as logits, NCHW declared for NHWC, no normalisation', async () => {
    const d = cdecl('onnx');
    const { reference: _r, ...noRef } = d;
    await refused({ ...noRef, output: { ...d.output, kind: 'logits' } }, 'output.kind', /already a probability distribution/);
    await refused({ ...d, input: { ...d.input, layout: 'NCHW' } }, 'input.layout', /\[N, 32, 32, 3\], which is NHWC/);
    await refused({ ...d, input: { ...d.input, range: '0-1' } }, 'reference', /differ from the reference .*check input\.range/);
  });
});

