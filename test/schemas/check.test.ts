/**
 * Repository-scale schema checks: lint and compat go on past a broken schema and say which
 * could not be checked (exit 3); the repository is read once; the jsonschema-tools release a
 * repository pins decides the compatibility rule; stale skip-list entries are warned about.
 */
import assert from 'node:assert/strict'
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { parse, stringify } from 'yaml'
import { compatRepository, indexRepository, lintRepository, openRepository, pinnedRules } from '../../src/schemas/index.ts'
import { bundledSchemas, cli, tempDir, writableCopy } from '../helpers.ts'

/** Every file under a folder (symlinks included), counted. */
function countFiles(dir: string): number {
  let n = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) n += entry.isDirectory() ? countFiles(join(dir, entry.name)) : 1
  return n
}

/** A copy of the bundled repository whose eventplane/test/event gets a 1.1.0 raising test's maxLength 4096 → 8192. */
function raisedMaxLength(): string {
  const repo = writableCopy(bundledSchemas)
  const folder = join(repo, 'jsonschema/eventplane/test/event')
  const schema = parse(readFileSync(join(folder, '1.0.0.yaml'), 'utf8')) as { $id: string; properties: { test: { maxLength: number } }; examples: Array<{ $schema: string }> }
  schema.$id = '/eventplane/test/event/1.1.0'
  schema.properties.test.maxLength = 8192
  for (const example of schema.examples) example.$schema = '/eventplane/test/event/1.1.0'
  writeFileSync(join(folder, '1.1.0.yaml'), stringify(schema))
  return repo
}

