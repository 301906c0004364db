#!/usr/bin/env node
'use strict';
// The mathagent CLI. Runs the esbuild bundle (built by `npm ci` through the root `prepare` script);
// falls back to the TypeScript sources through tsx when the bundle is missing (development checkout).
const path = require('node:path');
const fs = require('node:fs');
const bundle = path.join(__dirname, '..', 'dist', 'cli.cjs');
if (fs.existsSync(bundle)) {
  require(bundle);
} else {
  require('tsx/cjs');
  require(path.join(__dirname, '..', 'src', 'cli', 'main.ts'));
}
