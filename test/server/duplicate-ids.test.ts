/**
 * Two repositories defining one `$id` differently: found after start, logged once each with
 * which one is served, counted in a metric; the bundled repository comes last unless
 * schemas.base_uris says otherwise.
 */
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { pino } from 'pino'
import { parse, stringify } from 'yaml'
import { bundledSchemas, Capture, cli, fixtureRepo, fixtureSkipped, serveBundled, tempDir, writableCopy, writeBundledConfig } from '../helpers.ts'

/** A copy of the bundled repository where test/event 1.0.0 takes at most 5 characters in `test`, and a fragment has another description. */
function otherRepository(): string {
  const repo = writableCopy(bundledSchemas)
  type Schema = { description?: string; properties: Record<string, { maxLength?: number }> }
  const edit = (file: string, change: (schema: Schema) => void) => {
    const path = join(repo, 'jsonschema', file)
    const schema = parse(readFileSync(path, 'utf8')) as Schema
    change(schema)
    writeFileSync(path, stringify(schema))
  }
  edit('test/event/1.0.0.yaml', (s) => (s.properties['test']!.maxLength = 5))
  edit('fragment/common/1.0.0.yaml', (s) => (s.description = 'Another description.'))
  return repo
}

/** A server on these repositories (by default, the bundled one and otherRepository()), its warnings kept. */
async function serve(baseUris?: string[], repositories = [{ name: 'eventplane', path: bundledSchemas }, { name: 'other', path: otherRepository() }]) {
  const logs = new Capture()
  const server = await serveBundled({ schemas: { repositories, ...(baseUris ? { base_uris: baseUris } : {}) } }, pino({ level: 'warn' }, logs))
  return { server, logs }
}

const post = (url: string, test: string) =>
  fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ $schema: '/test/event/1.0.0', meta: { stream: 'test.event' }, test }) })

test('an $id two repositories define differently is warned about and counted; the bundled repository never shadows a mounted one', async () => {
  const { server, logs } = await serve()
  try {
    const found = await server.platform.duplicateIds
    assert.deepEqual(
      found.map((d) => [d.id, d.kind, d.repositories.join(' '), d.firstDifference]),
      [
        ['/fragment/common/1.0.0', 'annotations', 'eventplane other', '/description'],
        ['/test/event/1.0.0', 'validation', 'eventplane other', '/properties/test/maxLength'],
      ],
    )
    const warnings = logs.text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { id?: string; served?: string; msg: string })
    const testEvent = warnings.find((w) => w.id === '/test/event/1.0.0')
    assert.equal(testEvent?.served, 'other', 'listed first in the config, the bundled repository still comes last')
    assert.match(testEvent!.msg, /defined differently by repositories eventplane and other \(they accept different events; first difference at \/properties\/test\/maxLength\): other's is served \(schemas\.base_uris sets the order\)/)
    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    assert.match(metrics, /eventplane_schema_duplicate_ids\{kind="validation"\} 1/)
    assert.match(metrics, /eventplane_schema_duplicate_ids\{kind="annotations"\} 1/)
    // The mounted repository's definition is the one that validates.
    assert.equal((await post(server.url, 'longer than five')).status, 400)
    assert.equal((await post(server.url, 'short')).status, 201)
  } finally {
    await server.close()
  }
})

test('schemas.base_uris sets the precedence, bundled first if asked', async () => {
  const { server, logs } = await serve(['repo:eventplane', 'repo:other'])
  try {
    await server.platform.duplicateIds
    assert.match(logs.text, /"served":"eventplane"/)
    assert.equal((await post(server.url, 'longer than five')).status, 201)
  } finally {
    await server.close()
  }
})

test('one repository, or repositories that agree: nothing to warn about', async () => {
  const { server, logs } = await serve(undefined, [{ name: 'a', path: bundledSchemas }, { name: 'b', path: writableCopy(bundledSchemas) }])
  try {
    assert.deepEqual(await server.platform.duplicateIds, [])
    assert.doesNotMatch(logs.text, /defined differently/)
    assert.match(await (await fetch(`${server.url}/metrics`)).text(), /eventplane_schema_duplicate_ids\{kind="validation"\} 0/)
  } finally {
    await server.close()
  }
})

test('config check warns about them too, and passes', async () => {
  const dir = tempDir()
  const file = writeBundledConfig(dir, { schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }, { name: 'other', path: otherRepository() }] } })
  const checked = await cli(['config', 'check', '--config', file])
  assert.equal(checked.code, 0, checked.stderr)
  assert.match(checked.stderr, /warning: schemas\.repositories: \/test\/event\/1\.0\.0 is defined differently by eventplane and other \(they accept different events; first difference at \/properties\/test\/maxLength\): other's is served; schemas\.base_uris sets the order \[EVP_SCHEMA_ID_DUPLICATE\]/)
})

test("mounted next to Wikimedia's primary repository, the bundled one is found to differ and Wikimedia's definitions are served", { skip: fixtureSkipped }, async () => {
  const { server, logs } = await serve(undefined, [{ name: 'eventplane', path: bundledSchemas }, { name: 'primary', path: fixtureRepo }])
  try {
    const found = await server.platform.duplicateIds
    assert.ok(found.some((d) => d.id === '/test/event/1.0.0'), found.map((d) => d.id).join(', '))
    for (const duplicate of found) assert.deepEqual(duplicate.repositories, ['eventplane', 'primary'])
    const warnings = logs.text.split('\n').filter((l) => l.includes('defined differently')).map((l) => JSON.parse(l) as { served: string })
    assert.equal(warnings.length, Math.min(found.length, 20))
    assert.ok(warnings.every((w) => w.served === 'primary'), 'the mounted repository wins')
    // Wikimedia's own example of test/event 1.0.0 is accepted: its definition validates.
    const example = { $schema: '/test/event/1.0.0', meta: { stream: 'test.event', dt: new Date().toISOString() }, test: 'specific test value', test_map: { key1: 'val1' } }
    const answer = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(example) })
    assert.equal(answer.status, 201, await answer.text())
  } finally {
    await server.close()
  }
})