describe('schema lint and compat at repository scale', () => {
  test('a $ref that does not resolve breaks only its schema: lint reports it, checks the rest and exits 3; --json too; compat likewise', async () => {
    const repo = writableCopy(bundledSchemas)
    const current = join(repo, 'jsonschema/eventplane/test/event/current.yaml')
    writeFileSync(current, readFileSync(current, 'utf8').replace('$ref: /fragment/eventplane/http/client_ip/1.0.0#', '$ref: /fragment/nowhere/1.0.0#'))
    const unparsable = join(repo, 'jsonschema/eventplane/mediawiki/page/delete/1.0.0.yaml')
    writeFileSync(unparsable, 'title: [unclosed\n')

    const index = await indexRepository(openRepository(repo))
    const report = await lintRepository(index, [...index.titles.keys()], { wholeRepository: true })
    assert.deepEqual(
      report.broken.map((b) => [b.file.slice(repo.length), b.code]),
      [
        ['/jsonschema/eventplane/mediawiki/page/delete/1.0.0.yaml', 'EVP_SCHEMA_PARSE'],
        // Its published version cannot be read, so neither can it be compared with it.
        ['/jsonschema/eventplane/mediawiki/page/delete/current.yaml', 'EVP_SCHEMA_PARSE'],
        ['/jsonschema/eventplane/test/event/current.yaml', 'EVP_SCHEMA_REF_NOT_FOUND'],
      ],
    )
    assert.ok(report.checked >= 10, `the other versions are checked: ${report.checked}`)

    const lint = await cli(['schema', 'lint', '--all', '--repo', repo])
    assert.equal(lint.code, 3, lint.stderr)
    assert.match(lint.stderr, /test\/event\/current\.yaml: could not be checked: EVP_SCHEMA_REF_NOT_FOUND: .*\/fragment\/nowhere\/1\.0\.0/)
    assert.match(lint.stderr, /1\d schema versions of 1\d titles checked: 0 errors, \d+ warnings; 3 could not be checked/)
    const json = await cli(['schema', 'lint', '--all', '--json', '--repo', repo])
    assert.equal(json.code, 3)
    const parsed = JSON.parse(json.stdout) as { checked: number; broken: Array<{ code: string }>; findings: unknown[] }
    assert.equal(parsed.broken.length, 3)
    assert.ok(parsed.checked >= 10)

    // compat: the broken title is listed, the others compared (eventplane/test/event's current.yaml holds
    // 1.0.0, which is materialized: compat does not materialize it again).
    const compat = await cli(['schema', 'compat', '--all', '--repo', repo])
    assert.equal(compat.code, 3, compat.stderr)
    assert.match(compat.stderr, /page\/delete\/1\.0\.0\.yaml: could not be checked: EVP_SCHEMA_PARSE/)
    assert.match(compat.stderr, /version pairs compared .*; 1 schema could not be checked/)
  })

  test('a schema nested deeper than any rule can walk is listed as not checked; lint goes on', async () => {
    const repo = writableCopy(bundledSchemas)
    let deep = '{type: string}'
    for (let i = 0; i < 20_000; i++) deep = `{type: object, properties: {a: ${deep}}}`
    writeFileSync(join(repo, 'jsonschema/eventplane/test/event/1.0.0.yaml'), `title: eventplane/test/event\n$id: /eventplane/test/event/1.0.0\nproperties: {a: ${deep}}\n`)
    const lint = await cli(['schema', 'lint', '--all', '--repo', repo])
    assert.equal(lint.code, 3, lint.stderr)
    assert.match(lint.stderr, /test\/event\/1\.0\.0\.yaml: could not be checked: /)
    assert.match(lint.stderr, /1\d schema versions of 1\d titles checked/)
  })

  test('lint and compat read the repository once: one walk, each file parsed at most once', async () => {
    const repository = openRepository(bundledSchemas)
    const index = await indexRepository(repository)
    const titles = [...index.titles.keys()]
    await lintRepository(index, titles, { wholeRepository: true })
    const afterLint = index.stats.filesRead
    await compatRepository(index, titles)
    assert.equal(index.stats.filesRead, afterLint, 'compat reads nothing lint has read')
    // Every file read is a distinct one: current.yaml and version files, no more than there are.
    const versionsAndCurrents = [...index.titles.values()].reduce((n, t) => n + t.versions.length + (t.current ? 1 : 0), 0)
    assert.equal(afterLint, versionsAndCurrents, 'each version and current file once, $ref targets included')
    assert.ok(index.stats.directories <= countFiles(repository.schemaDir))
  })

  test("the compatibility rule follows the repository's jsonschema-tools pin: 1.3 lets maxLength grow, 1.2 does not; --strict and --rules", async () => {
    const repo = raisedMaxLength()
    // No pin: 1.3, the newest rule.
    const unpinned = await cli(['schema', 'compat', 'eventplane/test/event', '--repo', repo])
    assert.equal(unpinned.code, 0, unpinned.stdout + unpinned.stderr)
    assert.match(unpinned.stdout, /1 version pairs compared by the jsonschema-tools 1\.3 rule \(default\): 0 incompatible/)
    // A package.json that allows 1.2: its rule.
    writeFileSync(join(repo, 'package.json'), JSON.stringify({ devDependencies: { '@wikimedia/jsonschema-tools': '^1.2.0' } }))
    const pinned12 = await cli(['schema', 'compat', 'eventplane/test/event', '--repo', repo])
    assert.equal(pinned12.code, 1)
    assert.match(pinned12.stdout, /\[value-changed\] at \/properties\/test\/maxLength/)
    assert.match(pinned12.stderr, /by the jsonschema-tools 1\.2 rule \(package\.json \(\^1\.2\.0\)\): 1 incompatible/)
    // The lockfile's exact version wins over the range.
    writeFileSync(join(repo, 'package-lock.json'), JSON.stringify({ packages: { 'node_modules/@wikimedia/jsonschema-tools': { version: '1.3.0' } } }))
    assert.deepEqual(pinnedRules(repo), { rules: '1.3', from: 'package-lock.json (1.3.0)' })
    assert.equal((await cli(['schema', 'compat', 'eventplane/test/event', '--repo', repo])).code, 0)
    assert.equal((await cli(['schema', 'compat', 'eventplane/test/event', '--rules', '1.2', '--repo', repo])).code, 1, '--rules overrides the pin')
    assert.equal((await cli(['schema', 'compat', 'eventplane/test/event', '--rules', '1.4', '--repo', repo])).code, 2)
    // Raising is fine even when strict; lowering is not.
    assert.equal((await cli(['schema', 'compat', 'eventplane/test/event', '--strict', '--repo', repo])).code, 0)
    const file = join(repo, 'jsonschema/eventplane/test/event/1.1.0.yaml')
    const lowered = parse(readFileSync(file, 'utf8')) as { properties: { test: { maxLength: number } } }
    lowered.properties.test.maxLength = 100
    writeFileSync(file, stringify(lowered))
    assert.equal((await cli(['schema', 'compat', 'eventplane/test/event', '--repo', repo])).code, 0, '1.3 allows a smaller maxLength')
    const strict = await cli(['schema', 'compat', 'eventplane/test/event', '--strict', '--json', '--repo', repo])
    assert.equal(strict.code, 1)
    const result = JSON.parse(strict.stdout) as { rules: string; results: Array<{ problems: Array<{ rule: string; path: string }> }> }
    assert.equal(result.rules, '1.3')
    assert.deepEqual(result.results[0]!.problems.map((p) => `${p.rule} ${p.path}`), ['max-length-reduced /properties/test/maxLength'])
  })

  test('pinnedRules: lockfile, then package.json, else the default; unreadable files are no pin', () => {
    const dir = tempDir()
    assert.deepEqual(pinnedRules(dir), { rules: '1.3', from: 'default' })
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ dependencies: { '@wikimedia/jsonschema-tools': '~1.1.4' } }))
    assert.deepEqual(pinnedRules(dir), { rules: '1.2', from: 'package.json (~1.1.4)' })
    writeFileSync(join(dir, 'package-lock.json'), '{ not json')
    assert.equal(pinnedRules(dir).rules, '1.2')
    writeFileSync(join(dir, 'package-lock.json'), JSON.stringify({ dependencies: { '@wikimedia/jsonschema-tools': { version: '1.3.1' } } }))
    assert.deepEqual(pinnedRules(dir), { rules: '1.3', from: 'package-lock.json (1.3.1)' })
    rmSync(join(dir, 'package-lock.json'))
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ devDependencies: { '@wikimedia/jsonschema-tools': 'github:wikimedia/jsonschema-tools' } }))
    assert.equal(pinnedRules(dir).from, 'default', 'a range that is not semver pins nothing')
  })

  test('lint --all warns about skip-list entries that match no schema', async () => {
    const repo = writableCopy(bundledSchemas)
    const config = join(repo, '.jsonschema-tools.yaml')
    const options = (parse(readFileSync(config, 'utf8')) ?? {}) as { skipSchemaTestCases?: Record<string, string[]> }
    options.skipSchemaTestCases = { ...options.skipSchemaTestCases, '/eventplane/test/event/.*': ['schema-snake-case-properties'], '/no/such/schema/.*': ['schema-is-secure'] }
    writeFileSync(config, stringify(options))
    const lint = await cli(['schema', 'lint', '--all', '--repo', repo])
    assert.equal(lint.code, 0, lint.stderr)
    assert.match(lint.stdout, /\.jsonschema-tools\.yaml: warning \[skip-entry-unused\] at \/skipSchemaTestCases\/~1no~1such~1schema~1\.\*: .*"\/no\/such\/schema\/\.\*" matches no schema \$id/)
    assert.doesNotMatch(lint.stdout, /skip-entry-unused\] at \/skipSchemaTestCases\/~1test~1event/)
    // Only with --all: a few titles cannot tell.
    assert.doesNotMatch((await cli(['schema', 'lint', 'eventplane/test/event', '--repo', repo])).stdout, /skip-entry-unused/)
  })
})
