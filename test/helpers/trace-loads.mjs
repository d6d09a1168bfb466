// `node --import ./test/helpers/trace-loads.mjs ...` with VQGUARD_TRACE_LOADS=<file>: appends the
// URL of every ES module resolved and, at exit, every CommonJS module in require.cache, one a line.
import { appendFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';

const out = process.env.VQGUARD_TRACE_LOADS;
if (out) {
  register('./trace-loads-hooks.mjs', import.meta.url);
  const require = createRequire(import.meta.url);
  process.on('exit', () => appendFileSync(out, Object.keys(require.cache).join('\n') + '\n'));
}
