import assert from 'node:assert/strict'
import { lstatSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { jsonEqual } from '../../src/core/objects.ts'
import {
  listCurrentSchemas,
  listTitles,
  listVersions,
  openRepository,
  readSchemaFile,
  repositorySource,
  currentState,
  indexRepository,
} from '../../src/schemas/index.ts'
import { cli, fixtureRepo, fixtureSkipped, writableCopy } from '../helpers.ts'

// Wikimedia's primary repository, as it is: every version must load, and materializing each
// current.yaml must give the committed latest version.
describe('wmf-schemas-primary fixture', { skip: fixtureSkipped }, () => {
  const repository = openRepository(fixtureRepo, { name: 'primary' })

  test('every materialized version and every latest entry loads', async () => {
    let versions = 0
    const titles = await listTitles(repository)
    assert.ok(titles.length >= 50, `expected the fixture's 53 titles, found ${titles.length}`)
    for (const title of titles) {
      for (const entry of await listVersions(repository, title)) {
        const schema = await readSchemaFile(repository, entry.path)
        // development/webrequest is published with $id /webrequest/1.0.0 (its title does not
        // match its folder); the repository lists it under that $id in its skip list.
        assert.equal(schema['$id'], idFor(title, entry.version), `${entry.path} has the $id of its path`)
        versions++
      }
      const source = repositorySource(repository)
      const latest = await source.get(`/${title}/latest`)
      const newest = (await listVersions(repository, title)).at(-1)!
      assert.equal(latest.schema['$id'], idFor(title, newest.version), `${title}/latest is the newest version`)
    }
    assert.ok(versions >= 80, `loaded ${versions} versions`)
  })

  test('re-materializing every current.yaml reproduces its latest version', async () => {
    const index = await indexRepository(repository)
    const currents = await listCurrentSchemas(repository)
    assert.equal(currents.length, 53)
    for (const file of currents) {
      const newest = (await listVersions(repository, file.title)).at(-1)!
      // Where current.yaml has no examples, jsonschema-tools generated one at random
      // (shouldGenerateExample) and that value cannot be reproduced: currentState leaves it out.
      const result = await currentState(index, index.titles.get(file.title)!, file.schema)
      assert.deepEqual(result, { state: 'materialized', version: newest.version, path: newest.path }, file.title)
    }
  })

  test('schema materialize --all on a copy changes no byte: every version is already right', async () => {
    const copy = writableCopy(fixtureRepo)
    const before = snapshot(copy)
    const result = await cli(['schema', 'materialize', '--all', '--quiet', '--repo', copy])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /53 of 53 schemas materialized .*\(53 already up to date\)/)
    assert.deepEqual(snapshot(copy), before)
    // --force rewrites every version file; they come out byte for byte as jsonschema-tools
    // wrote them, except w3c/reportingapi/network_error, whose examples jsonschema-tools
    // writes with YAML anchors (the same JSON value).
    const forced = await cli(['schema', 'materialize', '--all', '--force', '--quiet', '--repo', copy])
    assert.equal(forced.code, 0, forced.stderr)
    assert.doesNotMatch(forced.stderr, /warning/, 'rewriting the same value is not a replacement')
    const after = snapshot(copy)
    const changed = Object.keys(before).filter((path) => after[path] !== before[path])
    assert.deepEqual(changed.map((p) => p.slice(copy.length)), ['/jsonschema/w3c/reportingapi/network_error/1.0.0.yaml'])
  })

  test('schema materialize --all recreates removed latest versions with the same values, and links that resolve', async () => {
    const copy = writableCopy(fixtureRepo)
    const copyRepository = openRepository(copy)
    // Remove each title's latest version and its entries (older versions stay: schemas $ref them).
    for (const file of await listCurrentSchemas(copyRepository)) {
      const newest = (await listVersions(copyRepository, file.title)).at(-1)!
      for (const name of [`${newest.version}.yaml`, newest.version, 'latest', 'latest.yaml']) rmSync(join(file.dir, name))
    }
    const result = await cli(['schema', 'materialize', '--all', '--quiet', '--repo', copy])
    assert.equal(result.code, 0, result.stderr)
    assert.match(result.stdout, /53 of 53 schemas materialized/)
    const source = repositorySource(copyRepository)
    for (const file of await listCurrentSchemas(copyRepository)) {
      const newest = (await listVersions(repository, file.title)).at(-1)!
      const original = await readSchemaFile(repository, newest.path)
      const written = await readSchemaFile(copyRepository, join(file.dir, `${newest.version}.yaml`))
      // jsonschema-tools' generated examples are random, and they propagate into the schemas
      // that include a fragment; ours are deterministic. Everything else must be equal.
      assert.ok(jsonEqual(withoutExamples(written), withoutExamples(original)), `${file.title} ${newest.version} changed value`)
      if (file.schema['examples'] !== undefined) assert.ok(jsonEqual(written['examples'], original['examples']))
      const latest = await source.get(`/${file.title}/latest`)
      assert.equal(latest.schema['$id'], original['$id'], `${file.title}/latest resolves to the newest version`)
      assert.ok(readdirSync(file.dir).includes(newest.version), 'extensionless entry exists')
    }
  })
})

// development/webrequest is published with $id /webrequest/1.0.0 (its title does not match
// its folder; the repository's skip list names it by that $id). Our lint reports it.
function idFor(title: string, version: string): string {
  return title === 'development/webrequest' ? `/webrequest/${version}` : `/${title}/${version}`
}

/** Every file below a folder with its bytes (symlinks by their target). */
function snapshot(root: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name)
      const info = lstatSync(path)
      if (info.isDirectory()) walk(path)
      else out[path] = info.isSymbolicLink() ? `-> ${readlinkSync(path)}` : readFileSync(path, 'base64')
    }
  }
  walk(root)
  return out
}

function withoutExamples(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutExamples)
  if (typeof value !== 'object' || value === null) return value
  return Object.fromEntries(Object.entries(value).filter(([k]) => k !== 'examples').map(([k, v]) => [k, withoutExamples(v)]))
}
