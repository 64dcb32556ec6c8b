import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { loadConfig } from '../../src/config/index.ts'
import { buildApp, openPlatform, type Platform } from '../../src/server/index.ts'
import { tempDir } from '../helpers.ts'

describe('the platform app on the bundled defaults', () => {
  let platform: Platform
  let app: FastifyInstance
  before(async () => {
    platform = await openPlatform(loadConfig({ env: { EVENTPLANE_DATA_DIR: tempDir() } }).config, { logger: pino({ level: 'silent' }) })
    app = await buildApp(platform)
  })
  after(async () => {
    await app.close()
    await platform.close()
  })

  test('health, readiness and info', async () => {
    assert.deepEqual((await app.inject('/healthz')).json(), { status: 'ok' })
    const ready = await app.inject('/readyz')
    assert.equal(ready.statusCode, 200)
    assert.equal(ready.json().status, 'ready')
    assert.equal((await app.inject('/_info')).json().name, 'eventplane')
    assert.match((await app.inject('/robots.txt')).body, /Disallow: \//)
    assert.equal((await app.inject('/')).json().endpoints.schemas, '/repositories')
  })

  test('Prometheus metrics carry eventplane_ names, with request latency by route', async () => {
    await app.inject('/repositories/eventplane/jsonschema/eventplane/test/event/1.0.0.yaml')
    const metrics = (await app.inject('/metrics')).body
    assert.match(metrics, /eventplane_http_request_duration_seconds_count\{method="GET",route="\/repositories\/:repo\/jsonschema\/\*",status="200"\} \d+/)
    assert.match(metrics, /eventplane_stream_config_/)
    assert.match(metrics, /eventplane_process_cpu_seconds_total|eventplane_process_resident_memory_bytes/)
  })

  test('every response carries a request id; an unknown route is a problem document', async () => {
    const response = await app.inject({ url: '/nope', headers: { 'x-request-id': 'abc-123' } })
    assert.equal(response.statusCode, 404)
    assert.equal(response.headers['x-request-id'], 'abc-123')
    assert.equal(response.json().code, 'EVP_NOT_FOUND')
    const bad = await app.inject('/repositories/eventplane/jsonschema/%zz')
    assert.equal(bad.statusCode, 400)
    assert.equal(bad.json().code, 'EVP_BAD_REQUEST')
  })
})

test('schemas.base_uris resolves repo:<name> and refuses an unknown repository', async () => {
  const { config } = loadConfig({ env: { EVENTPLANE_DATA_DIR: tempDir() } })
  const platform = await openPlatform(
    { ...config, schemas: { ...config.schemas, base_uris: ['repo:eventplane'] }, stream_config: { ...config.stream_config, source: undefined } } as typeof config,
    { logger: pino({ level: 'silent' }) },
  )
  assert.equal((await platform.schemas.get('/eventplane/test/event/1.0.0')).schema['title'], 'eventplane/test/event')
  await platform.close()
  await assert.rejects(
    openPlatform({ ...config, schemas: { ...config.schemas, base_uris: ['repo:nope'] } } as typeof config, { logger: pino({ level: 'silent' }) }),
    (error: { code?: string }) => error.code === 'EVP_CONFIG_INVALID',
  )
})

test('/?spec is the OpenAPI document, its example is accepted, and /?doc describes it; /v1/_test/events is off by default', async () => {
  const platform = await openPlatform(loadConfig({ env: { EVENTPLANE_DATA_DIR: tempDir() } }).config, { logger: pino({ level: 'silent' }) })
  const app = await buildApp(platform)
  try {
    const spec = (await app.inject('/?spec')).json()
    assert.equal(spec.openapi, '3.1.0')
    for (const path of ['/v1/events', '/repositories', '/w/api.php', '/healthz', '/metrics']) assert.ok(spec.paths[path], path)
    const example = spec.paths['/v1/events'].post.requestBody.content['application/json'].example
    const posted = await app.inject({ method: 'POST', url: '/v1/events', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(example) })
    assert.equal(posted.statusCode, 201, posted.body)
    const doc = await app.inject('/?doc')
    assert.match(doc.headers['content-type'] as string, /text\/html/)
    assert.match(doc.body, /<code>\/v1\/events<\/code>/)
    assert.doesNotMatch(doc.body, /<script|<link|(src|href)=["']?(https?:)?\/\//, 'the page loads nothing from elsewhere')
    // Every call would write an event: a public server must not have it unless asked to.
    assert.equal((await app.inject('/v1/_test/events')).statusCode, 404)
  } finally {
    await app.close()
    await platform.close()
  }
})
