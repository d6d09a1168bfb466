// The GPU check's bundle carries no libvips: 28x28 grey PNGs take the PNG fast path
// (src/image/png.ts), which is what the benchmarks send. Anything else fails loudly.
module.exports = function sharp() {
  throw new Error('sharp is not in the GPU check bundle (only the PNG fast path runs there)');
};
