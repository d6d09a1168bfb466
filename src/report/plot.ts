/**
 * Charts for reports: a Vega-Lite spec, compiled to Vega, rendered headless to SVG (View with
 * renderer 'none', then toSVG()), then rasterised to PNG by sharp (librsvg) at 2x density.
 *
 * Text: without node-canvas, vega estimates text widths from character counts; that only
 * affects layout (label spacing, legend width), and the SVG text itself is drawn by librsvg with
 * a real font. We name DejaVu Sans first (present on Debian), falling back to generic sans-serif.
 */
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import sharp from 'sharp';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export interface Chart {
  svg: string;
  png: Buffer;
}

export interface Point {
  x: number;
  y: number;
}

export interface LineChartOptions {
  title: string;
  xTitle: string;
  yTitle: string;
  series: { name: string; points: Point[] }[];
  yDomain?: [number, number];
  width?: number;
  height?: number;
  /**
   * x-axis tick labels `<x> (<x * factor>)`: with 10, pixel epsilon with the source paper's
   * own axis labels beside it (the paper plots pixel epsilon x 10: 0.3 reads "0.3 (3.0)").
   */
  xSecondaryFactor?: number;
}

/** Vega expression for `<value> (<value * factor>)` tick labels. */
export function secondaryLabelExpr(factor: number): string {
  return `format(datum.value, '~g') + ' (' + format(datum.value * ${factor}, '.1f') + ')'`;
}

export interface HeatmapOptions {
  title: string;
  xTitle: string;
  yTitle: string;
  cells: { x: string; y: string; value: number }[];
  /** Print each cell's value inside it (default true). */
  showValues?: boolean;
  /** printf-like d3 format for the values (default '.3~g'). */
  valueFormat?: string;
}

export interface RocCurve {
  name: string;
  points: { fpr: number; tpr: number }[];
  auc: number;
}

const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';
const DENSITY = 144; // 2x the SVG's 72 dpi

const CONFIG = {
  font: FONT,
  background: 'white',
  padding: 12,
  title: { fontSize: 15, font: FONT, anchor: 'start' as const, offset: 10 },
  axis: { labelFont: FONT, titleFont: FONT, labelFontSize: 11, titleFontSize: 12, gridColor: '#e4e4e4' },
  legend: { labelFont: FONT, titleFont: FONT, labelFontSize: 11, titleFontSize: 12, labelLimit: 320 },
  view: { stroke: '#bbb' },
};

/** Render a Vega-Lite spec to SVG and PNG. */
export async function renderVegaLite(spec: TopLevelSpec): Promise<Chart> {
  const vgSpec = compile({ ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: 'none', logLevel: vega.Warn });
  try {
    const svg = await view.toSVG();
    const png = await sharp(Buffer.from(svg), { density: DENSITY }).png().toBuffer();
    return { svg, png };
  } finally {
    view.finalize();
  }
}

export function lineChart(opts: LineChartOptions): Promise<Chart> {
  const values = opts.series.flatMap((s) => s.points.map((p) => ({ series: s.name, x: p.x, y: p.y })));
  const order = opts.series.map((s) => s.name);
  // One x value (a single-epsilon run): Vega would collapse the axis to a point and label it badly
  // (0.1 drawn as "0"); centre it in a padded domain and tick it at its own value.
  const xs = [...new Set(values.map((v) => v.x))];
  const pad = xs.length === 1 ? Math.abs(xs[0]!) / 2 || 1 : 0;
  const single = xs.length === 1 ? { scale: { domain: [xs[0]! - pad, xs[0]! + pad] }, ...(opts.xSecondaryFactor ? {} : { axis: { values: xs } }) } : {};
  return renderVegaLite({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: opts.title,
    width: opts.width ?? 480,
    height: opts.height ?? 300,
    data: { values },
    mark: { type: 'line', point: { size: 30 }, strokeWidth: 2 },
    encoding: {
      x: {
        field: 'x', type: 'quantitative', title: opts.xTitle, scale: { zero: false },
        ...(opts.xSecondaryFactor
          ? { axis: { values: [...new Set(values.map((v) => v.x))].sort((a, b) => a - b), labelExpr: secondaryLabelExpr(opts.xSecondaryFactor), labelAngle: -35, labelOverlap: false } }
          : {}),
        ...single,
      },
      y: {
        field: 'y',
        type: 'quantitative',
        title: opts.yTitle,
        scale: opts.yDomain ? { domain: opts.yDomain, clamp: true } : { zero: false },
      },
      color: { field: 'series', type: 'nominal', title: null, sort: order },
    },
  });
}

