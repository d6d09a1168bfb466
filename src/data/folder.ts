/**
 * `folder:<dir>` datasets: images on disk, labelled by the folder they sit in.
 *
 * Two layouts:
 *   ImageFolder   <dir>/<class>/*.png|jpg|jpeg|webp       split here into train/validation/test
 *                                                        (stratified, seeded);
 *   split         <dir>/train/<class>/..., <dir>/val/<class>/... (or validation/),
 *                 <dir>/test/<class>/...                 the user's split; a missing val/ or
 *                                                        test/ is split off train/.
 * Class names are the sub-folder names, sorted (the ImageFolder convention); label i is the i-th.
 *
 * Images may be PNG, JPEG or WebP, of any size, grey or colour. Nothing is resized or converted
 * silently; the policy is explicit, in the options or in the spec's query string:
 *   folder:<dir>?size=32x32&resize=cover&colour=rgb&val=0.1&test=0.2
 *   size     target HxW. Without it every image must have the same size, which becomes the size.
 *   resize   reject (default) | fill (stretch) | contain (letterbox on black) | cover (centre crop):
 *            what happens to an image whose size differs from the target. With reject, a
 *            differing image is an error naming it.
 *   colour   auto (default: rgb when any file is stored with colour channels, else grey) | grey | rgb
 *   val/test fractions split off when the folder does not provide them (defaults 0.1 / 0.2).
 * Decoding uses sharp through src/image/decode.ts, so alpha is flattened onto black and EXIF
 * orientation applied, as in the guard.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, extname, join, resolve } from 'node:path';
import sharp from 'sharp';
import { decodeImage, type ResizeMode } from '../image/decode.ts';
import { mulberry32, shuffled, type DatasetSplits, type ImageSet } from './dataset.ts';

export const FOLDER_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'] as const;

export interface FolderOptions {
  height?: number;
  width?: number;
  resize?: ResizeMode;
  colour?: 'auto' | 'grey' | 'rgb';
  /** Fractions split off train when the folder has no val/ or test/ (defaults 0.1 and 0.2). */
  validationFraction?: number;
  testFraction?: number;
  seed?: number;
  /** Images decoded at once (default 8). */
  concurrency?: number;
}

export interface FolderSummary {
  layout: 'imagefolder' | 'split';
  classNames: string[];
  height: number;
  width: number;
  channels: 1 | 3;
  resize: ResizeMode;
  /** How many images had each source size, "WxH" -> count. */
  sourceSizes: Record<string, number>;
  resized: number;
  files: number;
}

export class FolderDatasetError extends Error {}

interface Item {
  file: string;
  label: number;
}

const SPLIT_NAMES = { train: ['train'], validation: ['val', 'valid', 'validation'], test: ['test'] } as const;

function subdirs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
}

function imageFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isFile() && !e.name.startsWith('.') && (FOLDER_EXTENSIONS as readonly string[]).includes(extname(e.name).toLowerCase()))
    .map((e) => join(dir, e.name))
    .sort();
}

function classItems(dir: string, classNames: string[], where: string): Item[] {
  const items: Item[] = [];
  for (const name of subdirs(dir)) {
    const label = classNames.indexOf(name);
    if (label < 0) throw new FolderDatasetError(`${where}: class folder '${name}' is not among the training classes (${classNames.join(', ')})`);
    const files = imageFiles(join(dir, name));
    for (const file of files) items.push({ file, label });
  }
  return items;
}

