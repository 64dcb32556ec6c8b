/**
 * Producer auth (issue 16, docs/security.md "Producer auth"), over real sockets: tokens from the
 * environment and from files, public streams for browser producers, 401/403 with codes, read
 * tokens for streams and schemas, per-producer metrics, rotation on reload, and tokens that
 * never reach the log output or /metrics.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { pino } from 'pino'
import { createAuth } from '../../src/auth/index.ts'
import { loadConfig } from '../../src/config/index.ts'
import { preflight } from '../../src/server/preflight.ts'
import { startServer, type RunningServer } from '../../src/server/index.ts'
import { Capture, tempDir, writeBundledConfig } from '../helpers.ts'

// Tokens as an operator makes them (openssl rand -hex 32); each must never show up in output.
const webToken = 'a3f1c2d4e5b6a7980112233445566778899aabbccddeeff0011223344556677a'
const mwToken = 'mw-5d2c7e1f9a8b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081929'
const mwNextToken = 'mw-next-0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabb'
const readerToken = 'reader-77aa88bb99cc00dd11ee22ff33aa44bb55cc66dd77ee88ff99aa00b'
const wrongToken = 'not-a-token-of-this-deployment-0123456789abcdef0123456789abcdef'
const secrets = [webToken, mwToken, mwNextToken, readerToken, wrongToken]

let server: RunningServer
let output: Capture
let dir: string
let mwFile: string

before(async () => {
  dir = tempDir()
  mwFile = join(dir, 'mw.token')
  // Two tokens during a rotation, with a comment.
  writeFileSync(mwFile, `# mediawiki producers\n${mwToken}\n${mwNextToken}\n`)
  writeFileSync(join(dir, 'reader.token'), `${readerToken}\n`)
  process.env['EVP_TEST_TOKEN_WEB'] = webToken
  const file = writeBundledConfig(dir, {
    server: { port: 0 },
    intake: { test_events: [{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: 'readiness' }] },
    auth: {
      enabled: true,
      producers: [
        { name: 'web', token_env: 'EVP_TEST_TOKEN_WEB', streams: ['test.event'] },
        // Relative to the config file.
        { name: 'mediawiki', token_file: 'mw.token', streams: ['/^test\\.event\\.mw/'] },
      ],
      readers: [{ name: 'ops', token_file: 'reader.token', streams: ['test.event'] }],
      public_streams: ['test.event.public'],
      streams_public: false,
      schemas_public: false,
    },
  })
  output = new Capture()
  server = await startServer(loadConfig({ path: file, env: {}, cwd: dir }).config, { logger: pino({ level: 'trace' }, output) })
})

after(async () => {
  await server?.close()
  delete process.env['EVP_TEST_TOKEN_WEB']
})

const event = (stream: string, test = 'auth') => ({ $schema: '/eventplane/test/event/1.0.0', meta: { stream }, test })

async function post(events: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(events) })
  const text = await response.text()
  return { status: response.status, headers: response.headers, body: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>) }
}

const bearer = (token: string) => ({ authorization: `Bearer ${token}` })

/** Events in a stream's topic so far (the log's end offset). */
const stored = (stream: string) => server.platform.log!.latest(`datacenter1.${stream}`, 0)

test('without a token: 401 EVP_AUTH_REQUIRED with a Bearer challenge, and nothing is stored; a public stream takes the event', async () => {
  const before = await stored('test.event')
  const refused = await post([event('test.event')])
  assert.equal(refused.status, 401)
  assert.equal(refused.body?.['code'], 'EVP_AUTH_REQUIRED')
  assert.match(refused.headers.get('content-type') ?? '', /application\/problem\+json/)
  assert.equal(refused.headers.get('www-authenticate'), 'Bearer realm="eventplane"')
  assert.match(String(refused.body?.['detail']), /test\.event.*needs a token/)
  assert.equal(await stored('test.event'), before)

  // Browser producers keep no secret: public streams take their events.
  assert.equal((await post([event('test.event.public')])).status, 201)
})

test('a wrong token: 401 EVP_AUTH_INVALID (error="invalid_token"), before the body is read; so is a short one and another scheme', async () => {
  for (const headers of [bearer(wrongToken), bearer('short'), { authorization: `Basic ${Buffer.from(`u:${webToken}`).toString('base64')}` }, { 'x-api-key': wrongToken }]) {
    const refused = await post([event('test.event.public')], headers)
    assert.equal(refused.status, 401, JSON.stringify(headers))
    assert.equal(refused.body?.['code'], 'EVP_AUTH_INVALID')
    assert.equal(refused.headers.get('www-authenticate'), 'Bearer realm="eventplane", error="invalid_token"')
  }
})

