/**
 * Request rates of the intake (issue 16, `rate_limits`): a bucket per client address and per
 * producer token, 429 EVP_RATE_LIMITED with Retry-After, exempt addresses, clients behind a
 * trusted proxy, and the metric of what was limited.
 */
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { createRateLimiter } from '../../src/server/rate-limits.ts'
import { serveBundled, tempDir } from '../helpers.ts'
import type { RunningServer } from '../../src/server/index.ts'

test('the bucket: burst at once, then the rate; Retry-After says when; exempt addresses and other clients are not touched', () => {
  let now = 0
  const limiter = createRateLimiter(
    { per_ip: { requests_per_s: 2, burst: 3 }, per_producer: { requests_per_s: 1, burst: 1 }, exempt: ['10.0.0.0/8'] },
    { clock: () => now },
  )
  for (let i = 0; i < 3; i++) assert.equal(limiter.take('192.0.2.1'), undefined, `burst request ${i}`)
  const refused = limiter.take('192.0.2.1')
  assert.equal(refused?.code, 'EVP_RATE_LIMITED')
  assert.equal(refused?.statusCode, 429)
  assert.equal(refused?.details?.['retryAfterS'], 1)
  assert.equal(refused?.details?.['scope'], 'ip')
  assert.equal(limiter.take('192.0.2.2'), undefined, 'another client has its own bucket')
  now += 499
  assert.equal(limiter.take('192.0.2.1')?.code, 'EVP_RATE_LIMITED', 'half a request refilled: not yet')
  now += 2
  assert.equal(limiter.take('192.0.2.1'), undefined, 'one refilled after 0.5 s at 2/s')
  for (let i = 0; i < 100; i++) assert.equal(limiter.take('10.1.2.3'), undefined, 'exempt')
  // An IPv6 client counts with its /64.
  assert.equal(limiter.take('2001:db8::1'), undefined)
  assert.equal(limiter.take('2001:db8::2'), undefined)
  assert.equal(limiter.take('2001:db8::3'), undefined)
  assert.equal(limiter.take('2001:db8::4')?.code, 'EVP_RATE_LIMITED')
  // A producer's bucket is its own, whatever address it comes from.
  assert.equal(limiter.take('10.0.0.1', 'mediawiki'), undefined)
  const producer = limiter.take('10.0.0.2', 'mediawiki')
  assert.equal(producer?.details?.['scope'], 'producer')
  assert.match(producer!.message, /producer mediawiki sends more than 1 requests a second \(rate_limits\.per_producer\)/)
})

let server: RunningServer
let dir: string
const token = 'rate-test-token-0123456789abcdef0123456789abcdef'

before(async () => {
  dir = tempDir()
  writeFileSync(join(dir, 'web.token'), `${token}\n`)
  server = await serveBundled({
    server: { trust_proxy: ['127.0.0.1'] },
    rate_limits: { per_ip: { requests_per_s: 5, burst: 5 }, per_producer: { requests_per_s: 3, burst: 3 }, exempt: ['127.0.0.3'] },
    auth: { enabled: true, producers: [{ name: 'web', token_file: join(dir, 'web.token'), streams: ['test.event'] }], public_streams: ['/^test\\.event\\./'] },
  })
})
after(() => server?.close())

/** A POST from a given local address (node:http: fetch cannot choose one). */
function post(from: string, stream: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  const url = new URL(`${server.url}/v1/events`)
  const body = JSON.stringify({ $schema: '/eventplane/test/event/1.0.0', meta: { stream }, test: 'rate' })
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', localAddress: from, agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (text += chunk))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }))
    })
    req.on('error', reject)
    req.end(body)
  })
}

test('over its rate, a client address gets 429 EVP_RATE_LIMITED with Retry-After, and nothing is stored; other addresses go on', async () => {
  const topic = 'datacenter1.test.event.rate'
  const statuses: number[] = []
  let refused: Awaited<ReturnType<typeof post>> | undefined
  for (let i = 0; i < 8; i++) {
    const answer = await post('127.0.0.2', 'test.event.rate')
    statuses.push(answer.status)
    if (answer.status === 429) refused ??= answer
  }
  // 5 at once (the burst), plus what refilled meanwhile at 5/s.
  assert.ok(statuses.slice(0, 5).every((s) => s === 201), statuses.join(','))
  assert.ok(statuses.includes(429), statuses.join(','))
  const accepted = statuses.filter((s) => s === 201).length
  assert.equal(await server.platform.log!.latest(topic, 0), accepted)
  assert.match(String(refused!.headers['content-type']), /application\/problem\+json/)
  assert.equal(refused!.headers['retry-after'], '1')
  const problem = JSON.parse(refused!.body) as { code: string; detail: string }
  assert.equal(problem.code, 'EVP_RATE_LIMITED')
  assert.match(problem.detail, /this client address sends more than 5 requests a second \(rate_limits\.per_ip\)/)
  assert.equal((await post('127.0.0.4', 'test.event.rate')).status, 201, 'another address has its own bucket')
  for (let i = 0; i < 10; i++) assert.equal((await post('127.0.0.3', 'test.event.rate')).status, 201, 'an exempt address is never limited')
  await new Promise((resolve) => setTimeout(resolve, 1100))
  assert.equal((await post('127.0.0.2', 'test.event.rate')).status, 201, 'the bucket refilled')
})

test('behind a trusted proxy each forwarded client has its own bucket', async () => {
  const statuses: number[] = []
  for (let i = 0; i < 8; i++) statuses.push((await post('127.0.0.1', 'test.event.rate', { 'x-forwarded-for': '203.0.113.5' })).status)
  assert.ok(statuses.includes(429), statuses.join(','))
  assert.equal((await post('127.0.0.1', 'test.event.rate', { 'x-forwarded-for': '203.0.113.6' })).status, 201)
})

test("a producer's token has its own rate, whatever address it comes from", async () => {
  const statuses: number[] = []
  for (let i = 0; i < 6; i++) statuses.push((await post('127.0.0.1', 'test.event', { authorization: `Bearer ${token}`, 'x-forwarded-for': `198.51.100.${i + 1}` })).status)
  assert.deepEqual(statuses.slice(0, 3), [201, 201, 201])
  assert.ok(statuses.includes(429), statuses.join(','))
  const metrics = await (await fetch(`${server.url}/metrics`)).text()
  assert.match(metrics, /^eventplane_rate_limited_total\{scope="producer",producer="web"\} [1-9]/m)
  assert.match(metrics, /^eventplane_rate_limited_total\{scope="ip",producer="-"\} [1-9]/m)
})