/** Parse `folder:<dir>[?k=v&...]` into a directory and options. */
export function parseFolderSpec(spec: string): { dir: string; options: FolderOptions } {
  const rest = spec.trim().slice('folder:'.length);
  const q = rest.indexOf('?');
  const dir = q >= 0 ? rest.slice(0, q) : rest;
  if (dir === '') throw new FolderDatasetError(`dataset spec '${spec}': missing directory after 'folder:'`);
  const options: FolderOptions = {};
  if (q >= 0) {
    for (const [k, v] of new URLSearchParams(rest.slice(q + 1))) {
      if (k === 'size') {
        const m = /^(\d+)x(\d+)$/.exec(v);
        if (!m) throw new FolderDatasetError(`dataset spec '${spec}': size must be HxW, e.g. size=32x32 (got '${v}')`);
        options.height = Number(m[1]);
        options.width = Number(m[2]);
      } else if (k === 'resize') {
        if (!['reject', 'fill', 'contain', 'cover'].includes(v)) throw new FolderDatasetError(`dataset spec '${spec}': resize must be reject, fill, contain or cover (got '${v}')`);
        options.resize = v as ResizeMode;
      } else if (k === 'colour' || k === 'color') {
        if (!['auto', 'grey', 'rgb'].includes(v)) throw new FolderDatasetError(`dataset spec '${spec}': colour must be auto, grey or rgb (got '${v}')`);
        options.colour = v as FolderOptions['colour'];
      } else if (k === 'val' || k === 'test') {
        const f = Number(v);
        if (!(f >= 0 && f < 1)) throw new FolderDatasetError(`dataset spec '${spec}': ${k} must be a fraction in [0,1) (got '${v}')`);
        if (k === 'val') options.validationFraction = f;
        else options.testFraction = f;
      } else {
        throw new FolderDatasetError(`dataset spec '${spec}': unknown option '${k}' (size, resize, colour, val, test)`);
      }
    }
  }
  return { dir, options };
}

/** Stratified seeded split of items into [train, validation, test]. */
function stratify(items: Item[], numClasses: number, valF: number, testF: number, seed: number, where: string): [Item[], Item[], Item[]] {
  const rng = mulberry32(seed);
  const out: [Item[], Item[], Item[]] = [[], [], []];
  for (let c = 0; c < numClasses; c++) {
    const own = items.filter((it) => it.label === c);
    const mine = Array.from(shuffled(own.map((_, i) => i), rng), (i) => own[i]!);
    const nTest = Math.round(mine.length * testF);
    const nVal = Math.round(mine.length * valF);
    if (mine.length - nTest - nVal < 1) throw new FolderDatasetError(`${where}: class ${c} has ${mine.length} images, too few to split off validation and test`);
    out[2].push(...mine.slice(0, nTest));
    out[1].push(...mine.slice(nTest, nTest + nVal));
    out[0].push(...mine.slice(nTest + nVal));
  }
  return out;
}

async function mapLimit<T, R>(xs: T[], limit: number, f: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(xs.length);
  let next = 0;
  const worker = async () => {
    while (next < xs.length) {
      const i = next++;
      out[i] = await f(xs[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, xs.length) }, worker));
  return out;
}

