// Resolve hook of trace-loads.mjs (runs on the loader thread).
import { appendFileSync } from 'node:fs';

export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(process.env.VQGUARD_TRACE_LOADS, `${r.url}\n`);
  return r;
}
