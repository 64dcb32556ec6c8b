#!/usr/bin/env node
// Runs the test suites: every test/**/*.test.ts file (or the files and folders named on the
// command line) under node:test, with TypeScript loaded by tsx. Node 20's --test cannot glob
// .ts files itself, hence this script.
import { spawnSync } from 'node:child_process'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

const root = new URL('..', import.meta.url).pathname
const args = process.argv.slice(2)
const flags = args.filter((a) => a.startsWith('--'))
const targets = args.filter((a) => !a.startsWith('--'))

function collect(path, out) {
  const stat = statSync(path)
  if (stat.isDirectory()) {
    for (const entry of readdirSync(path).sort()) {
      if (entry === 'node_modules' || entry.startsWith('.')) continue
      collect(join(path, entry), out)
    }
  } else if (path.endsWith('.test.ts')) {
    out.push(path)
  }
  return out
}

// A full run (no paths named) type-checks and lints first, so `npm test` is all CI needs.
if (targets.length === 0 && !process.env.EVENTPLANE_SKIP_STATIC) {
  for (const [name, args] of [
    ['typecheck', ['run', '--silent', 'typecheck']],
    ['lint', ['run', '--silent', 'lint']],
  ]) {
    console.log(`== ${name}`)
    const step = spawnSync('npm', args, { cwd: root, stdio: 'inherit' })
    if (step.status !== 0) {
      console.error(`${name} failed`)
      process.exit(step.status ?? 1)
    }
  }
}

const files = (targets.length ? targets : ['test']).flatMap((t) => collect(join(root, t), []))
if (files.length === 0) {
  console.error(`no test files found under ${targets.join(', ') || 'test'}`)
  process.exit(1)
}
console.log(`running ${files.length} test files`)
const result = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    '--test-timeout=120000',
    `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`,
    ...(process.env.CI ? ['--test-reporter=spec'] : []),
    ...flags,
    ...files.map((f) => relative(root, f)),
  ],
  { cwd: root, stdio: 'inherit', env: { ...process.env, NODE_ENV: 'test' } },
)
process.exit(result.status ?? 1)
