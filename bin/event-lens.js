#!/usr/bin/env node
// Entry point for `npx event-lens`: runs the TypeScript sources through tsx's
// loader, so `npm ci` is the only set-up step (no build output to keep in sync).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli/main.ts');
