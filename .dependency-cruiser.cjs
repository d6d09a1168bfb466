/**
 * Import directions (checked by `make test` / `npm run lint:deps`; runtime imports only:
 * `import type` is erased and not counted). Higher layers may import lower ones, never back:
 *
 *   src/cli                      commands; nothing imports it (bin/vqguard.mjs starts it)
 *   lab: src/{train,eval,bench,demo,sample,replay,report,attacks,data}, src/baselines/trainGenerator
 *   src/consumer                 the guard's runner
 *   src/ops                      health, metrics, webhook
 *   src/config                   schema and loading: must not reach TensorFlow or sharp
 *   src/models                   bundles and the model registry
 *   src/detect                   scores, detector, classifier
 *   src/purify                   VQ-VAE, pipelines; purify/stages (the stage registry) TF-free
 *   src/nn, src/baselines/generator   layers and parameter stores
 *   src/image, src/records       image decoding, wire formats (image may use records' reasons;
 *                                records may use image/sniff.ts, a leaf module with no imports)
 *   src/backend                  the compute backend
 *   tools/                       dev tools (the local broker): only lab code may load them, lazily
 */
const PRODUCT = '^src/(consumer|ops|config|models|detect|purify|nn|image|records|backend|kafka)/|^src/baselines/generator[.]ts$';
const LAB = '^src/(train|eval|bench|demo|sample|replay|report|attacks|data|fit|cli)/|^src/baselines/trainGenerator[.]ts$';
const HEAVY = '^src/backend/|node_modules/(sharp|@img|@tensorflow)/';

/** Upper layers a layer must not import (listed bottom-up). */
const layers = [
  ['backend', 'image|records|nn|purify|detect|models|config|ops|consumer'],
  ['records', 'image|nn|purify|detect|models|config|ops|consumer'],
  ['image', 'nn|purify|detect|models|config|ops|consumer'],
  ['nn', 'purify|detect|models|config|ops|consumer'],
  ['purify', 'detect|models|config|ops|consumer'],
  ['detect', 'models|config|ops|consumer'],
  ['models', 'config|ops|consumer'],
  ['config', 'ops|consumer'],
  ['ops', 'consumer'],
];

module.exports = {
  forbidden: [
    { name: 'sniff-is-a-leaf', severity: 'error', comment: 'image/sniff.ts imports nothing of the project (records may use it)', from: { path: '^src/image/sniff[.]ts$' }, to: { path: '^src/' } },
    { name: 'no-circular', severity: 'error', comment: 'import cycles', from: {}, to: { circular: true } },
    { name: 'not-to-cli', severity: 'error', comment: 'src/cli is the top: nothing imports it', from: { pathNot: '^src/cli/' }, to: { path: '^src/cli/' } },
    { name: 'product-not-to-lab', severity: 'error', comment: 'the guard never imports research, report or dev code', from: { path: PRODUCT }, to: { path: LAB } },
    { name: 'tools-only-lazily', severity: 'error', comment: 'tools/ (dev broker) is loaded only by lab code, by dynamic import', from: { path: '^src/' }, to: { path: '^tools/', dynamic: false } },
    { name: 'tools-not-from-product', severity: 'error', comment: 'the product never loads dev tools', from: { path: PRODUCT }, to: { path: '^tools/' } },
    ...layers.map(([layer, above]) => ({
      name: `layer-${layer}`,
      severity: 'error',
      comment: `src/${layer} must not import ${above.split('|').join(', ')}`,
      from: { path: `^src/${layer}/` },
      to: { path: `^src/(${above})/`, pathNot: layer === 'records' ? '^src/image/sniff[.]ts$' : undefined },
    })),
    {
      name: 'light-modules-stay-light',
      severity: 'error',
      // src/cli/main.ts loads commands by dynamic import, which reachability would follow: test/cli-light.test.ts checks it at run time.
      comment: 'config validation, the stage registry and config check load neither TensorFlow nor sharp',
      from: { path: '^src/config/|^src/purify/stages/|^src/purify/split[.]ts$|^src/models/manifest[.]ts$|^src/image/policy[.]ts$|^src/cli/(config|options|version)[.]ts$' },
      to: { path: HEAVY, reachable: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: false,
    tsConfig: { fileName: 'tsconfig.json' },
    exclude: { path: '^(test|dist)/' },
  },
};
