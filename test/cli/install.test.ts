/**
 * The CLI outside the checkout (`eventplane` is not on the npm registry, and an unclaimed name
 * there is a hazard for `npx`): installed globally from the clone, it runs in any folder; the
 * packed tarball carries the built CLI, the bundled defaults and @eventplane/client in it.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { test } from 'node:test'
import { repoRoot, tempDir } from '../helpers.ts'

const run = promisify(execFile)
const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version

test('npm install -g from the clone: eventplane runs in another folder, schema new works in a repository of its own', async () => {
  const prefix = tempDir()
  // As the README says, with a prefix of the test's own instead of the global one.
  await run('npm', ['install', '-g', '--prefix', prefix, repoRoot, '--no-audit', '--no-fund'], { cwd: tempDir(), timeout: 180_000 })
  const eventplane = join(prefix, 'bin', 'eventplane')
  const elsewhere = tempDir()
  assert.equal((await run(eventplane, ['--version'], { cwd: elsewhere })).stdout.trim(), version)

  mkdirSync(join(elsewhere, 'jsonschema'))
  writeFileSync(join(elsewhere, '.jsonschema-tools.yaml'), 'schemaBasePath: ./jsonschema/\ncontentTypes: [yaml]\n')
  const made = await run(eventplane, ['schema', 'new', 'analytics/button/click', '--description', 'A click.'], { cwd: elsewhere })
  assert.match(made.stdout + made.stderr, /current\.yaml/)
  assert.ok(existsSync(join(elsewhere, 'jsonschema', 'analytics', 'button', 'click', 'current.yaml')))
  await run(eventplane, ['schema', 'materialize', 'analytics/button/click'], { cwd: elsewhere })
  assert.ok(existsSync(join(elsewhere, 'jsonschema', 'analytics', 'button', 'click', '1.0.0.yaml')))
})

test('npm pack: the built CLI, the bundled schemas and stream config, the docs, and @eventplane/client inside; no sources or tests', async () => {
  const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--silent'], { cwd: repoRoot, timeout: 180_000, maxBuffer: 16 << 20 })
  const [pack] = JSON.parse(stdout.slice(stdout.indexOf('['))) as Array<{ files: Array<{ path: string }>; bundled: string[] }>
  const files = new Set(pack!.files.map((f) => f.path))
  for (const path of ['dist/cli/bin.js', 'dist/pipe/pipeline.js', 'defaults/eventplane.yaml', 'defaults/streams.yaml', 'docs/pipe.md', 'README.md', 'node_modules/@eventplane/client/dist/index.js']) {
    assert.ok(files.has(path), `${path} is in the package`)
  }
  assert.deepEqual(pack!.bundled, ['@eventplane/client'])
  assert.ok(![...files].some((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('bench/')), 'no sources, tests or benchmarks')
})
