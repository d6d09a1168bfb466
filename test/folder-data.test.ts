/**
 * folder:<dir> datasets: ImageFolder and train/val/test layouts, grey and colour images of odd
 * sizes in PNG/JPEG/WebP, the explicit size policy, class names, and clear refusals.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { FolderDatasetError, loadFolderDataset, parseFolderSpec } from '../src/data/folder.ts';
import { loadDataset, loadDatasetAsync } from '../src/data/load.ts';
import { imageAt, classCounts, take } from '../src/data/dataset.ts';
import { exportFolder } from '../src/data/exportFolder.ts';

let root: string;

/** An image whose every pixel is `rgb` (grey when channels 1), encoded as `fmt`. */
async function solid(file: string, w: number, h: number, channels: 1 | 3, rgb: [number, number, number], fmt: 'png' | 'jpeg' | 'webp' = 'png'): Promise<void> {
  const raw = Buffer.alloc(w * h * channels);
  for (let i = 0; i < w * h; i++) for (let c = 0; c < channels; c++) raw[i * channels + c] = rgb[c]!;
  let p = sharp(raw, { raw: { width: w, height: h, channels } });
  if (channels === 1) p = p.toColourspace('b-w'); // else sharp stores grey as 3-channel sRGB
  p = fmt === 'png' ? p.png() : fmt === 'jpeg' ? p.jpeg({ quality: 95 }) : p.webp({ lossless: true });
  mkdirSync(join(file, '..'), { recursive: true });
  writeFileSync(file, await p.toBuffer());
}

const GREY_LEVELS = [30, 120, 240];