export function heatmap(opts: HeatmapOptions): Promise<Chart> {
  const xs = unique(opts.cells.map((c) => c.x));
  const ys = unique(opts.cells.map((c) => c.y));
  const vals = opts.cells.map((c) => c.value).filter(Number.isFinite);
  // Value labels: white on the dark (low) half of viridis, black on the light half.
  const mid = vals.length ? (Math.min(...vals) + Math.max(...vals)) / 2 : 0;
  const text = {
    mark: { type: 'text', fontSize: 11 },
    encoding: {
      text: { field: 'value', type: 'quantitative', format: opts.valueFormat ?? '.3~g' },
      color: { condition: { test: `datum.value < ${mid}`, value: 'white' }, value: 'black' },
    },
  };
  return renderVegaLite({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: opts.title,
    data: { values: opts.cells.map((c) => ({ ...c })) },
    width: Math.max(160, 56 * xs.length),
    height: Math.max(120, 32 * ys.length),
    encoding: {
      x: { field: 'x', type: 'nominal', title: opts.xTitle, sort: xs, axis: { labelAngle: 0 } },
      y: { field: 'y', type: 'nominal', title: opts.yTitle, sort: ys },
    },
    layer: [
      { mark: 'rect', encoding: { color: { field: 'value', type: 'quantitative', title: null, scale: { scheme: 'viridis' } } } },
      ...(opts.showValues === false ? [] : [text]),
    ],
  } as TopLevelSpec);
}

/**
 * ROC curves with a log-scale FPR axis (from `minFpr`, default 1e-3, to 1), so the low-FPR end
 * where a guard operates is readable; a dashed rule marks the 1% FPR operating point. Points at
 * FPR 0 are drawn at `minFpr` (a log axis has no 0). The chance line y = x is drawn as a curve.
 */
export function rocChart(curves: RocCurve[], opts: { title?: string; minFpr?: number } = {}): Promise<Chart> {
  const minFpr = opts.minFpr ?? 1e-3;
  const label = (c: RocCurve) => `${c.name} (AUC ${c.auc.toFixed(3)})`;
  const values = curves.flatMap((c) => c.points.map((p, i) => ({ series: label(c), fpr: Math.max(minFpr, p.fpr), tpr: p.tpr, i })));
  const chance = Array.from({ length: 41 }, (_, i) => minFpr ** (1 - i / 40)).map((a) => ({ a }));
  const x = { field: 'fpr', type: 'quantitative', title: 'false positive rate (log scale)', scale: { type: 'log', domain: [minFpr, 1] }, axis: { values: [0.001, 0.01, 0.1, 1].filter((v) => v >= minFpr), format: '~%' } };
  return renderVegaLite({
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: opts.title ?? 'ROC',
    width: 340,
    height: 340,
    layer: [
      {
        data: { values: chance },
        mark: { type: 'line', strokeDash: [4, 4], color: '#999', strokeWidth: 1 },
        encoding: { x: { ...x, field: 'a' }, y: { field: 'a', type: 'quantitative', scale: { domain: [0, 1] } } },
      },
      {
        data: { values: [{ fpr: 0.01 }] },
        mark: { type: 'rule', color: '#555', strokeDash: [2, 3], strokeWidth: 1 },
        encoding: { x: { ...x } },
      },
      {
        data: { values: [{ fpr: 0.01, tpr: 0.02, t: '1% FPR' }] },
        mark: { type: 'text', align: 'left', dx: 4, fontSize: 11, color: '#444' },
        encoding: { x: { ...x }, y: { field: 'tpr', type: 'quantitative' }, text: { field: 't' } },
      },
      {
        data: { values },
        mark: { type: 'line', strokeWidth: 2, interpolate: 'step-after' },
        encoding: {
          x,
          y: { field: 'tpr', type: 'quantitative', title: 'true positive rate', scale: { domain: [0, 1] } },
          color: { field: 'series', type: 'nominal', title: null, sort: curves.map(label), legend: { orient: 'bottom-right', direction: 'vertical' } },
          order: { field: 'i', type: 'quantitative' },
        },
      },
    ],
  } as TopLevelSpec);
}

/** Write `<path>.svg` and `<path>.png`, creating the directory. */
export function writeChart(pathWithoutExt: string, chart: Chart): void {
  mkdirSync(dirname(pathWithoutExt), { recursive: true });
  writeFileSync(`${pathWithoutExt}.svg`, chart.svg);
  writeFileSync(`${pathWithoutExt}.png`, chart.png);
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}
