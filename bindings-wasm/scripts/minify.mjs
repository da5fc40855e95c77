// Minifies the ES modules of a meterline-web bundle in place (`scripts/build-browser.sh`):
// whitespace, comments and local names, with the oxc minifier that bindings-wasm's pinned Vite
// brings (rolldown). Function and class names are kept: an application tests for
// `e.name === 'ValidationError'`, and the error classes take their `name` from the class.
//   node bindings-wasm/scripts/minify.mjs FILE.js ...
import { readFileSync, writeFileSync } from 'node:fs';

import { minifySync } from 'rolldown/utils';

const keepNames = { function: true, class: true };
for (const file of process.argv.slice(2)) {
  const { code, errors } = minifySync(file, readFileSync(file, 'utf8'), {
    module: true,
    compress: { keepNames },
    mangle: { keepNames },
  });
  if (errors?.length) {
    console.error(`minify: ${file}: ${errors.map((e) => e.message).join('; ')}`);
    process.exit(1);
  }
  writeFileSync(file, code);
}
