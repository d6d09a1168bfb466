import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { heatmap, lineChart, rocChart, writeChart } from '../src/report/plot.ts';
import { GAP, HEADER, PAD, gridLayout, imageGrid, labelColumnWidth } from '../src/report/imageGrid.ts';

/** Decodes as PNG, has a size, and is not a single flat colour. */
async function assertRealPng(png: Buffer): Promise<{ width: number; height: number }> {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'PNG signature');
  const meta = await sharp(png).metadata();
  assert.equal(meta.format, 'png');
  assert.ok((meta.width ?? 0) > 0 && (meta.height ?? 0) > 0);
  const stats = await sharp(png).stats();
  assert.ok(stats.channels.some((c) => c.max - c.min > 100), 'image has contrast (not blank)');
  return { width: meta.width!, height: meta.height! };
}

test('lineChart renders SVG with title and series names, and a real PNG', async () => {
  const chart = await lineChart({
    title: 'Robust accuracy vs epsilon',
    xTitle: 'epsilon',
    yTitle: 'accuracy',
    yDomain: [0, 1],
    series: [
      { name: 'undefended', points: [0, 0.1, 0.2, 0.3].map((x) => ({ x, y: 1 - 3 * x })) },
      { name: 'purified', points: [0, 0.1, 0.2, 0.3].map((x) => ({ x, y: 0.97 - x })) },
    ],
  });
  assert.match(chart.svg, /^<svg/);
  for (const s of ['Robust accuracy vs epsilon', 'undefended', 'purified', 'epsilon', 'accuracy']) assert.ok(chart.svg.includes(s), s);
  const { width, height } = await assertRealPng(chart.png);
  assert.ok(width > 600 && height > 300, `2x density: ${width}x${height}`);
});

test('lineChart with one x value (a single-epsilon run) ticks that value, not a collapsed axis', async () => {
  const chart = await lineChart({ title: 'one eps', xTitle: 'epsilon', yTitle: 'accuracy', yDomain: [0, 1], series: [{ name: 'full', points: [{ x: 0.1, y: 0.75 }] }] });
  const ticks = [...chart.svg.matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]!.trim());
  assert.ok(ticks.includes('0.1'), `x tick 0.1 among ${ticks.join('|')}`);
  assert.ok(!ticks.includes('0'), `no collapsed "0" tick among ${ticks.join('|')}`);
});

test('heatmap renders SVG with title and categories, and a real PNG', async () => {
  const chart = await heatmap({
    title: 'Accuracy by K and eps',
    xTitle: 'eps',
    yTitle: 'codebook',
    cells: ['K16', 'K64'].flatMap((y, i) => ['e0', 'e1', 'e2'].map((x, j) => ({ x, y, value: 0.9 - 0.3 * j + 0.05 * i }))),
  });
  for (const s of ['Accuracy by K and eps', 'K16', 'K64', 'e0', 'e2', '0.95']) assert.ok(chart.svg.includes(s), s);
  await assertRealPng(chart.png);
});

