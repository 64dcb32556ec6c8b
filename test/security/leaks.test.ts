/**
 * What the server gave away that it should not: addresses believed from anyone, the folders it
 * runs from, an endpoint that writes events, the error stream (which quotes refused events).
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { pino } from 'pino'
import { loadConfig } from '../../src/config/index.ts'
import { startServer } from '../../src/server/index.ts'
import { repoRoot, tempDir } from '../helpers.ts'
import { testPlatform } from '../intake/helpers.ts'
import { headersOf, securityServer, testEvent, testStreams, until, type TestServer } from './helpers.ts'

const withErrorStream = {
  defaults: testStreams.defaults,
  streams: { ...testStreams.streams, 'eventplane.error.validation': { schema_title: 'eventplane/error' } },
}

async function withServer(overrides: Record<string, unknown>, streams: object, body: (server: TestServer) => Promise<void>): Promise<void> {
  const server = await securityServer(overrides, streams)
  try {
    await body(server)
  } finally {
    await server.close()
  }
}

const clientIpOf = (event: Record<string, unknown> | undefined) => (event?.['http'] as { client_ip?: string } | undefined)?.client_ip

describe('client addresses', () => {
  test('X-Client-IP is believed only from a peer in server.trust_proxy (it was believed from anyone)', async () => {
    const post = (url: string, test: string, headers: Record<string, string>) =>
      fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify([testEvent(test)]) })

    // Over a socket: POST /v1/events is answered by the intake's own listener.
    await withServer({ server: { trust_proxy: ['10.0.0.0/8'] } }, testStreams, async (server) => {
      assert.equal((await post(server.url, 'x-client-ip', { 'x-client-ip': '203.0.113.9' })).status, 201)
      assert.equal((await post(server.url, 'x-forwarded-for', { 'x-forwarded-for': '198.51.100.7' })).status, 201)
      const events = await server.events('datacenter1.test.event')
      assert.equal(clientIpOf(events.find((e) => e['test'] === 'x-client-ip')), '127.0.0.1')
      assert.equal(clientIpOf(events.find((e) => e['test'] === 'x-forwarded-for')), '127.0.0.1')
    })
    await withServer({ server: { trust_proxy: ['127.0.0.1'] } }, testStreams, async (server) => {
      assert.equal((await post(server.url, 'x-client-ip', { 'x-client-ip': '203.0.113.9' })).status, 201)
      const events = await server.events('datacenter1.test.event')
      assert.equal(clientIpOf(events.find((e) => e['test'] === 'x-client-ip')), '203.0.113.9')
    })

    // In process: the same through fastify's route (app.inject's peer is 127.0.0.1 too).
    for (const [trust, expected] of [
      [['10.0.0.0/8'], '127.0.0.1'],
      [['127.0.0.1'], '203.0.113.9'],
    ] as const) {
      const platform = await testPlatform({ server: { trust_proxy: trust } })
      try {
        const response = await platform.app.inject({
          method: 'POST',
          url: '/v1/events',
          headers: { 'content-type': 'application/json', 'x-client-ip': '203.0.113.9' },
          payload: JSON.stringify([testEvent('inject')]),
        })
        assert.equal(response.statusCode, 201, response.body)
        const events = await platform.events('datacenter1.test.event')
        assert.equal(clientIpOf(events.find((e) => e['test'] === 'inject')), expected, `trust_proxy ${trust.join(',')}`)
      } finally {
        await platform.close()
      }
    }
  })
})

describe('folders', () => {
  test('answers never contain the server\'s folders', async () => {
    await withServer({}, withErrorStream, async (server) => {
      const secrets = [...new Set([repoRoot.replace(/\/+$/, ''), server.dir, process.cwd()])]
      const answers: string[] = []
      const record = async (what: string, response: Response) => {
        const headers = [...response.headers].map(([name, value]) => `${name}: ${value}`).join('\n')
        answers.push(`${what}\n${response.status} ${response.statusText}\n${headers}\n\n${await response.text()}`)
      }
      const refused: Array<Record<string, unknown>> = [
        { ...testEvent('traversal'), $schema: '/../../etc/passwd' },
        { ...testEvent('unknown schema'), $schema: '/nope/1.0.0' },
        { ...testEvent('unknown version'), $schema: '/eventplane/test/event/9.9.9' },
        { ...testEvent('unknown stream'), meta: { stream: 'nope.stream' } },
      ]
      for (const event of refused) {
        const response = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([event]) })
        assert.equal(response.status, 400, `${String(event['test'])} is refused`)
        await record(`POST ${String(event['test'])}`, response)
      }
      for (const path of ['/repositories/eventplane/jsonschema/nope/1.0.0', '/v2/stream/nope']) {
        const response = await fetch(`${server.url}${path}`)
        assert.ok(response.status >= 400, `GET ${path} is refused (${response.status})`)
        await record(`GET ${path}`, response)
      }
      for (const answer of answers) {
        for (const secret of secrets) assert.ok(!answer.includes(secret), `${secret} appears in:\n${answer}`)
      }

      // Each refusal became an error event; none names a folder either.
      let errors: Array<Record<string, unknown>> = []
      await until(async () => (errors = await server.events('datacenter1.eventplane.error.validation')).length >= refused.length, 5000, `${refused.length} error events`)
      for (const error of errors) {
        const text = JSON.stringify(error)
        for (const secret of secrets) assert.ok(!text.includes(secret), `${secret} appears in the error event ${text}`)
      }
    })
  })
})

describe('endpoints that should be off', () => {
  test('GET /v1/_test/events is off unless configured (every call wrote an event)', async () => {
    const bundled = loadConfig({ env: { EVENTPLANE_DATA_DIR: tempDir(), EVENTPLANE_PORT: '0' } }).config
    const server = await startServer(bundled, { logger: pino({ level: 'silent' }) })
    try {
      const response = await fetch(`${server.url}/v1/_test/events`)
      assert.equal(response.status, 404)
      assert.equal(((await response.json()) as { code: string }).code, 'EVP_NOT_FOUND')
      assert.ok(!(await server.platform.log!.topics()).includes('datacenter1.test.event'), 'no event was written')
    } finally {
      await server.close()
    }

    const testEvents = [{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: 'ready' }]
    await withServer({ intake: { test_events: testEvents } }, testStreams, async (configured) => {
      const response = await fetch(`${configured.url}/v1/_test/events`)
      assert.equal(response.status, 201, await response.clone().text())
      await response.arrayBuffer()
      assert.deepEqual((await configured.events('datacenter1.test.event')).map((e) => e['test']), ['ready'])
    })
  })

  test('the error stream is not served over SSE unless streams.expose_error_stream', async () => {
    const errorStream = 'eventplane.error.validation'
    const specStreams = async (url: string) => {
      const spec = (await (await fetch(`${url}/?spec`)).json()) as { paths: Record<string, { get?: { parameters?: Array<{ schema?: { items?: { enum?: string[] } } }> } }> }
      const listed = spec.paths['/v2/stream/{streams}']?.get?.parameters?.[0]?.schema?.items?.enum ?? []
      return { listed, paths: Object.keys(spec.paths) }
    }

    await withServer({}, withErrorStream, async (server) => {
      const response = await fetch(`${server.url}/v2/stream/${errorStream}`)
      assert.equal(response.status, 400)
      assert.equal(((await response.json()) as { code: string }).code, 'EVP_STREAM_UNKNOWN')
      const { listed, paths } = await specStreams(server.url)
      assert.ok(listed.includes('test.event'), `the spec lists the served streams: ${listed.join(', ')}`)
      assert.ok(!listed.includes(errorStream), `the spec lists ${errorStream}`)
      assert.ok(!paths.includes(`/v2/stream/${errorStream}`), `the spec has a path for ${errorStream}`)
    })

    await withServer({ streams: { expose_error_stream: true } }, withErrorStream, async (server) => {
      const served = await headersOf(`${server.url}/v2/stream/${errorStream}`)
      assert.equal(served.status, 200)
      assert.match(String(served.headers['content-type']), /^text\/event-stream/)
      const { listed } = await specStreams(server.url)
      assert.ok(listed.includes(errorStream), `the spec lists ${errorStream} once exposed: ${listed.join(', ')}`)
    })
  })
})