test("a producer's token: its streams are taken; a stream that is not its own is 403 EVP_STREAM_FORBIDDEN and nothing of the batch is stored", async () => {
  assert.equal((await post([event('test.event')], bearer(webToken))).status, 201)
  assert.equal((await post(event('test.event'), { 'x-api-key': webToken })).status, 201, 'X-API-Key works as well')

  const beforeOwn = await stored('test.event')
  const mixed = await post([event('test.event'), event('test.event.mw.edits')], bearer(webToken))
  assert.equal(mixed.status, 403)
  assert.equal(mixed.body?.['code'], 'EVP_STREAM_FORBIDDEN')
  assert.match(String(mixed.body?.['detail']), /producer web may not write to stream "test\.event\.mw\.edits"/)
  assert.equal(await stored('test.event'), beforeOwn, 'the allowed event of the batch was not stored either')

  // A reader's token writes nothing.
  assert.equal((await post([event('test.event')], bearer(readerToken))).status, 403)
})

test('tokens from a file: each line is a token (a rotation holds two), relative to the config file', async () => {
  assert.equal((await post([event('test.event.mw.edits')], bearer(mwToken))).status, 201)
  assert.equal((await post([event('test.event.mw.edits')], bearer(mwNextToken))).status, 201)
  assert.equal((await post([event('test.event')], bearer(mwToken))).status, 403, 'test.event is not among its streams')
})

test('the fastify route (app.inject) and GET /v1/_test/events check the same way', async () => {
  const injected = await server.app.inject({ method: 'POST', url: '/v1/events', headers: { 'content-type': 'application/json' }, payload: JSON.stringify([event('test.event')]) })
  assert.equal(injected.statusCode, 401)
  assert.equal(injected.json().code, 'EVP_AUTH_REQUIRED')
  assert.equal(injected.headers['www-authenticate'], 'Bearer realm="eventplane"')
  const allowed = await server.app.inject({ method: 'POST', url: '/v1/events', headers: { 'content-type': 'application/json', ...bearer(webToken) }, payload: JSON.stringify([event('test.event')]) })
  assert.equal(allowed.statusCode, 201)
  assert.equal((await fetch(`${server.url}/v1/_test/events`)).status, 401)
  assert.equal((await fetch(`${server.url}/v1/_test/events`, { headers: bearer(webToken) })).status, 201)
})

