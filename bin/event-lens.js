#!/usr/bin/env node
// Entry point for `event-lens`: runs the compiled CLI in dist/ (built by `npm run build`,
// which `npm ci` runs through the `prepare` script).
try {
  await import('../dist/cli/main.js');
} catch (err) {
  if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('/dist/cli/main.js')) {
    console.error('event-lens: dist/ is missing: run `npm run build` (npm ci and npm install run it too)');
    process.exit(1);
  }
  throw err;
}
