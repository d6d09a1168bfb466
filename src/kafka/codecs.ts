/**
 * Compression of what the guard produces (`producer.compression`). kafkajs has gzip built in;
 * snappy, lz4 and zstd are registered here, each loaded only when a configuration asks for it
 * (and by `registerAvailableCodecs` so inputs compressed with any of them can be read):
 *   snappy: kafkajs-snappy (pure JavaScript, snappyjs);
 *   lz4:    lz4js (pure JavaScript; the LZ4 frame format Kafka's clients write since magic v1);
 *   zstd:   @bokuweb/zstd-wasm (zstd compiled to WebAssembly).
 * No codec needs a native build: the kafkajs-lz4 / zstd-napi addons (and @kafkajs/zstd, whose
 * cppzst does not compile against Node 20's headers) would each need a C++ toolchain at install
 * and several minutes of compilation on a 2-core CI machine.
 * The round trip through a real broker (which decompresses batches to validate them, with the
 * Java codecs) is tested for every codec in test/kafka-conventions.test.ts.
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

const PACKAGES: Record<'snappy' | 'lz4' | 'zstd', string> = { snappy: 'kafkajs-snappy', lz4: 'lz4js', zstd: '@bokuweb/zstd-wasm' };

/** zstd level for produced batches (zstd's own default). */
const ZSTD_LEVEL = 3;
/** A frame without its content size (Java's streaming zstd writes such frames) is decompressed into a buffer that grows up to this. */
const ZSTD_MAX_DECOMPRESSED = 256 * 1024 * 1024;

function zstdCodec(): () => Codec {
  const z = require('@bokuweb/zstd-wasm') as {
    init(): Promise<void>;
    compress(b: Uint8Array, level?: number): Uint8Array;
    decompress(b: Uint8Array, opts?: { defaultHeapSize: number }): Uint8Array;
  };
  let ready: Promise<void> | undefined;
  const init = () => (ready ??= z.init());
  const decompress = (b: Buffer): Buffer => {
    for (let heap = 1024 * 1024; ; heap *= 4) {
      try {
        return Buffer.from(z.decompress(b, { defaultHeapSize: heap }));
      } catch (e) {
        // Only a frame of unknown content size can fail for lack of room: retry larger, bounded.
        if (heap * 4 > ZSTD_MAX_DECOMPRESSED) throw e;
      }
    }
  };
  return () => ({
    compress: async (e) => (await init(), Buffer.from(z.compress(e.buffer, ZSTD_LEVEL))),
    decompress: async (b) => (await init(), decompress(b)),
  });
}

function lz4Codec(): () => Codec {
  const l = require('lz4js') as { compress(b: Uint8Array): Uint8Array | number[]; decompress(b: Uint8Array): Uint8Array | number[] };
  return () => ({
    compress: async (e) => Buffer.from(l.compress(e.buffer)),
    decompress: async (b) => Buffer.from(l.decompress(b)),
  });
}

function load(name: 'snappy' | 'lz4' | 'zstd'): () => Codec {
  if (name === 'zstd') return zstdCodec();
  if (name === 'lz4') return lz4Codec();
  return require('kafkajs-snappy') as () => Codec;
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
      throw new Error(`producer.compression ${c}: its codec package ${PACKAGES[c]} cannot be loaded (${(e as Error).message.split('\n')[0]}); reinstall the npm packages (npm ci) or choose none or gzip`);
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
