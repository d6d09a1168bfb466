/**
 * Write a dataset as a `folder:` tree: <out>/{train,val,test}/<class>/<index>.png (lossless PNG,
 * so pixels on the 1/255 grid load back exactly). Refuses to write into a non-empty folder.
 */
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { encodeImage } from '../image/decode.ts';
import { imageAt, type DatasetSplits, type ImageSet } from './dataset.ts';

export interface ExportOptions {
  /** Class folder names by label (default: the dataset's class names, else 0..k-1). */
  classNames?: readonly string[];
  /** At most this many images per split (the first ones). */
  maxPerSplit?: number;
}

export async function exportFolder(data: DatasetSplits, out: string, opts: ExportOptions = {}): Promise<{ written: Record<string, number> }> {
  if (existsSync(out) && readdirSync(out).length > 0) throw new Error(`export: ${out} exists and is not empty; choose another folder or remove it`);
  const names = opts.classNames ?? data.classNames ?? Array.from({ length: data.numClasses }, (_, i) => String(i));
  if (names.length !== data.numClasses) throw new Error(`export: ${names.length} class names for ${data.numClasses} classes`);
  if (new Set(names).size !== names.length || names.some((n) => !/^[\w.+-][\w .+-]*$/.test(n))) {
    throw new Error(`export: class names must be distinct folder names (letters, digits, space, . _ + -): ${names.join(', ')}`);
  }
  const written: Record<string, number> = {};
  const splits: [string, ImageSet][] = [['train', data.train], ['val', data.validation], ['test', data.test]];
  for (const [split, set] of splits) {
    for (const n of names) mkdirSync(join(out, split, n), { recursive: true });
    const m = Math.min(set.n, opts.maxPerSplit ?? set.n);
    const digits = String(Math.max(1, set.n - 1)).length;
    for (let i = 0; i < m; i++) {
      const png = await encodeImage(imageAt(set, i), set.width, set.height, set.channels as 1 | 3, 'png');
      writeFileSync(join(out, split, names[set.labels[i]!]!, `${String(i).padStart(digits, '0')}.png`), png);
    }
    written[split] = m;
  }
  return { written };
}
