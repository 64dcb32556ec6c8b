/**
 * Streams made through a `/regex/` key are read as they are written: served over SSE and listed
 * in /?spec (the viewer's list) once the intake has written them, with the regex entry's
 * settings (its redact_fields), within streams.allowed; naming one that was never written is
 * refused and makes no topic.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { pino } from 'pino'
import { stringify } from 'yaml'
import { loadConfig } from '../../src/config/index.ts'
import { startServer } from '../../src/server/index.ts'
import { parseSse } from '../../src/streams/follow.ts'
import { bundledSchemas, tempDir } from '../helpers.ts'

async function server(settings: Record<string, unknown> = {}) {
  const dir = tempDir()
  writeFileSync(
    join(dir, 'streams.yaml'),
    stringify({
      defaults: { topic_prefixes: ['datacenter1.'] },
      streams: {
        'test.event': { schema_title: 'eventplane/test/event' },
        'eventplane.error.validation': { schema_title: 'eventplane/error' },
        '/^app\\..+$/': { schema_title: 'eventplane/test/event', consumers: { eventplane_streams: { redact_fields: ['test_map'] } } },
      },
    }),
  )
  writeFileSync(
    join(dir, 'eventplane.yaml'),
    stringify({ server: { port: 0 }, data_dir: join(dir, 'data'), schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }] }, stream_config: { source: join(dir, 'streams.yaml'), watch: false }, ...settings }),
  )
  const { config } = loadConfig({ path: join(dir, 'eventplane.yaml'), env: {}, cwd: dir })
  return startServer(config, { logger: pino({ level: 'silent' }) })
}

async function firstEvent(url: string, signal: AbortSignal): Promise<Record<string, unknown>> {
  const response = await fetch(url, { signal })
  if (response.status !== 200) assert.fail(`${response.status}: ${await response.text()}`)
  for await (const message of parseSse(response.body!)) if (message.event === 'message') return JSON.parse(message.data) as Record<string, unknown>
  throw new Error('the stream ended without an event')
}

test('a stream made through a /regex/ key: written, then served over SSE with its entry\'s redaction, and listed in /?spec', async (t) => {
  const running = await server()
  t.after(() => running.close())
  const abort = new AbortController()
  t.after(() => abort.abort())

  const never = await fetch(`${running.url}/v2/stream/app.never`)
  assert.equal(never.status, 400)
  assert.equal(((await never.json()) as { code: string }).code, 'EVP_STREAM_UNKNOWN')
  assert.ok(!(await running.platform.log!.topics()).includes('datacenter1.app.never'), 'reading made no topic')

  const posted = await fetch(`${running.url}/v1/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify([{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'app.clicks' }, test: 'made by a regex', test_map: { k: 'not for readers' } }]),
  })
  assert.equal(posted.status, 201, await posted.text())

  const event = await firstEvent(`${running.url}/v2/stream/app.clicks?since=0`, abort.signal)
  assert.equal(event['test'], 'made by a regex')
  assert.equal((event['meta'] as { topic: string }).topic, 'datacenter1.app.clicks')
  assert.equal(event['test_map'], undefined, "the regex entry's redact_fields apply")
  assert.ok(event['http'] !== undefined, 'instead of the default ones (http.client_ip and http.request_headers)')

  const spec = (await (await fetch(`${running.url}/?spec`)).json()) as { paths: Record<string, unknown> }
  assert.ok(Object.keys(spec.paths).includes('/v2/stream/app.clicks'), Object.keys(spec.paths).join(', '))
  assert.ok(!Object.keys(spec.paths).includes('/v2/stream/app.never'))
})

test('streams.allowed applies to streams made through regex keys, by name or by key', async (t) => {
  const running = await server({ streams: { allowed: ['test.event'] } })
  t.after(() => running.close())
  const posted = await fetch(`${running.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'app.clicks' }, test: 'x' }]) })
  assert.equal(posted.status, 201)
  const refused = await fetch(`${running.url}/v2/stream/app.clicks`)
  assert.equal(refused.status, 400)
})
