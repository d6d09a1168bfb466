/**
 * IDX files (the MNIST family's format, http://yann.lecun.com/exdb/mnist/): a 4-byte magic
 * [0, 0, dtype, ndim], ndim big-endian uint32 dimensions, then the data, big-endian, row-major.
 * Files may be plain or gzipped (detected by the gzip magic bytes, not the file name).
 *
 * `loadIdxDataset(dir)` reads the usual names
 *   train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte
 * (also the `train-images.idx3-ubyte` spelling, each optionally `.gz`), or EMNIST's
 *   emnist-<split>-train-images-idx3-ubyte ... emnist-<split>-test-labels-idx1-ubyte.
 * EMNIST stores each image transposed (column-major); `transpose` ('auto' by default: on for EMNIST
 * names, off otherwise) flips each image back. EMNIST 'letters' labels run 1..26, so pass
 * labelOffset: 1 to make them 0..25.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { type DatasetSplits, type ImageSet, splitValidation } from './dataset.ts';

export type IdxDtype = 'uint8' | 'int8' | 'int16' | 'int32' | 'float32' | 'float64';
export type IdxData = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array;

export interface IdxArray {
  dtype: IdxDtype;
  dims: readonly number[];
  data: IdxData;
}

const CODES: Record<number, { dtype: IdxDtype; bytes: number }> = {
  0x08: { dtype: 'uint8', bytes: 1 },
  0x09: { dtype: 'int8', bytes: 1 },
  0x0b: { dtype: 'int16', bytes: 2 },
  0x0c: { dtype: 'int32', bytes: 4 },
  0x0d: { dtype: 'float32', bytes: 4 },
  0x0e: { dtype: 'float64', bytes: 8 },
};

function codeOf(dtype: IdxDtype): number {
  for (const [code, v] of Object.entries(CODES)) if (v.dtype === dtype) return Number(code);
  throw new Error(`idx: unknown dtype ${dtype}`);
}

function isGzip(buf: Uint8Array): boolean {
  return buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b;
}

/** Parse an IDX buffer (gunzipping it first if it is gzip). `name` is used in error messages. */
export function parseIdx(input: Uint8Array, name = '<buffer>'): IdxArray {
  let buf: Buffer;
  try {
    buf = isGzip(input) ? gunzipSync(input) : Buffer.from(input.buffer, input.byteOffset, input.byteLength);
  } catch (e) {
    throw new Error(`idx: ${name}: gzip data is corrupt or truncated (${(e as Error).message})`);
  }
  if (buf.length < 4) throw new Error(`idx: ${name}: file too short for an IDX header (${buf.length} bytes)`);
  const code = CODES[buf[2]!];
  if (buf[0] !== 0 || buf[1] !== 0 || !code) {
    throw new Error(
      `idx: ${name}: bad magic number 0x${buf.readUInt32BE(0).toString(16).padStart(8, '0')} ` +
        `(expected 0x0000TTNN with type TT in 08,09,0b,0c,0d,0e)`,
    );
  }
  const ndim = buf[3]!;
  const headerBytes = 4 + 4 * ndim;
  if (ndim === 0) throw new Error(`idx: ${name}: zero dimensions in header`);
  if (buf.length < headerBytes) throw new Error(`idx: ${name}: truncated header (${buf.length} of ${headerBytes} bytes)`);
  const dims: number[] = [];
  for (let k = 0; k < ndim; k++) dims.push(buf.readUInt32BE(4 + 4 * k));
  const count = dims.reduce((a, b) => a * b, 1);
  const expected = headerBytes + count * code.bytes;
  if (buf.length < expected) {
    throw new Error(`idx: ${name}: truncated data: dims [${dims.join(', ')}] need ${expected} bytes, file has ${buf.length}`);
  }
  if (buf.length > expected) {
    throw new Error(`idx: ${name}: ${buf.length - expected} unexpected trailing bytes after dims [${dims.join(', ')}]`);
  }
  return { dtype: code.dtype, dims, data: decode(buf, headerBytes, count, code.dtype) };
}

function decode(buf: Buffer, off: number, count: number, dtype: IdxDtype): IdxData {
  switch (dtype) {
    case 'uint8':
      return new Uint8Array(buf.subarray(off, off + count));
    case 'int8':
      return new Int8Array(new Uint8Array(buf.subarray(off, off + count)).buffer);
    default: {
      const out =
        dtype === 'int16' ? new Int16Array(count)
        : dtype === 'int32' ? new Int32Array(count)
        : dtype === 'float32' ? new Float32Array(count)
        : new Float64Array(count);
      const dv = new DataView(buf.buffer, buf.byteOffset + off, buf.length - off);
      const step = out.BYTES_PER_ELEMENT;
      for (let i = 0; i < count; i++) {
        const p = i * step;
        out[i] =
          dtype === 'int16' ? dv.getInt16(p, false)
          : dtype === 'int32' ? dv.getInt32(p, false)
          : dtype === 'float32' ? dv.getFloat32(p, false)
          : dv.getFloat64(p, false);
      }
      return out;
    }
  }
}

