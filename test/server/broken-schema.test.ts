/**
 * A schema file that does not parse breaks only itself: the schema service answers it with a
 * problem and serves the others; the intake refuses only the events that name it.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { bundledSchemas, serveBundled, writableCopy } from '../helpers.ts'

test('a broken schema file: the service and the intake report it and go on with the others', async () => {
  const repo = writableCopy(bundledSchemas)
  writeFileSync(join(repo, 'jsonschema/eventplane/mediawiki/page/delete/1.0.0.yaml'), 'title: [unclosed\n')
  const server = await serveBundled({ schemas: { repositories: [{ name: 'b', path: repo }] } })
  try {
    const get = (path: string) => fetch(`${server.url}${path}`, { headers: { accept: 'application/json' } })
    const broken = await get('/repositories/b/jsonschema/eventplane/mediawiki/page/delete/1.0.0')
    assert.equal(broken.status, 500)
    assert.equal(((await broken.json()) as { code: string }).code, 'EVP_SCHEMA_PARSE')
    assert.equal((await get('/repositories/b/jsonschema/eventplane/test/event/1.0.0')).status, 200)
    const titles = (await (await get('/repositories/b/titles')).json()) as Array<{ title: string }>
    assert.ok(titles.some((t) => t.title === 'eventplane/mediawiki/page/delete') && titles.some((t) => t.title === 'eventplane/test/event'))
    const post = await fetch(`${server.url}/v1/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ $schema: '/eventplane/mediawiki/page/delete/1.0.0', meta: { stream: 'mediawiki.page-delete' } }, { $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: 'fine' }]),
    })
    assert.equal(post.status, 207)
    const answer = (await post.json()) as { error: Array<{ index: number; context: { code: string } }>; invalid: unknown[] }
    assert.deepEqual(answer.error.map((e) => [e.index, e.context.code]), [[0, 'EVP_SCHEMA_PARSE']])
    assert.deepEqual(answer.invalid, [])
  } finally {
    await server.close()
  }
})

test('a schema file broken while serving: events of its compiled version keep being taken, the service reports the file, the rest goes on', async () => {
  const repo = writableCopy(bundledSchemas)
  const server = await serveBundled({ schemas: { repositories: [{ name: 'b', path: repo }] } })
  try {
    const post = (events: unknown[]) => fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) })
    const testEvent = { $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: 'while serving' }
    assert.equal((await post([testEvent])).status, 201, 'compiled and taken before the break')

    // An editor saves half a file (or a bad merge lands) while the server runs.
    writeFileSync(join(repo, 'jsonschema/eventplane/test/event/1.0.0.yaml'), 'title: [unclosed\n')
    writeFileSync(join(repo, 'jsonschema/eventplane/mediawiki/page/delete/1.0.0.yaml'), 'title: [unclosed\n')

    // The version the intake compiled before stays in use: producers of it see nothing.
    for (let i = 0; i < 5; i++) assert.equal((await post([testEvent])).status, 201)
    // A schema first needed after the break is refused for its events only, as ours (retryable once fixed).
    const mixed = await post([{ $schema: '/eventplane/mediawiki/page/delete/1.0.0', meta: { stream: 'mediawiki.page-delete' } }, testEvent])
    assert.equal(mixed.status, 207)
    const answer = (await mixed.json()) as { error: Array<{ index: number; context: { code: string } }> }
    assert.deepEqual(answer.error.map((e) => [e.index, e.context.code]), [[0, 'EVP_SCHEMA_PARSE']])
    // The schema service answers the broken file with a problem, and serves the others.
    const get = (path: string) => fetch(`${server.url}${path}`, { headers: { accept: 'application/json' } })
    const broken = await get('/repositories/b/jsonschema/eventplane/test/event/1.0.0')
    assert.equal(broken.status, 500)
    assert.equal(((await broken.json()) as { code: string }).code, 'EVP_SCHEMA_PARSE')
    assert.equal((await get('/repositories/b/jsonschema/eventplane/error/1.0.0')).status, 200)
    assert.equal((await fetch(`${server.url}/readyz`)).status, 200, 'still ready: one broken file does not take the process out')
  } finally {
    await server.close()
  }
})