test('rocChart renders with AUCs in the legend; writeChart writes .svg and .png', async () => {
  const chart = await rocChart([
    { name: 'recon', auc: 0.9126, points: [{ fpr: 0, tpr: 0 }, { fpr: 0.1, tpr: 0.8 }, { fpr: 1, tpr: 1 }] },
    { name: 'random', auc: 0.5, points: [{ fpr: 0, tpr: 0 }, { fpr: 1, tpr: 1 }] },
  ]);
  assert.ok(chart.svg.includes('recon (AUC 0.913)'));
  assert.ok(chart.svg.includes('random (AUC 0.500)'));
  // Log-scale FPR axis with the 1% operating point marked and readable tick labels.
  assert.ok(chart.svg.includes('false positive rate (log scale)'));
  assert.ok(chart.svg.includes('1% FPR'));
  for (const tick of ['0.1%', '1%', '10%', '100%']) assert.ok(chart.svg.includes(`>${tick}<`), `tick ${tick}`);
  await assertRealPng(chart.png);
  const dir = mkdtempSync(join(tmpdir(), 'vqguard-plot-'));
  try {
    writeChart(join(dir, 'sub', 'roc'), chart);
    assert.equal(readFileSync(join(dir, 'sub', 'roc.svg'), 'utf8'), chart.svg);
    assert.ok(existsSync(join(dir, 'sub', 'roc.png')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rocCurve keeps every threshold below 5% FPR however many thresholds there are', async () => {
  const { rocCurve } = await import('../src/eval/roc.ts');
  const neg = Array.from({ length: 2000 }, (_, i) => i / 2000);
  const pos = Array.from({ length: 2000 }, (_, i) => 0.5 + i / 2000);
  const pts = rocCurve(neg, pos, 20);
  const low = pts.filter((p) => p.fpr > 0 && p.fpr <= 0.05);
  assert.ok(low.length >= 100, `${low.length} points with FPR in (0, 5%]`);
  assert.ok(pts.length < 300, `coarse elsewhere: ${pts.length} points`);
  assert.deepEqual(pts[0], { fpr: 0, tpr: 0 });
  assert.deepEqual(pts.at(-1), { fpr: 1, tpr: 1 });
});

test('imageGrid has the expected pixel dimensions and content', async () => {
  const img = (v: number) => new Float32Array(4 * 5).fill(v); // 4 high, 5 wide, 1 channel
  const rows = [
    { label: 'clean', images: [img(1), img(0), img(0.5)] },
    { label: 'adversarial', images: [img(0), img(1)] },
  ];
  const opts = { height: 4, width: 5, channels: 1, scale: 3, columnLabels: ['a', 'b', 'c'] };
  const png = await imageGrid(rows, opts);
  const { width, height } = await assertRealPng(png);
  const labelW = labelColumnWidth(rows);
  assert.equal(width, PAD + labelW + 3 * 15 + 2 * GAP + PAD);
  assert.equal(height, PAD + HEADER + 2 * 12 + GAP + PAD);
  assert.deepEqual([width, height], [gridLayout(rows, opts).width, gridLayout(rows, opts).height]);

  // Pixels land where the layout says: row 0, col 1 is black; row 0, col 2 mid-grey.
  const L = gridLayout(rows, opts);
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  const at = (x: number, y: number) => data[(y * info.width + x) * info.channels]!;
  assert.equal(at(L.cellLeft(1) + 7, L.cellTop(0) + 5), 0);
  assert.equal(at(L.cellLeft(2) + 7, L.cellTop(0) + 5), 128);
  assert.equal(at(L.cellLeft(0) + 7, L.cellTop(1) + 5), 0);

  // RGB input and no labels at all: no label column, no header.
  const rgb = await imageGrid([{ label: '', images: [new Float32Array(2 * 2 * 3).fill(0.2)] }], { height: 2, width: 2, channels: 3, scale: 4 });
  const meta = await sharp(rgb).metadata();
  assert.deepEqual([meta.width, meta.height], [PAD + 8 + PAD, PAD + 8 + PAD]);
  await assert.rejects(imageGrid([{ label: 'x', images: [new Float32Array(3)] }], opts), /has 3 values, expected 4x5x1/);
});

test('accuracy plots start at 0 unless every value is >= .5, then at the tenth below the lowest', async () => {
  const { accuracyDomain } = await import('../src/eval/report.ts');
  assert.deepEqual(accuracyDomain([0.98, 0.85, 0.9]), [0.8, 1]);
  assert.deepEqual(accuracyDomain([0.98, 0.5]), [0.5, 1]);
  assert.deepEqual(accuracyDomain([0.98, 0.14]), [0, 1]);
  assert.deepEqual(accuracyDomain([0.99, NaN]), [0.9, 1]);
});
