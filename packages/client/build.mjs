// Builds the single-file browser bundle dist/eventplane.min.js (an IIFE that defines the global
// `eventplane`) and prints its size minified and gzipped. `npm run build -w @eventplane/client`
// runs tsc (dist/*.js, dist/*.d.ts) first.
import { build } from 'esbuild'
import { readFileSync } from 'node:fs'
import { gzipSync } from 'node:zlib'

const outfile = new URL('./dist/eventplane.min.js', import.meta.url).pathname
await build({
  entryPoints: [new URL('./src/bundle.ts', import.meta.url).pathname],
  bundle: true,
  minify: true,
  format: 'iife',
  globalName: 'eventplane',
  target: ['es2020'],
  outfile,
  legalComments: 'none',
})
const code = readFileSync(outfile)
console.log(`dist/eventplane.min.js: ${code.length} bytes minified, ${gzipSync(code, { level: 9 }).length} bytes gzipped`)