/** Encode an array as IDX bytes (big-endian). The inverse of parseIdx; used by tests and tools. */
export function encodeIdx(arr: IdxArray): Buffer {
  const count = arr.dims.reduce((a, b) => a * b, 1);
  if (count !== arr.data.length) throw new Error(`idx: dims [${arr.dims.join(', ')}] hold ${count} values, data has ${arr.data.length}`);
  const bytes = CODES[codeOf(arr.dtype)]!.bytes;
  const head = 4 + 4 * arr.dims.length;
  const buf = Buffer.alloc(head + count * bytes);
  buf[2] = codeOf(arr.dtype);
  buf[3] = arr.dims.length;
  arr.dims.forEach((d, k) => buf.writeUInt32BE(d, 4 + 4 * k));
  const dv = new DataView(buf.buffer, buf.byteOffset + head, count * bytes);
  for (let i = 0; i < count; i++) {
    const v = arr.data[i]!;
    const p = i * bytes;
    if (arr.dtype === 'uint8') dv.setUint8(p, v);
    else if (arr.dtype === 'int8') dv.setInt8(p, v);
    else if (arr.dtype === 'int16') dv.setInt16(p, v, false);
    else if (arr.dtype === 'int32') dv.setInt32(p, v, false);
    else if (arr.dtype === 'float32') dv.setFloat32(p, v, false);
    else dv.setFloat64(p, v, false);
  }
  return buf;
}

/** Read one IDX file (plain or gzipped). */
export function readIdx(path: string): IdxArray {
  if (!existsSync(path)) throw new Error(`idx: file not found: ${path}`);
  return parseIdx(readFileSync(path), path);
}

export interface IdxImageOptions {
  /** Transpose each image (EMNIST stores images column-major). */
  transpose?: boolean;
  /** Subtracted from every label (EMNIST letters: 1). */
  labelOffset?: number;
}

/** Pair an images file and a labels file into an ImageSet with pixels scaled to [0,1]. */
export function idxToImageSet(images: IdxArray, labels: IdxArray, names: [string, string], opts: IdxImageOptions = {}): ImageSet {
  const [imgName, labName] = names;
  if (images.dims.length !== 3 && images.dims.length !== 4) {
    throw new Error(`idx: ${imgName}: images must have 3 or 4 dims (n,h,w[,c]), got [${images.dims.join(', ')}]`);
  }
  if (labels.dims.length !== 1) throw new Error(`idx: ${labName}: labels must have 1 dim, got [${labels.dims.join(', ')}]`);
  const [n, h, w, c = 1] = images.dims as [number, number, number, number?];
  if (labels.dims[0] !== n) {
    throw new Error(`idx: count mismatch: ${imgName} has ${n} images but ${labName} has ${labels.dims[0]} labels`);
  }
  if (labels.dtype === 'float32' || labels.dtype === 'float64') throw new Error(`idx: ${labName}: labels must be integers, got ${labels.dtype}`);
  let scale: number;
  if (images.dtype === 'uint8') scale = 1 / 255;
  else if (images.dtype === 'float32' || images.dtype === 'float64') scale = 1;
  else throw new Error(`idx: ${imgName}: unsupported image dtype ${images.dtype} (expected uint8 or float)`);

  const out = new Float32Array(n * h * w * c);
  const transpose = opts.transpose ?? false;
  if (transpose && h !== w) throw new Error(`idx: ${imgName}: cannot transpose non-square ${h}x${w} images`);
  const src = images.data;
  for (let i = 0; i < n; i++) {
    const base = i * h * w * c;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const from = base + (transpose ? x * w + y : y * w + x) * c;
        const to = base + (y * w + x) * c;
        for (let k = 0; k < c; k++) out[to + k] = src[from + k]! * scale;
      }
    }
  }
  if (scale === 1) {
    for (let i = 0; i < out.length; i++) {
      if (!(out[i]! >= 0 && out[i]! <= 1)) throw new Error(`idx: ${imgName}: float pixel ${out[i]} outside [0,1]`);
    }
  }
  const offset = opts.labelOffset ?? 0;
  const lab = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    lab[i] = labels.data[i]! - offset;
    if (lab[i]! < 0) throw new Error(`idx: ${labName}: label ${labels.data[i]} minus offset ${offset} is negative`);
  }
  return { images: out, labels: lab, n, height: h, width: w, channels: c };
}

