/**
 * Compression of what the guard produces (`producer.compression`). kafkajs has gzip built in;
 * snappy, lz4 and zstd are registered here from their codec packages, each loaded only when a
 * configuration asks for it:
 *   snappy: kafkajs-snappy (pure JavaScript, snappyjs);
 *   lz4:    kafkajs-lz4 (the native `lz4` addon, built by node-gyp at install; an optional dependency);
 *   zstd:   zstd-napi (a Node-API addon, built by node-gyp at install; an optional dependency),
 *           wrapped below as a kafkajs codec (@kafkajs/zstd's cppzst does not compile against
 *           Node 20's headers).
 * Consumers decompress with the same table, so the guard also reads inputs compressed this way.
 * A codec whose package is missing (an install without a C++ toolchain) is a configuration error.
 */
import { createRequire } from 'node:module';
import kafkajs, { CompressionTypes } from 'kafkajs';
import type { Compression } from '../config/schema.ts';

const require = createRequire(import.meta.url);

interface Codec {
  compress(encoder: { buffer: Buffer }): Promise<Buffer>;
  decompress(buffer: Buffer): Promise<Buffer>;
}

/** kafkajs's CompressionTypes by our names. */
export const COMPRESSION_TYPE: Record<Compression, CompressionTypes> = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
};

const PACKAGES: Record<'snappy' | 'lz4' | 'zstd', string> = { snappy: 'kafkajs-snappy', lz4: 'kafkajs-lz4', zstd: 'zstd-napi' };

function zstdCodec(): () => Codec {
  const z = require('zstd-napi') as { compress(b: Buffer, p?: Record<string, unknown>): Buffer; decompress(b: Buffer): Buffer };
  return () => ({
    compress: async (e) => z.compress(e.buffer),
    decompress: async (b) => z.decompress(b),
  });
}

function load(name: 'snappy' | 'lz4' | 'zstd'): () => Codec {
  if (name === 'zstd') return zstdCodec();
  if (name === 'snappy') return require('kafkajs-snappy') as () => Codec;
  const Lz4 = require('kafkajs-lz4') as new () => { codec(): Codec };
  const inst = new Lz4();
  return () => inst.codec();
}

const registered = new Set<Compression>();

/**
 * Registers the codec for `c` with kafkajs (once) and returns its CompressionTypes value.
 * Throws an error naming the package when it cannot be loaded.
 */
export function useCompression(c: Compression): CompressionTypes {
  if (c === 'none' || c === 'gzip') return COMPRESSION_TYPE[c];
  const type = COMPRESSION_TYPE[c];
  // CompressionCodecs: kafkajs's codec table (its CommonJS build does not export it by name to ESM).
  const table = (kafkajs as unknown as { CompressionCodecs: Record<number, (() => Codec) | undefined> }).CompressionCodecs;
  // kafkajs's table holds placeholders that throw "... compression not implemented": replace them once.
  if (!registered.has(c)) {
    try {
      table[type] = load(c);
      registered.add(c);
    } catch (e) {
      throw new Error(`producer.compression ${c}: its codec package ${PACKAGES[c]} cannot be loaded (${(e as Error).message.split('\n')[0]}); install it (npm install ${PACKAGES[c]}: it builds a native addon) or choose none, gzip or snappy`);
    }
  }
  return type;
}

/** Registers every codec that loads (so the guard can read inputs compressed with any of them); returns those that did not. */
export function registerAvailableCodecs(): string[] {
  const missing: string[] = [];
  for (const c of ['snappy', 'lz4', 'zstd'] as const) {
    try {
      useCompression(c);
    } catch {
      missing.push(c);
    }
  }
  return missing;
}