/** Load a folder dataset; returns the splits (with class names) and what was done to the images. */
export async function loadFolderDataset(dirIn: string, opts: FolderOptions = {}, name = `folder:${dirIn}`): Promise<{ data: DatasetSplits; summary: FolderSummary }> {
  const dir = resolve(dirIn);
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new FolderDatasetError(`${name}: ${dir} does not exist`);
  }
  if (!st.isDirectory()) throw new FolderDatasetError(`${name}: ${dir} is not a directory`);
  const seed = opts.seed ?? 1;
  const valF = opts.validationFraction ?? 0.1;
  const testF = opts.testFraction ?? 0.2;
  const resize = opts.resize ?? 'reject';
  if ((opts.height === undefined) !== (opts.width === undefined)) throw new FolderDatasetError(`${name}: give both height and width, or neither`);

  // Layout and classes.
  const top = subdirs(dir);
  const find = (names: readonly string[]) => top.find((t) => names.includes(t.toLowerCase()));
  const trainDir = find(SPLIT_NAMES.train);
  let layout: FolderSummary['layout'];
  let classNames: string[];
  let parts: [Item[], Item[], Item[]];
  if (trainDir) {
    layout = 'split';
    classNames = subdirs(join(dir, trainDir));
    if (classNames.length < 2) throw new FolderDatasetError(`${name}: ${trainDir}/ must hold one sub-folder per class (found ${classNames.length})`);
    const train = classItems(join(dir, trainDir), classNames, `${name} ${trainDir}/`);
    const valDir = find(SPLIT_NAMES.validation);
    const testDir = find(SPLIT_NAMES.test);
    const val = valDir ? classItems(join(dir, valDir), classNames, `${name} ${valDir}/`) : null;
    const test = testDir ? classItems(join(dir, testDir), classNames, `${name} ${testDir}/`) : null;
    const split = stratify(train, classNames.length, val ? 0 : valF, test ? 0 : testF, seed, name);
    parts = [split[0], val ?? split[1], test ?? split[2]];
  } else {
    layout = 'imagefolder';
    classNames = top;
    const loose = imageFiles(dir);
    if (loose.length) throw new FolderDatasetError(`${name}: ${loose.length} images sit directly in ${dir} (e.g. ${basename(loose[0]!)}); put them in one sub-folder per class`);
    if (classNames.length < 2) throw new FolderDatasetError(`${name}: expected one sub-folder per class (at least 2), or train/ val/ test/; found ${classNames.length} sub-folder(s)`);
    const all = classItems(dir, classNames, name);
    parts = stratify(all, classNames.length, valF, testF, seed, name);
  }
  const all = [...parts[0], ...parts[1], ...parts[2]];
  for (let c = 0; c < classNames.length; c++) {
    if (!parts[0].some((it) => it.label === c)) throw new FolderDatasetError(`${name}: class '${classNames[c]}' has no training images`);
  }

  // Headers first: sizes and colour, so the policy is decided before any pixel is decoded.
  const conc = opts.concurrency ?? 8;
  const metas = await mapLimit(all, conc, async (it) => {
    try {
      const m = await sharp(it.file, { failOn: 'error', autoOrient: true }).metadata();
      const w = m.autoOrient?.width ?? m.width;
      const h = m.autoOrient?.height ?? m.height;
      const colour = (m.channels ?? 1) >= 3 && m.space !== 'b-w';
      return { w, h, colour };
    } catch (e) {
      throw new FolderDatasetError(`${name}: cannot read ${it.file}: ${(e as Error).message}`);
    }
  });
  const sourceSizes: Record<string, number> = {};
  for (const m of metas) sourceSizes[`${m.w}x${m.h}`] = (sourceSizes[`${m.w}x${m.h}`] ?? 0) + 1;
  let height = opts.height;
  let width = opts.width;
  if (height === undefined || width === undefined) {
    const sizes = Object.keys(sourceSizes);
    if (sizes.length !== 1) {
      const list = Object.entries(sourceSizes).sort((a, b) => b[1] - a[1]).slice(0, 5).map(([s, n]) => `${s} x${n}`).join(', ');
      throw new FolderDatasetError(`${name}: images have ${sizes.length} different sizes (${list}); choose a size and a resize policy, e.g. ${name}?size=32x32&resize=cover`);
    }
    [width, height] = sizes[0]!.split('x').map(Number) as [number, number];
  }
  if (resize === 'reject') {
    const bad = all.filter((_, i) => metas[i]!.w !== width || metas[i]!.h !== height);
    if (bad.length) {
      const i = all.indexOf(bad[0]!);
      throw new FolderDatasetError(`${name}: ${bad.length} images are not ${width}x${height} (e.g. ${bad[0]!.file}, ${metas[i]!.w}x${metas[i]!.h}) and resize is 'reject'; set resize=fill|contain|cover`);
    }
  }
  const colourMode = opts.colour ?? 'auto';
  const channels: 1 | 3 = colourMode === 'rgb' || (colourMode === 'auto' && metas.some((m) => m.colour)) ? 3 : 1;

  // Decode.
  const sz = height * width * channels;
  let resized = 0;
  const decodeSet = async (items: Item[]): Promise<ImageSet> => {
    const images = new Float32Array(items.length * sz);
    const labels = new Int32Array(items.length);
    await mapLimit(items, conc, async (it, k) => {
      const r = await decodeImage(readFileSync(it.file), {
        maxBytes: Number.MAX_SAFE_INTEGER,
        maxPixels: 1 << 28,
        formats: ['png', 'jpeg', 'webp'],
        colour: channels === 3 ? 'rgb' : 'grey',
        width,
        height,
        resize,
        colourMismatch: 'convert', // a dataset of mixed colour and grey images is loaded at one colour by design
      });
      if (!r.ok) throw new FolderDatasetError(`${name}: ${it.file}: ${r.reason}: ${r.detail}`);
      if (r.sourceWidth !== width || r.sourceHeight !== height) resized++;
      images.set(r.pixels, k * sz);
      labels[k] = it.label;
    });
    return { images, labels, n: items.length, height: height!, width: width!, channels };
  };
  const [train, validation, test] = [await decodeSet(parts[0]), await decodeSet(parts[1]), await decodeSet(parts[2])];
  return {
    data: { name, train, validation, test, numClasses: classNames.length, classNames },
    summary: { layout, classNames, height, width, channels, resize, sourceSizes, resized, files: all.length },
  };
}
