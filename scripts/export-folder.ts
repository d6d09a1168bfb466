/**
 * Export any dataset spec as a `folder:` tree (train/ val/ test/, one sub-folder per class).
 *   node --import tsx scripts/export-folder.ts --dataset idx:/usr/share/datasets/fashion-mnist \
 *     --classes fashion --out datasets/fashion-mnist
 * --classes: comma-separated names, or `fashion` for Fashion-MNIST's ten; --max N per split.
 */
import { parseArgs } from 'node:util';
import { loadDatasetAsync } from '../src/data/load.ts';
import { exportFolder } from '../src/data/exportFolder.ts';

const FASHION = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat', 'sandal', 'shirt', 'sneaker', 'bag', 'ankle-boot'];
const { values } = parseArgs({ options: { dataset: { type: 'string' }, out: { type: 'string' }, classes: { type: 'string' }, max: { type: 'string' }, seed: { type: 'string' } } });
if (!values.dataset || !values.out) {
  console.error('usage: export-folder.ts --dataset <spec> --out <dir> [--classes a,b,...|fashion] [--max N] [--seed S]');
  process.exit(2);
}
const data = await loadDatasetAsync(values.dataset, { seed: values.seed ? Number(values.seed) : undefined });
const classNames = values.classes === 'fashion' ? FASHION : values.classes?.split(',').map((s) => s.trim());
const t0 = Date.now();
const { written } = await exportFolder(data, values.out, { classNames, maxPerSplit: values.max ? Number(values.max) : undefined });
console.log(`exported ${values.dataset} to ${values.out}: ${JSON.stringify(written)} (${((Date.now() - t0) / 1000).toFixed(1)}s)`);
