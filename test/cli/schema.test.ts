import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { existsSync, lstatSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { parse } from 'yaml'
import { bundledSchemas, cli, fixtureRepo, fixtureSkipped, writableCopy } from '../helpers.ts'

const gitEnv = {
  ...process.env,
  GIT_AUTHOR_NAME: 'Test',
  GIT_AUTHOR_EMAIL: 'test@example.org',
  GIT_COMMITTER_NAME: 'Test',
  GIT_COMMITTER_EMAIL: 'test@example.org',
  GIT_CONFIG_NOSYSTEM: '1',
}

function git(cwd: string, ...args: string[]): string {
  return execFileSync('git', args, { cwd, env: gitEnv, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
}

/** A git repository holding a copy of the bundled schema repository, committed. */
function schemaGitRepo(): string {
  const dir = writableCopy(bundledSchemas)
  git(dir, 'init', '-q', '-b', 'main')
  git(dir, 'add', '-A')
  git(dir, 'commit', '-qm', 'initial')
  return dir
}

describe('eventplane schema …', () => {
  test('new, then materialize, lint and compat on the new schema', async () => {
    const repo = schemaGitRepo()
    const created = await cli(['schema', 'new', 'analytics/button/click', '--repo', repo, '--description', 'A button was clicked.'])
    assert.equal(created.code, 0, created.stderr)
    const current = join(repo, 'jsonschema/analytics/button/click/current.yaml')
    assert.ok(existsSync(current))
    assert.equal((await cli(['schema', 'new', 'analytics/button/click', '--repo', repo])).code, 1, 'refuses to overwrite')

    const materialized = await cli(['schema', 'materialize', 'analytics/button/click', '--repo', repo])
    assert.equal(materialized.code, 0, materialized.stderr)
    const schema = parse(readFileSync(join(repo, 'jsonschema/analytics/button/click/1.0.0.yaml'), 'utf8'))
    assert.equal(schema.$id, '/analytics/button/click/1.0.0')
    assert.deepEqual(schema.required, ['$schema', 'meta'])
    assert.equal(schema.examples[0].$schema, '/analytics/button/click/1.0.0')
    assert.ok(lstatSync(join(repo, 'jsonschema/analytics/button/click/latest')).isSymbolicLink())

    const lint = await cli(['schema', 'lint', 'analytics/button/click', '--repo', repo])
    assert.equal(lint.code, 0, lint.stdout + lint.stderr)
  })

  test('compat explains an incompatible minor version, and accepts a new optional field', async () => {
    const repo = schemaGitRepo()
    const current = join(repo, 'jsonschema/eventplane/test/event/current.yaml')
    const original = readFileSync(current, 'utf8')
    writeFileSync(current, original.replace('$id: /eventplane/test/event/1.0.0', '$id: /eventplane/test/event/1.1.0').replace('      test_number:\n        description: A number, to try numeric validation.\n        type: number\n', ''))
    const broken = await cli(['schema', 'compat', 'eventplane/test/event', '--repo', repo])
    assert.equal(broken.code, 1)
    assert.match(broken.stdout, /test\/event 1\.0\.0 → 1\.1\.0: INCOMPATIBLE/)
    assert.match(broken.stdout, /\[property-removed\] at \/properties\/test_number/)

    writeFileSync(current, original.replace('$id: /eventplane/test/event/1.0.0', '$id: /eventplane/test/event/1.1.0').replace('      test_map:', '      test_flag:\n        type: boolean\n      test_map:'))
    const fine = await cli(['schema', 'compat', 'eventplane/test/event', '--repo', repo])
    assert.equal(fine.code, 0, fine.stdout)

    // Editing current.yaml without raising the version is caught by lint.
    writeFileSync(current, original.replace('maxLength: 4096\n        default', 'maxLength: 100\n        default'))
    const lint = await cli(['schema', 'lint', 'eventplane/test/event', '--repo', repo])
    assert.equal(lint.code, 1)
    assert.match(lint.stdout, /\[current-is-materialized\].*raise the version/)
  })

  test('materialize --modified picks up changed and new current.yaml files only', async () => {
    const repo = schemaGitRepo()
    const current = join(repo, 'jsonschema/eventplane/test/event/current.yaml')
    writeFileSync(current, readFileSync(current, 'utf8').replace('$id: /eventplane/test/event/1.0.0', '$id: /eventplane/test/event/1.1.0').replace('      test_map:', '      test_flag:\n        type: boolean\n      test_map:'))
    const result = await cli(['schema', 'materialize', '--modified', '--no-git-add', '--repo', repo])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /test\/event 1\.1\.0/)
    assert.match(result.stdout, /1 of 1 schemas materialized/)
    assert.equal(parse(readFileSync(join(repo, 'jsonschema/eventplane/test/event/latest'), 'utf8')).$id, '/eventplane/test/event/1.1.0')
    assert.equal(git(repo, 'status', '--porcelain', '--', 'jsonschema/eventplane/test/event/1.1.0.yaml').trim(), '?? jsonschema/eventplane/test/event/1.1.0.yaml')
  })

  test('the installed pre-commit hook materializes staged schemas into the commit, and blocks incompatible ones', async () => {
    const repo = schemaGitRepo()
    const installed = await cli(['schema', 'install-hook', '--repo', repo])
    assert.equal(installed.code, 0, installed.stderr)
    assert.equal((await cli(['schema', 'install-hook', '--repo', repo])).code, 1, 'refuses to replace without --force')

    const current = join(repo, 'jsonschema/eventplane/test/event/current.yaml')
    const original = readFileSync(current, 'utf8')
    writeFileSync(current, original.replace('$id: /eventplane/test/event/1.0.0', '$id: /eventplane/test/event/1.1.0').replace('      test_map:', '      test_flag:\n        type: boolean\n      test_map:'))
    git(repo, 'add', 'jsonschema/eventplane/test/event/current.yaml')
    git(repo, 'commit', '-qm', 'eventplane/test/event 1.1.0')
    const files = git(repo, 'show', '--name-only', '--format=', 'HEAD').trim().split('\n')
    assert.ok(files.includes('jsonschema/eventplane/test/event/1.1.0.yaml'), files.join(', '))
    assert.ok(files.includes('jsonschema/eventplane/test/event/latest'))

    writeFileSync(current, readFileSync(current, 'utf8').replace('$id: /eventplane/test/event/1.1.0', '$id: /eventplane/test/event/1.2.0').replace('      test_flag:\n        type: boolean\n', ''))
    git(repo, 'add', 'jsonschema/eventplane/test/event/current.yaml')
    assert.throws(() => git(repo, 'commit', '-qm', 'breaks compatibility'), /INCOMPATIBLE|property-removed/)
    assert.equal(git(repo, 'log', '--format=%s', '-1').trim(), 'eventplane/test/event 1.1.0')
  })

  test('diff shows changes with JSON pointers; types compile-ready declarations', { skip: fixtureSkipped }, async () => {
    const diff = await cli(['schema', 'diff', '/fragment/common/1.1.0', '/fragment/common/2.0.0', '--repo', fixtureRepo])
    assert.equal(diff.code, 1)
    assert.match(diff.stdout, /\/required/)
    assert.match(diff.stdout, /\/properties\/dt/)
    const same = await cli(['schema', 'diff', '/test/event/1.0.0', 'jsonschema/test/event/1.0.0.yaml', '--repo', fixtureRepo], { cwd: fixtureRepo })
    assert.equal(same.code, 0, same.stdout + same.stderr)

    const types = await cli(['schema', 'types', 'test/event', '/mediawiki/revision/create/1.0.0', '--repo', fixtureRepo])
    assert.equal(types.code, 0, types.stderr)
    assert.match(types.stdout, /export interface TestEvent \{/)
    assert.match(types.stdout, /export interface MediawikiRevisionCreate \{/)
    assert.match(types.stdout, /'\$schema': string/)
  })

  test('materialize refuses a broken schema with its code and writes nothing for it', async () => {
    const repo = schemaGitRepo()
    writeFileSync(join(repo, 'jsonschema/eventplane/test/event/current.yaml'), 'title: eventplane/test/event\n$id: /eventplane/test/event/2.0.0\nallOf:\n  - $ref: /fragment/nope/1.0.0#\n')
    const result = await cli(['schema', 'materialize', 'eventplane/test/event', '--repo', repo])
    assert.equal(result.code, 1)
    assert.match(result.stderr, /\[EVP_SCHEMA_REF_NOT_FOUND\]/)
    assert.ok(!existsSync(join(repo, 'jsonschema/eventplane/test/event/2.0.0.yaml')))
    const usage = await cli(['schema', 'materialize', '--repo', repo])
    assert.equal(usage.code, 2)
    assert.match(usage.stderr, /--all, --modified, or one or more paths/)
  })
})