describe('folder datasets', { timeout: 60_000 }, () => {
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'vqguard-folder-'));
    // ImageFolder, grey 13x17 PNGs, 3 classes x 10, each class its own grey level.
    for (const [c, name] of ['ankle', 'bag', 'coat'].entries()) {
      for (let i = 0; i < 10; i++) await solid(join(root, 'grey', name, `${i}.png`), 13, 17, 1, [GREY_LEVELS[c]!, 0, 0]);
    }
    writeFileSync(join(root, 'grey', 'bag', 'notes.txt'), 'not an image, ignored');
    // Split layout, colour, mixed sizes and formats: red / green / blue classes.
    const colours: Record<string, [number, number, number]> = { blue: [0, 0, 255], green: [0, 255, 0], red: [255, 0, 0] };
    for (const [name, rgb] of Object.entries(colours)) {
      for (let i = 0; i < 6; i++) await solid(join(root, 'colour', 'train', name, `${i}.jpg`), 31 + i, 23, 3, rgb, 'jpeg');
      await solid(join(root, 'colour', 'val', name, 'v.webp'), 40, 40, 3, rgb, 'webp');
      await solid(join(root, 'colour', 'test', name, 't.png'), 9, 11, 3, rgb, 'png');
    }
    // Grey and colour mixed.
    await solid(join(root, 'mixed', 'a', '0.png'), 8, 8, 1, [200, 0, 0]);
    await solid(join(root, 'mixed', 'a', '1.png'), 8, 8, 1, [100, 0, 0]);
    await solid(join(root, 'mixed', 'b', '0.png'), 8, 8, 3, [255, 128, 0]);
    await solid(join(root, 'mixed', 'b', '1.png'), 8, 8, 3, [0, 128, 255]);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  test('ImageFolder of grey 13x17 PNGs: stratified split, class names, exact pixels', async () => {
    const { data, summary } = await loadFolderDataset(join(root, 'grey'), { seed: 3 });
    assert.equal(summary.layout, 'imagefolder');
    assert.deepEqual(data.classNames, ['ankle', 'bag', 'coat']);
    assert.equal(data.numClasses, 3);
    assert.deepEqual([data.train.height, data.train.width, data.train.channels], [17, 13, 1]);
    // 10 per class: round(2) test, round(1) val, 7 train.
    assert.deepEqual(classCounts(data.train, 3), [7, 7, 7]);
    assert.deepEqual(classCounts(data.validation, 3), [1, 1, 1]);
    assert.deepEqual(classCounts(data.test, 3), [2, 2, 2]);
    assert.equal(summary.files, 30);
    assert.equal(summary.resized, 0);
    for (const set of [data.train, data.validation, data.test]) {
      for (let i = 0; i < set.n; i++) {
        const px = imageAt(set, i);
        const want = GREY_LEVELS[set.labels[i]!]! / 255;
        assert.ok(px.every((v) => Math.abs(v - want) < 1e-6), `label ${set.labels[i]} pixels`);
      }
    }
    // Same seed, same split; another seed, another order.
    const again = await loadFolderDataset(join(root, 'grey'), { seed: 3 });
    assert.deepEqual(again.data.train.labels, data.train.labels);
    assert.deepEqual(again.data.train.images, data.train.images);
  });

  test('train/val/test of colour JPEG, WebP and PNG of several sizes: refused without a size, resized with one', async () => {
    await assert.rejects(() => loadFolderDataset(join(root, 'colour')), (e: Error) => {
      assert.ok(e instanceof FolderDatasetError);
      assert.match(e.message, /8 different sizes .*choose a size and a resize policy/);
      return true;
    });
    await assert.rejects(() => loadFolderDataset(join(root, 'colour'), { height: 24, width: 20 }), /images are not 20x24 .* resize is 'reject'/);
    const { data, summary } = await loadFolderDataset(join(root, 'colour'), { height: 24, width: 20, resize: 'fill' });
    assert.equal(summary.layout, 'split');
    assert.deepEqual(data.classNames, ['blue', 'green', 'red']);
    assert.deepEqual([data.train.n, data.validation.n, data.test.n], [18, 3, 3], 'val/ and test/ used as given');
    assert.deepEqual([data.test.height, data.test.width, data.test.channels], [24, 20, 3]);
    assert.equal(summary.resized, 24);
    for (const set of [data.train, data.validation, data.test]) {
      for (let i = 0; i < set.n; i++) {
        const px = imageAt(set, i);
        const want = { 0: [0, 0, 1], 1: [0, 1, 0], 2: [1, 0, 0] }[set.labels[i]! as 0 | 1 | 2];
        // centre pixel (JPEG is lossy: a few levels of tolerance)
        const o = (12 * 20 + 10) * 3;
        for (let c = 0; c < 3; c++) assert.ok(Math.abs(px[o + c]! - want[c]!) < 0.05, `class ${set.labels[i]} channel ${c}: ${px[o + c]}`);
      }
    }
    // The same through the dataset spec.
    const viaSpec = await loadDatasetAsync(`folder:${join(root, 'colour')}?size=24x20&resize=cover&colour=grey`);
    assert.deepEqual([viaSpec.train.height, viaSpec.train.width, viaSpec.train.channels], [24, 20, 1]);
    assert.equal(viaSpec.name, `folder:${join(root, 'colour')}?size=24x20&resize=cover&colour=grey`);
  });

  test('grey and colour mixed: colour auto gives RGB, grey images get R = G = B', async () => {
    const { data } = await loadFolderDataset(join(root, 'mixed'), { validationFraction: 0, testFraction: 0 });
    assert.equal(data.train.channels, 3);
    for (let i = 0; i < data.train.n; i++) {
      const px = imageAt(data.train, i);
      if (data.train.labels[i] === 0) assert.ok(px[0] === px[1] && px[1] === px[2] && px[0]! > 0.3);
      else assert.ok(Math.abs(px[1]! - 128 / 255) < 0.01 && px[0] !== px[2]);
    }
    const grey = await loadFolderDataset(join(root, 'mixed'), { validationFraction: 0, testFraction: 0, colour: 'grey' });
    assert.equal(grey.data.train.channels, 1);
  });

  test('clear refusals', async () => {
    const bad = join(root, 'bad');
    await solid(join(bad, 'loose.png'), 4, 4, 1, [1, 0, 0]);
    await solid(join(bad, 'a', '0.png'), 4, 4, 1, [1, 0, 0]);
    await assert.rejects(() => loadFolderDataset(bad), /1 images sit directly in .*one sub-folder per class/);
    await assert.rejects(() => loadFolderDataset(join(root, 'nope')), /does not exist/);
    const one = join(root, 'one');
    await solid(join(one, 'only', '0.png'), 4, 4, 1, [1, 0, 0]);
    await assert.rejects(() => loadFolderDataset(one), /at least 2/);
    const corrupt = join(root, 'corrupt');
    for (const c of ['a', 'b']) for (let i = 0; i < 3; i++) await solid(join(corrupt, c, `${i}.png`), 4, 4, 1, [9, 0, 0]);
    writeFileSync(join(corrupt, 'b', '2.png'), Buffer.from('\x89PNG\r\n\x1a\n not really'));
    await assert.rejects(() => loadFolderDataset(corrupt, { validationFraction: 0, testFraction: 0 }), /corrupt[\\/]b[\\/]2\.png/);
    const stray = join(root, 'stray');
    for (const c of ['a', 'b']) for (let i = 0; i < 3; i++) await solid(join(stray, 'train', c, `${i}.png`), 4, 4, 1, [9, 0, 0]);
    await solid(join(stray, 'test', 'zebra', '0.png'), 4, 4, 1, [9, 0, 0]);
    await assert.rejects(() => loadFolderDataset(stray), /class folder 'zebra' is not among the training classes/);
    assert.throws(() => loadDataset(`folder:${one}`), /loadDatasetAsync/);
    assert.throws(() => parseFolderSpec('folder:/x?size=32'), /size must be HxW/);
    assert.throws(() => parseFolderSpec('folder:/x?resize=squash'), /resize must be/);
    assert.throws(() => parseFolderSpec('folder:/x?colur=rgb'), /unknown option 'colur'/);
  });

  test('the committed colour fixture (fashion-on-photos, 32x32 RGB) loads with its class names', async () => {
    const { data, summary } = await loadFolderDataset(join(import.meta.dirname, 'fixtures', 'colour-folder'));
    assert.equal(summary.layout, 'split');
    assert.deepEqual([data.train.height, data.train.width, data.train.channels], [32, 32, 3]);
    assert.deepEqual([data.train.n, data.validation.n, data.test.n], [30, 10, 10]);
    assert.deepEqual(data.classNames, ['ankle-boot', 'bag', 'coat', 'dress', 'pullover', 'sandal', 'shirt', 'sneaker', 't-shirt', 'trouser']);
    assert.deepEqual(classCounts(data.train, 10), new Array(10).fill(3));
    // Colour: the channels differ (not a grey image stored as RGB).
    const px = imageAt(data.train, 0);
    let diff = 0;
    for (let i = 0; i < px.length; i += 3) diff += Math.abs(px[i]! - px[i + 1]!) + Math.abs(px[i + 1]! - px[i + 2]!);
    assert.ok(diff / (px.length / 3) > 0.02, `mean channel difference ${diff / (px.length / 3)}`);
  });

  test('export to a folder tree and load it back: same pixels, labels and class names', async () => {
    const src = loadDataset('mnist', { seed: 1 });
    const small = { ...src, train: take(src.train, 40), validation: take(src.validation, 10), test: take(src.test, 10) };
    const out = join(root, 'exported');
    const names = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine'];
    await exportFolder(small, out, { classNames: names });
    await assert.rejects(() => exportFolder(small, out), /not empty/);
    const { data } = await loadFolderDataset(out);
    assert.deepEqual([...names].sort(), data.classNames);
    for (const [a, b] of [[small.train, data.train], [small.validation, data.validation], [small.test, data.test]] as const) {
      assert.equal(b.n, a.n);
      // The folder order differs (grouped by class); compare as multisets of (class name, pixels).
      const key = (set: typeof a, i: number, classes: readonly string[]) => `${classes[set.labels[i]!]}:${Array.from(imageAt(set, i), (v) => Math.round(v * 255)).join(',')}`;
      const ka = Array.from({ length: a.n }, (_, i) => key(a, i, names)).sort();
      const kb = Array.from({ length: b.n }, (_, i) => key(b, i, data.classNames!)).sort();
      assert.deepEqual(kb, ka);
    }
  });
});
