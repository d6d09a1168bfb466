#!/usr/bin/env node
// Launcher. Production runs the compiled JavaScript (`npm run build`: tsc to dist/). In a
// checkout, dist/ is used only while it is newer than every source file (so a stale build is
// never run); otherwise the TypeScript sources run through tsx's loader (development, tests).
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const built = join(root, 'dist', 'src', 'cli', 'main.js');

function newestSource(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestSource(p) : e.name.endsWith('.ts') ? statSync(p).mtimeMs : 0);
  }
  return t;
}

function useBuilt() {
  if (process.env.VQGUARD_FROM_SOURCE === '1' || !existsSync(built)) return false;
  const sources = ['src', 'tools'].map((d) => join(root, d)).filter((d) => existsSync(d));
  if (sources.length === 0) return true; // an image with dist/ only
  const stamp = join(root, 'dist', '.build-stamp');
  return existsSync(stamp) && statSync(stamp).mtimeMs >= Math.max(...sources.map(newestSource));
}

if (useBuilt()) {
  await import(pathToFileURL(built).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
