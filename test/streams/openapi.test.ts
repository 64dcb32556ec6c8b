import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { Ajv } from 'ajv'
import { pino } from 'pino'
import { stringify } from 'yaml'
import { loadConfig } from '../../src/config/index.ts'
import { buildApp, openPlatform } from '../../src/server/index.ts'
import { bundledSchemas, tempDir } from '../helpers.ts'

test('/?spec has one path per served stream with its latest schema; it follows the stream config', async () => {
  const dir = tempDir()
  const streams = join(dir, 'streams.yaml')
  const write = (config: unknown) => writeFileSync(streams, stringify(config))
  write({
    defaults: { topic_prefixes: ['datacenter1.'] },
    streams: {
      'test.event': { schema_title: 'eventplane/test/event', description: 'Test events.', stream_aliases: ['test-alias'] },
      '/^regex\\..+$/': { schema_title: 'eventplane/test/event' },
      'lost.schema': { schema_title: 'no/such/schema' },
    },
  })
  const file = join(dir, 'eventplane.yaml')
  writeFileSync(
    file,
    stringify({
      schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }] },
      stream_config: { source: streams, watch: false },
      data_dir: join(dir, 'data'),
    }),
  )
  const platform = await openPlatform(loadConfig({ path: file, env: {} }).config, { logger: pino({ level: 'silent' }) })
  const app = await buildApp(platform)
  try {
    const spec = (await app.inject('/?spec')).json()
    const streamPaths = Object.keys(spec.paths).filter((p) => p.startsWith('/v2/stream/'))
    assert.deepEqual(streamPaths, ['/v2/stream/{streams}', '/v2/stream/lost.schema', '/v2/stream/test-alias', '/v2/stream/test.event'])
    assert.deepEqual(spec.paths['/v2/stream/{streams}'].get.parameters[0].schema.items.enum, ['lost.schema', 'test-alias', 'test.event'])

    const op = spec.paths['/v2/stream/test.event'].get
    assert.equal(op.description, 'Test events.')
    const content = op.responses['200'].content['text/event-stream']
    assert.equal(content.schema.title, 'eventplane/test/event')
    for (const removed of ['$schema', '$id', 'examples']) assert.equal(content.schema[removed], undefined, removed)
    assert.ok(content.schema.properties.meta, 'the schema is the materialized one')
    // The example is the schema's own, and the schema accepts it.
    assert.ok(content.example, 'an example')
    assert.equal(new Ajv({ strict: false }).validate(content.schema, content.example), true)
    assert.match(spec.paths['/v2/stream/test-alias'].get.summary, /alias of test\.event/)
    // A stream whose schema is missing is still listed, without a schema.
    assert.deepEqual(spec.paths['/v2/stream/lost.schema'].get.responses['200'].content['text/event-stream'].schema, { type: 'object' })
    for (const status of ['400', '404', '429']) assert.ok(op.responses[status], status)

    // The page shows the fields of the events.
    const doc = (await app.inject('/?doc')).body
    assert.match(doc, /<code>\/v2\/stream\/test\.event<\/code>/)
    assert.match(doc, /Event fields \(eventplane\/test\/event\)/)
    assert.match(doc, /<td><code>meta<\/code> \*<\/td>/)

    // A new generation of the stream config gives a new document.
    write({ defaults: { topic_prefixes: ['datacenter1.'] }, streams: { 'mediawiki.recentchange': { schema_title: 'eventplane/mediawiki/recentchange' } } })
    assert.equal((await platform.streamConfig!.reload()).ok, true)
    const next = (await app.inject('/?spec')).json()
    assert.deepEqual(
      Object.keys(next.paths).filter((p: string) => p.startsWith('/v2/stream/')),
      ['/v2/stream/{streams}', '/v2/stream/mediawiki.recentchange'],
    )
    assert.equal(next.paths['/v2/stream/mediawiki.recentchange'].get.responses['200'].content['text/event-stream'].schema.title, 'eventplane/mediawiki/recentchange')
  } finally {
    await app.close()
    await platform.close()
  }
})