export interface IdxFiles {
  trainImages: string;
  trainLabels: string;
  testImages: string;
  testLabels: string;
  emnist: boolean;
}

/**
 * Locate the four files in `dir`. With several EMNIST splits present, `emnistSplit` picks one
 * (e.g. 'balanced', 'digits'); otherwise the choice is ambiguous and an error lists them.
 */
export function findIdxFiles(dir: string, emnistSplit?: string): IdxFiles {
  if (!existsSync(dir)) throw new Error(`idx: dataset directory not found: ${dir}`);
  const files = new Set(readdirSync(dir));
  const pick = (stems: string[]): string | null => {
    for (const s of stems) for (const f of [s, `${s}.gz`]) if (files.has(f)) return join(dir, f);
    return null;
  };
  const plain = {
    trainImages: pick(['train-images-idx3-ubyte', 'train-images.idx3-ubyte']),
    trainLabels: pick(['train-labels-idx1-ubyte', 'train-labels.idx1-ubyte']),
    testImages: pick(['t10k-images-idx3-ubyte', 't10k-images.idx3-ubyte']),
    testLabels: pick(['t10k-labels-idx1-ubyte', 't10k-labels.idx1-ubyte']),
  };
  const emnistSplits = [...files]
    .map((f) => /^emnist-(.+)-train-images-idx3-ubyte(\.gz)?$/.exec(f)?.[1])
    .filter((s): s is string => s !== undefined);
  if (!plain.trainImages && !emnistSplit && emnistSplits.length > 0) {
    if (emnistSplits.length > 1) {
      throw new Error(`idx: ${dir} holds several EMNIST splits (${emnistSplits.join(', ')}); choose one, e.g. idx:${dir}#${emnistSplits[0]}`);
    }
    emnistSplit = emnistSplits[0];
  }
  const found = emnistSplit
    ? {
        trainImages: pick([`emnist-${emnistSplit}-train-images-idx3-ubyte`]),
        trainLabels: pick([`emnist-${emnistSplit}-train-labels-idx1-ubyte`]),
        testImages: pick([`emnist-${emnistSplit}-test-images-idx3-ubyte`]),
        testLabels: pick([`emnist-${emnistSplit}-test-labels-idx1-ubyte`]),
      }
    : plain;
  const missing = Object.entries(found).filter(([, v]) => v === null).map(([k]) => k);
  if (missing.length > 0) {
    const want = emnistSplit
      ? `emnist-${emnistSplit}-{train,test}-{images-idx3,labels-idx1}-ubyte[.gz]`
      : '{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]';
    throw new Error(`idx: ${dir}: missing ${missing.join(', ')} (looked for ${want})`);
  }
  return { ...(found as Omit<IdxFiles, 'emnist'>), emnist: emnistSplit !== undefined };
}

export interface IdxDatasetOptions {
  seed?: number;
  /** Images carved from train for validation. Default min(5000, floor(nTrain/10)). */
  validationSize?: number;
  /** 'auto' (default) transposes for EMNIST file names only. */
  transpose?: boolean | 'auto';
  labelOffset?: number;
  emnistSplit?: string;
  name?: string;
}

/** Load an IDX dataset directory: train (minus a seeded validation split), validation, test. */
export function loadIdxDataset(dir: string, opts: IdxDatasetOptions = {}): DatasetSplits {
  const f = findIdxFiles(dir, opts.emnistSplit);
  const transpose = opts.transpose === 'auto' || opts.transpose === undefined ? f.emnist : opts.transpose;
  const o = { transpose, labelOffset: opts.labelOffset };
  const trainAll = idxToImageSet(readIdx(f.trainImages), readIdx(f.trainLabels), [f.trainImages, f.trainLabels], o);
  const test = idxToImageSet(readIdx(f.testImages), readIdx(f.testLabels), [f.testImages, f.testLabels], o);
  if (trainAll.height !== test.height || trainAll.width !== test.width || trainAll.channels !== test.channels) {
    throw new Error(`idx: ${dir}: train images are ${trainAll.height}x${trainAll.width}x${trainAll.channels} but test are ${test.height}x${test.width}x${test.channels}`);
  }
  const validationSize = opts.validationSize ?? Math.min(5000, Math.floor(trainAll.n / 10));
  const { train, validation } = splitValidation(trainAll, validationSize, opts.seed ?? 1234);
  let maxLabel = 0;
  for (const s of [trainAll, test]) for (const l of s.labels) if (l > maxLabel) maxLabel = l;
  return { name: opts.name ?? `idx:${dir}`, train, validation, test, numClasses: maxLabel + 1 };
}
