import assert from 'node:assert/strict'
import { request as httpRequest } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { pino } from 'pino'
import { stringify } from 'yaml'
import { loadConfig } from '../../src/config/index.ts'
import { startServer, type RunningServer } from '../../src/server/index.ts'
import { bundledSchemas, openWrittenLog, repoRoot, tempDir, testEventLog } from '../helpers.ts'
import { eventually } from './helpers.ts'

// POST /v1/events over a real socket is answered by intake/listener.ts, before fastify (and
// so not reached by app.inject): the same answers must come out of it.
describe('POST /v1/events over HTTP (the fast path)', () => {
  const dir = tempDir()
  let server: RunningServer
  let eventLog: Record<string, unknown>
  before(async () => {
    eventLog = await testEventLog()
    const file = join(dir, 'eventplane.yaml')
    writeFileSync(
      file,
      stringify({
        server: { port: 0, trust_proxy: ['127.0.0.1'], cors: { origins: ['https://example.org'] } },
        schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }] },
        stream_config: { source: join(repoRoot, 'defaults/streams.yaml'), watch: false },
        data_dir: join(dir, 'data'),
        intake: { max_body_bytes: 65536 },
        event_log: eventLog,
      }),
    )
    server = await startServer(loadConfig({ path: file, env: {} }).config, { logger: pino({ level: 'silent' }) })
  })
  after(() => server.close())

  const event = (fields: Record<string, unknown> = {}) => ({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, ...fields })
  const post = (body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }, query = '') =>
    fetch(`${server.url}/v1/events${query}`, { method: 'POST', headers, body })

  test('201 with the reason phrase, the request id echoed, CORS for a configured origin', async () => {
    const response = await post(JSON.stringify([event(), event()]), { 'content-type': 'application/json', 'x-request-id': 'abc', origin: 'https://example.org' })
    assert.equal(response.status, 201)
    assert.equal(response.statusText, 'All 2 out of 2 events were accepted.')
    assert.equal(await response.text(), '')
    assert.equal(response.headers.get('x-request-id'), 'abc')
    assert.equal(response.headers.get('access-control-allow-origin'), 'https://example.org')
    const other = await post(JSON.stringify(event()), { 'content-type': 'application/json', origin: 'https://elsewhere.example' })
    assert.equal(other.headers.get('access-control-allow-origin'), null)
    assert.match(other.headers.get('x-request-id') ?? '', /.+/)
  })

  test('207 and 400 bodies as from the fastify route', async () => {
    const mixed = await post(JSON.stringify([event(), event({ test: 1 })]))
    assert.equal(mixed.status, 207)
    const body = (await mixed.json()) as { invalid: Array<{ index: number; context: { code: string } }>; error: unknown[] }
    assert.equal(body.invalid[0]!.index, 1)
    assert.equal(body.invalid[0]!.context.code, 'EVP_EVENT_INVALID')
    assert.deepEqual(body.error, [])
    const invalid = await post(JSON.stringify([event({ test: 1 })]))
    assert.equal(invalid.status, 400)
    assert.equal(invalid.statusText, '1 out of 1 events were invalid and not accepted.')
  })

  test('bad bodies: problem documents with their codes', async () => {
    const cases: Array<[string | Buffer, Record<string, string>, number, string]> = [
      ['{"not json', { 'content-type': 'application/json' }, 400, 'EVP_BODY_INVALID_JSON'],
      ['', { 'content-type': 'application/json' }, 400, 'EVP_BODY_EMPTY'],
      ['[]', { 'content-type': 'application/json' }, 400, 'EVP_BODY_EMPTY'],
      ['<x/>', { 'content-type': 'application/xml' }, 415, 'EVP_UNSUPPORTED_MEDIA_TYPE'],
      [Buffer.from([0x5b, 0x22, 0xff, 0x22, 0x5d]), { 'content-type': 'application/json' }, 400, 'EVP_BODY_INVALID_UTF8'],
      ['['.repeat(1000) + ']'.repeat(1000), { 'content-type': 'application/json' }, 400, 'EVP_BODY_TOO_DEEP'],
      [JSON.stringify([event({ test: 'x'.repeat(100_000) })]), { 'content-type': 'application/json' }, 413, 'EVP_BODY_TOO_LARGE'],
    ]
    for (const [body, headers, status, code] of cases) {
      const response = await post(body, headers)
      assert.equal(response.status, status, code)
      assert.match(response.headers.get('content-type') ?? '', /application\/problem\+json/)
      assert.equal(((await response.json()) as { code: string }).code, code)
    }
    assert.equal((await post(JSON.stringify(event()))).status, 201, 'still serving')
  })

  test('a body over the limit without Content-Length (chunked) is refused while it streams', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume()
        resolve(res.statusCode ?? 0)
      })
      req.on('error', reject)
      for (let i = 0; i < 20; i++) req.write('x'.repeat(8192))
      req.end()
    })
    assert.equal(status, 413)
  })

  test('?hasty answers 202 first; ?schema_uri and ?stream fill events in; the client IP comes through the trusted proxy', async () => {
    const hasty = await post(JSON.stringify([{ test: 'hasty' }]), { 'content-type': 'text/plain', 'x-forwarded-for': '198.51.100.20' }, '?hasty=1&schema_uri=/eventplane/test/event/1.0.0&stream=test.event')
    assert.equal(hasty.status, 202)
    assert.equal(hasty.statusText, '1 events hastily received.')
    await eventually(async () => {
      const log = await openWrittenLog(join(dir, 'data'), eventLog)
      try {
        for await (const record of log.read({ topic: 'datacenter1.test.event', partition: 0, offset: 0 }, { follow: false })) {
          const stored = JSON.parse(record.value.toString()) as { test?: string; http?: { client_ip?: string } }
          if (stored.test === 'hasty') return stored.http?.client_ip === '198.51.100.20'
        }
        return false
      } finally {
        await log.close()
      }
    })
  })

  test('other methods on /v1/events are 405 with Allow (it was 404); OPTIONS and other paths go to fastify', async () => {
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      const response = await fetch(`${server.url}/v1/events`, { method })
      assert.equal(response.status, 405, method)
      assert.equal(response.headers.get('allow'), 'POST')
      assert.equal(((await response.json()) as { code: string }).code, 'EVP_METHOD_NOT_ALLOWED')
    }
    const preflight = await fetch(`${server.url}/v1/events`, { method: 'OPTIONS', headers: { origin: 'https://example.org', 'access-control-request-method': 'POST' } })
    assert.equal(preflight.status, 204)
    assert.equal((await fetch(`${server.url}/healthz`)).status, 200)
    const metrics = await (await fetch(`${server.url}/metrics`)).text()
    assert.match(metrics, /eventplane_http_request_duration_seconds_count\{method="POST",route="\/v1\/events",status="201"\} \d+/)
  })
})