test('a beacon to a stream that is not public is dropped (204 as always) and counted as forbidden', async () => {
  const capsule = { event: { action: 'auth' }, schema: 'EventplaneTest', webHost: 'en.wikipedia.org', wiki: 'enwiki', revision: -1 }
  const before = await server.platform.log!.latest('eventlogging_EventplaneTest', 0).catch(() => 0)
  const response = await fetch(`${server.url}/beacon/event?${encodeURIComponent(JSON.stringify(capsule))};`)
  assert.equal(response.status, 204)
  const deadline = Date.now() + 5000
  let forbidden = 0
  while (forbidden === 0 && Date.now() < deadline) {
    forbidden = Number(/^eventplane_beacon_requests_total\{outcome="forbidden"\} (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0)
    if (forbidden === 0) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  assert.equal(forbidden, 1)
  assert.equal(await server.platform.log!.latest('eventlogging_EventplaneTest', 0).catch(() => 0), before)
})

test('streams are not public here: a reader token for the stream reads it, others get 401 or 403; producers read their own streams', async () => {
  const open = async (path: string, headers: Record<string, string> = {}) => {
    const controller = new AbortController()
    const response = await fetch(`${server.url}${path}`, { headers: { accept: 'text/event-stream', ...headers }, signal: controller.signal })
    const status = response.status
    const code = status >= 400 ? ((await response.json()) as { code: string }).code : undefined
    controller.abort()
    return { status, code }
  }
  assert.deepEqual(await open('/v2/stream/test.event'), { status: 401, code: 'EVP_AUTH_REQUIRED' })
  assert.deepEqual(await open('/v2/stream/test.event', bearer(wrongToken)), { status: 401, code: 'EVP_AUTH_INVALID' })
  assert.equal((await open('/v2/stream/test.event', bearer(readerToken))).status, 200)
  assert.deepEqual(await open('/v2/stream/test.event,test.event.mw.edits', bearer(readerToken)), { status: 403, code: 'EVP_STREAM_FORBIDDEN' })
  assert.equal((await open('/v2/stream/test.event.mw.edits', bearer(mwToken))).status, 200)
})

test('schemas are not public here: any valid token reads them', async () => {
  const none = await fetch(`${server.url}/repositories`)
  assert.equal(none.status, 401)
  assert.equal(((await none.json()) as { code: string }).code, 'EVP_AUTH_REQUIRED')
  assert.equal((await fetch(`${server.url}/repositories`, { headers: bearer(wrongToken) })).status, 401)
  assert.equal((await fetch(`${server.url}/repositories`, { headers: bearer(readerToken) })).status, 200)
  assert.equal((await fetch(`${server.url}/v1/stream-configs`, { headers: bearer(webToken) })).status, 200)
  assert.equal((await fetch(`${server.url}/v1/stream-configs`)).status, 401)
  // Health and metrics stay the operator's.
  assert.equal((await fetch(`${server.url}/healthz`)).status, 200)
})

test('per-producer metrics count each outcome, by name', async () => {
  const text = await (await fetch(`${server.url}/metrics`)).text()
  const count = (principal: string, outcome: string) => Number(new RegExp(`^eventplane_auth_requests_total\\{principal="${principal}",outcome="${outcome}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0)
  assert.ok(count('web', 'allowed') >= 3)
  assert.ok(count('web', 'forbidden_stream') >= 1)
  assert.ok(count('mediawiki', 'allowed') >= 2)
  assert.ok(count('anonymous', 'no_token') >= 1)
  assert.ok(count('unknown', 'bad_token') >= 4)
  assert.ok(count('ops', 'allowed') >= 1)
})

test('rotation: a reload reads the token file again; the old token stops working, a broken file keeps the tokens in use', async () => {
  writeFileSync(mwFile, `${mwNextToken}\n`)
  assert.equal(server.platform.auth.reload(), undefined)
  assert.equal((await post([event('test.event.mw.edits')], bearer(mwToken))).status, 401)
  assert.equal((await post([event('test.event.mw.edits')], bearer(mwNextToken))).status, 201)

  writeFileSync(mwFile, '# emptied by mistake\n')
  assert.equal(server.platform.auth.reload()?.code, 'EVP_CONFIG_INVALID')
  assert.equal((await post([event('test.event.mw.edits')], bearer(mwNextToken))).status, 201, 'the last good tokens stay')
})

test('no token ever reaches the log output or /metrics', async () => {
  const metrics = await (await fetch(`${server.url}/metrics`)).text()
  for (const secret of secrets) {
    assert.ok(!output.text.includes(secret), 'a token is in the log output')
    assert.ok(!metrics.includes(secret), 'a token is in /metrics')
  }
  assert.ok(output.text.length > 0, 'the server did log (at trace level)')
})

test('config mistakes stop the start with EVP_CONFIG_INVALID naming the key, and config check reports them', async () => {
  const settings = (producer: Record<string, unknown>) => ({ enabled: true, producers: [{ name: 'p', streams: ['test.event'], ...producer }], readers: [], public_streams: [], streams_public: true, schemas_public: true })
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ token_env: 'EVP_TEST_TOKEN_UNSET' }, /auth\.producers\[0\]\.token_env: the environment variable EVP_TEST_TOKEN_UNSET of p is not set/],
    [{}, /needs exactly one of token_env and token_file/],
    [{ token_env: 'EVP_TEST_TOKEN_WEB', token_file: mwFile }, /needs exactly one of token_env and token_file/],
    [{ token_file: join(dir, 'missing.token') }, /token_file of p cannot be read: ENOENT/],
    [{ token_env: 'EVP_TEST_SHORT' }, /shorter than 16 characters/],
    [{ token_env: 'EVP_TEST_TOKEN_WEB', streams: ['not a stream'] }, /auth\.producers\[0\]\.streams\[0\]/],
  ]
  process.env['EVP_TEST_SHORT'] = 'abc'
  try {
    for (const [producer, message] of cases) {
      assert.throws(() => createAuth(settings(producer)), (error: { code: string; message: string }) => error.code === 'EVP_CONFIG_INVALID' && message.test(error.message))
    }
    // The same token for two principals.
    assert.throws(
      () => createAuth({ ...settings({ token_env: 'EVP_TEST_TOKEN_WEB' }), readers: [{ name: 'r', token_env: 'EVP_TEST_TOKEN_WEB', streams: ['test.event'] }] }),
      /has the same token as producers p/,
    )
    // config check: the finding names the key, and not the token.
    const file = writeBundledConfig(tempDir(), { auth: settings({ token_env: 'EVP_TEST_SHORT' }) })
    const findings = await preflight(loadConfig({ path: file, env: {} }).config)
    const finding = findings.find((f) => f.key.startsWith('auth.producers[0]'))
    assert.ok(finding, JSON.stringify(findings))
    assert.equal(finding.level, 'error')
    assert.ok(!finding.message.includes('abc'))
  } finally {
    delete process.env['EVP_TEST_SHORT']
  }
})
