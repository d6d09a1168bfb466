/**
 * A labelled grid of images as one PNG: each row is a label plus images (e.g. clean, adversarial,
 * purified), optionally with column headers. Images are float [0,1], HWC, 1 or 3 channels; they
 * are upscaled by an integer factor (nearest neighbour), placed with sharp's composite on a white
 * canvas, and the text is an SVG overlay composited on top (drawn by librsvg).
 *
 * Layout (pixels): PAD around everything, GAP between cells, a label column of
 * labelColumnWidth(rows) when any row label is non-empty, a HEADER band when columnLabels given.
 */
import sharp from 'sharp';

export interface GridRow {
  label: string;
  images: Float32Array[];
}

export interface GridOptions {
  height: number;
  width: number;
  channels: number;
  /** Integer upscaling factor (nearest neighbour). */
  scale: number;
  columnLabels?: string[];
}

export const PAD = 6;
export const GAP = 2;
export const HEADER = 20;
const FONT_SIZE = 13;
const CHAR_W = 7.8; // DejaVu Sans at 13 px averages about 7.5 px per character

export function labelColumnWidth(rows: GridRow[]): number {
  const longest = Math.max(0, ...rows.map((r) => r.label.length));
  return longest === 0 ? 0 : Math.ceil(longest * CHAR_W) + 10;
}

/** Pixel layout of a grid; exported so callers and tests can predict the PNG size. */
export function gridLayout(rows: GridRow[], opts: GridOptions) {
  const cols = Math.max(opts.columnLabels?.length ?? 0, ...rows.map((r) => r.images.length));
  const cellW = opts.width * opts.scale;
  const cellH = opts.height * opts.scale;
  const labelW = labelColumnWidth(rows);
  const headerH = opts.columnLabels?.length ? HEADER : 0;
  const x0 = PAD + labelW;
  const y0 = PAD + headerH;
  return {
    cols,
    cellW,
    cellH,
    labelW,
    headerH,
    x0,
    y0,
    width: x0 + cols * cellW + Math.max(0, cols - 1) * GAP + PAD,
    height: y0 + rows.length * cellH + Math.max(0, rows.length - 1) * GAP + PAD,
    cellLeft: (c: number) => x0 + c * (cellW + GAP),
    cellTop: (r: number) => y0 + r * (cellH + GAP),
  };
}

/** One image as upscaled 3-channel uint8 raw pixels. */
function toRgb(img: Float32Array, opts: GridOptions): Buffer {
  const { height: h, width: w, channels: c, scale: s } = opts;
  const out = Buffer.alloc(h * s * w * s * 3);
  for (let y = 0; y < h * s; y++) {
    for (let x = 0; x < w * s; x++) {
      const src = (Math.floor(y / s) * w + Math.floor(x / s)) * c;
      const dst = (y * w * s + x) * 3;
      for (let k = 0; k < 3; k++) {
        const v = img[src + (c === 1 ? 0 : k)]!;
        out[dst + k] = Math.round(Math.min(1, Math.max(0, Number.isFinite(v) ? v : 0)) * 255);
      }
    }
  }
  return out;
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[ch]!);
}

export async function imageGrid(rows: GridRow[], opts: GridOptions): Promise<Buffer> {
  if (!Number.isInteger(opts.scale) || opts.scale < 1) throw new RangeError(`imageGrid: scale must be a positive integer, got ${opts.scale}`);
  if (opts.channels !== 1 && opts.channels !== 3) throw new RangeError(`imageGrid: channels must be 1 or 3, got ${opts.channels}`);
  if (rows.length === 0) throw new RangeError('imageGrid: no rows');
  const size = opts.height * opts.width * opts.channels;
  const L = gridLayout(rows, opts);
  if (L.cols === 0) throw new RangeError('imageGrid: no images');

  const layers: sharp.OverlayOptions[] = [];
  rows.forEach((row, r) => {
    row.images.forEach((img, c) => {
      if (img.length !== size) {
        throw new RangeError(`imageGrid: row '${row.label}' image ${c} has ${img.length} values, expected ${opts.height}x${opts.width}x${opts.channels}`);
      }
      layers.push({
        input: toRgb(img, opts),
        raw: { width: L.cellW, height: L.cellH, channels: 3 },
        left: L.cellLeft(c),
        top: L.cellTop(r),
      });
    });
  });

  const texts: string[] = [];
  const font = `font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="${FONT_SIZE}" fill="#111"`;
  rows.forEach((row, r) => {
    if (row.label) {
      const y = L.cellTop(r) + L.cellH / 2;
      texts.push(`<text x="${L.x0 - 8}" y="${y}" text-anchor="end" dominant-baseline="central" ${font}>${escapeXml(row.label)}</text>`);
    }
  });
  (opts.columnLabels ?? []).forEach((label, c) => {
    const x = L.cellLeft(c) + L.cellW / 2;
    texts.push(`<text x="${x}" y="${PAD + HEADER - 6}" text-anchor="middle" ${font}>${escapeXml(label)}</text>`);
  });
  if (texts.length > 0) {
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${L.width}" height="${L.height}">${texts.join('')}</svg>`;
    layers.push({ input: Buffer.from(svg), left: 0, top: 0 });
  }

  return sharp({ create: { width: L.width, height: L.height, channels: 3, background: { r: 255, g: 255, b: 255 } } })
    .composite(layers)
    .png()
    .toBuffer();
}
