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
import { listTitles, openRepository } from '../../src/schemas/index.ts'
import { bundledSchemas, bundledStreams, Capture, cli, fixtureRepo, fixtureSkipped, serveBundled, tempDir, writableCopy, writeBundledConfig } from '../helpers.ts'

/** A copy of the bundled repository where eventplane/test/event 1.0.0 takes at most 5 characters in `test`, and a fragment has another description. */
function otherRepository(): string {
  const repo = writableCopy(bundledSchemas)
  type Schema = { description?: string; properties: Record<string, { maxLength?: number }> }
  const edit = (file: string, change: (schema: Schema) => void) => {
    const path = join(repo, 'jsonschema', file)
    const schema = parse(readFileSync(path, 'utf8')) as Schema
    change(schema)
    writeFileSync(path, stringify(schema))
  }
  edit('eventplane/test/event/1.0.0.yaml', (s) => (s.properties['test']!.maxLength = 5))
  edit('fragment/eventplane/common/1.0.0.yaml', (s) => (s.description = 'Another description.'))
  return repo
}

/** A server on these repositories (by default, the bundled one and otherRepository()), its warnings kept. */
async function serve(baseUris?: string[], repositories = [{ name: 'eventplane', path: bundledSchemas }, { name: 'other', path: otherRepository() }]) {
  const logs = new Capture()
  const server = await serveBundled({ schemas: { repositories, ...(baseUris ? { base_uris: baseUris } : {}) } }, pino({ level: 'warn' }, logs))
  return { server, logs }
}

const post = (url: string, test: string) =>
  fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test }) })

test('an $id two repositories define differently is warned about and counted; the bundled repository never shadows a mounted one', async () => {
  const { server, logs } = await serve()
  try {
    const found = await server.platform.duplicateIds
    assert.deepEqual(
      found.map((d) => [d.id, d.kind, d.repositories.join(' '), d.firstDifference]),
      [
        ['/eventplane/test/event/1.0.0', 'validation', 'eventplane other', '/properties/test/maxLength'],
        ['/fragment/eventplane/common/1.0.0', 'annotations', 'eventplane other', '/description'],
      ],
    )
    const warnings = logs.text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { id?: string; served?: string; msg: string })
    const testEvent = warnings.find((w) => w.id === '/eventplane/test/event/1.0.0')
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
  assert.match(checked.stderr, /warning: schemas\.repositories: \/eventplane\/test\/event\/1\.0\.0 is defined differently by eventplane and other \(they accept different events; first difference at \/properties\/test\/maxLength\): other's is served; schemas\.base_uris sets the order \[EVP_SCHEMA_ID_DUPLICATE\]/)
})

test('bundled titles are our own: eventplane/…, fragment/eventplane/…, or a legacy schema named Eventplane…', async () => {
  // Wikimedia's repositories (and most teams') use none of these, so the bundled repository
  // can be mounted next to any of them without defining one of their $ids differently.
  const titles = await listTitles(openRepository(bundledSchemas))
  assert.ok(titles.length >= 12, titles.join(', '))
  for (const title of titles) assert.match(title, /^(eventplane\/|fragment\/eventplane\/|analytics\/legacy\/eventplane)/, title)
})

test("mounted next to Wikimedia's primary repository, no title is shared, and Wikimedia's test/event is served and validates", { skip: fixtureSkipped }, async () => {
  const [ours, theirs] = await Promise.all([listTitles(openRepository(bundledSchemas)), listTitles(openRepository(fixtureRepo))])
  assert.ok(theirs.includes('test/event') && theirs.length > 50, `${theirs.length} titles in the fixture`)
  assert.deepEqual(ours.filter((title) => theirs.includes(title)), [])
  // Both stream configs side by side: Wikimedia's test stream takes its schema, ours takes ours.
  const dir = tempDir()
  const streams = parse(readFileSync(bundledStreams, 'utf8')) as { streams: Record<string, unknown> }
  streams.streams['test.event.example'] = { schema_title: 'test/event' }
  writeFileSync(join(dir, 'streams.yaml'), stringify(streams))
  const logs = new Capture()
  const repositories = [{ name: 'eventplane', path: bundledSchemas }, { name: 'primary', path: fixtureRepo }]
  const server = await serveBundled({ schemas: { repositories }, stream_config: { source: join(dir, 'streams.yaml'), watch: false } }, pino({ level: 'warn' }, logs))
  try {
    assert.deepEqual(await server.platform.duplicateIds, [])
    assert.doesNotMatch(logs.text, /defined differently/)
    const send = (event: object) => fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(event) })
    // Wikimedia's own example of test/event 1.0.0, as published in the fixture.
    const example = (parse(readFileSync(join(fixtureRepo, 'jsonschema/test/event/1.0.0.yaml'), 'utf8')) as { examples: Array<Record<string, unknown>> }).examples[0]!
    const wikimedia = await send(example)
    assert.equal(wikimedia.status, 201, await wikimedia.text())
    const bundled = await send({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: 'ours' })
    assert.equal(bundled.status, 201, await bundled.text())
    // A stream takes only its own schema.
    const crossed = await send({ ...example, meta: { stream: 'test.event' } })
    assert.equal(crossed.status, 400)
  } finally {
    await server.close()
  }
})
