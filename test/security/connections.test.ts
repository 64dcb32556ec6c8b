/**
 * Connection-level hardening, over real sockets on loopback: timeouts on slow clients, caps on
 * connections and on bodies being received, problem documents for what node:http refuses, and
 * the headers every answer carries.
 */
import assert from 'node:assert/strict'
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http'
import { describe, test } from 'node:test'
import { headersOf, RawClient, rawRequest, securityServer, sleep, testEvent, until, type RawAnswer, type TestServer } from './helpers.ts'

const problemType = /^application\/problem\+json/

function assertProblem(answer: RawAnswer, status: number, code: string): void {
  assert.equal(answer.status, status, `status (body: ${answer.body.slice(0, 300)})`)
  assert.match(answer.headers['content-type'] ?? '', problemType)
  assert.equal((JSON.parse(answer.body) as { code: string }).code, code)
}

/** Runs `body` against a fresh server, closing it (and every raw client it opened) afterwards. */
async function withServer(overrides: Record<string, unknown>, body: (server: TestServer, open: () => Promise<RawClient>) => Promise<void>): Promise<void> {
  const server = await securityServer(overrides)
  const clients: RawClient[] = []
  const open = async () => {
    const client = await RawClient.open(server.port)
    clients.push(client)
    return client
  }
  try {
    await body(server, open)
  } finally {
    for (const client of clients) client.destroy()
    await server.close()
  }
}

const postEvents = (url: string, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
  fetch(`${url}/v1/events`, { method: 'POST', headers, body })

describe('slow clients are cut', () => {
  test('slow headers are cut after server.headers_timeout_ms with 408 EVP_REQUEST_TIMEOUT (they were held for minutes)', async () => {
    await withServer({ server: { headers_timeout_ms: 500, request_timeout_ms: 1000 } }, async (_server, open) => {
      const client = await open()
      await client.write('POST /v1/events HTTP/1.1\r\nHost: x\r\n')
      const answer = await client.answer(5000)
      assertProblem(answer, 408, 'EVP_REQUEST_TIMEOUT')
      await client.closed(5000)
    })
  })

  test('a slow body is cut after server.request_timeout_ms', async () => {
    await withServer({ server: { headers_timeout_ms: 500, request_timeout_ms: 1000 } }, async (_server, open) => {
      const client = await open()
      await client.write('POST /v1/events HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n')
      await client.write('[{"$schema"')
      const answer = await client.answer(5000)
      assertProblem(answer, 408, 'EVP_REQUEST_TIMEOUT')
      await client.closed(5000)
    })
  })
})

describe('connection caps', () => {
  test('one address cannot hold more than server.max_connections_per_ip connections (there was no cap)', async () => {
    await withServer({ server: { max_connections_per_ip: 3, keep_alive_timeout_ms: 60000 } }, async (server, open) => {
      // Three keep-alive connections, each having had one answer (so the server has counted it).
      const held: RawClient[] = []
      for (let i = 0; i < 3; i++) {
        const client = await open()
        await client.write(rawRequest('GET', '/healthz'))
        assert.equal((await client.answer()).status, 200)
        client.received = ''
        held.push(client)
      }
      const refused = await open()
      await refused.write(rawRequest('POST', '/v1/events', { 'content-type': 'application/json' }, JSON.stringify([testEvent('refused connection')])))
      const answer = await refused.answer()
      assertProblem(answer, 429, 'EVP_TOO_MANY_CONNECTIONS')
      assert.match(answer.headers['retry-after'] ?? '', /^\d+$/)
      await refused.closed()

      // A held connection still works, and the refused connection's event never reached the intake.
      await held[0]!.write(rawRequest('POST', '/v1/events', { 'content-type': 'application/json' }, JSON.stringify([testEvent('held connection')])))
      assert.equal((await held[0]!.answer()).status, 201)
      assert.deepEqual((await server.events('datacenter1.test.event')).map((e) => e['test']), ['held connection'])

      held.pop()!.destroy()
      // The slot is given back once the server sees the close: a new connection then works.
      let status = 0
      await until(async () => {
        const client = await open()
        await client.write(rawRequest('GET', '/healthz', { connection: 'close' }))
        status = (await client.answer()).status
        client.destroy()
        return status === 200
      }, 5000, `a new connection to work after one closed (last status ${status})`)
    })

    await withServer({ server: { max_connections_per_ip: 3, trust_proxy: ['127.0.0.1'], keep_alive_timeout_ms: 60000 } }, async (_server, open) => {
      const clients = await Promise.all(Array.from({ length: 5 }, () => open()))
      for (const client of clients) await client.write(rawRequest('GET', '/healthz'))
      for (const client of clients) assert.equal((await client.answer()).status, 200, 'trusted proxies are exempt from the per-address cap')
    })
  })

  test('server.max_connections caps the total', async () => {
    await withServer({ server: { max_connections: 2, keep_alive_timeout_ms: 60000 } }, async (_server, open) => {
      for (let i = 0; i < 2; i++) {
        const client = await open()
        await client.write(rawRequest('GET', '/healthz'))
        assert.equal((await client.answer()).status, 200)
      }
      const third = await open()
      await third.write(rawRequest('GET', '/healthz'))
      const answer = await third.answer()
      assertProblem(answer, 503, 'EVP_OVERLOADED')
      assert.match(answer.headers['retry-after'] ?? '', /^\d+$/)
      await third.closed()
    })
  })
})

describe('what node:http refuses before routing', () => {
  test('headers over 16 KiB get 431 EVP_HEADERS_TOO_LARGE as problem+json (they got node\'s own JSON)', async () => {
    await withServer({}, async (_server, open) => {
      const client = await open()
      await client.write(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20 * 1024)}\r\n\r\n`)
      const answer = await client.answer()
      assertProblem(answer, 431, 'EVP_HEADERS_TOO_LARGE')
      assert.equal(answer.headers['x-content-type-options'], 'nosniff')
      await client.closed()
    })
  })

  test('bytes that are not HTTP get 400 problem+json', async () => {
    await withServer({}, async (_server, open) => {
      for (const garbage of ['HELLO THERE\r\n\r\n', Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x0d, 0x0a, 0x0d, 0x0a])]) {
        const client = await open()
        await client.write(garbage)
        const answer = await client.answer()
        assertProblem(answer, 400, 'EVP_BAD_REQUEST')
        await client.closed()
      }
    })
  })
})

/**
 * A POST with node:http over a connection of its own: `send` writes the body. Resolves once the
 * answer has been read and the connection has closed (at most 10 s), with every network error
 * seen before or after the answer.
 */
function nodeHttpPost(url: string, headers: Record<string, string>, send: (request: ClientRequest) => void) {
  return new Promise<{ status: number; type: string; body: string; errors: string[] }>((resolve, reject) => {
    const errors: string[] = []
    let answer: { status: number; type: string; body: string } | undefined
    let socketClosed = false
    const done = () => {
      if (answer === undefined || !socketClosed) return
      clearTimeout(timer)
      resolve({ ...answer, errors })
    }
    const request = httpRequest(url, { method: 'POST', headers, agent: false }, (response: IncomingMessage) => {
      let text = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => (text += chunk))
      response.on('error', (error: NodeJS.ErrnoException) => errors.push(`response: ${error.code ?? error.message}`))
      response.on('end', () => {
        answer = { status: response.statusCode ?? 0, type: String(response.headers['content-type']), body: text }
        done()
      })
    })
    const timer = setTimeout(() => {
      request.destroy()
      reject(new Error(`no whole answer and close within 10 s (answer: ${answer?.status}, errors: ${errors.join(', ')})`))
    }, 10_000)
    request.on('socket', (socket) =>
      socket.once('close', () => {
        socketClosed = true
        done()
        // The answer's 'end' may be emitted just after the socket's 'close'.
        setImmediate(() => {
          if (answer !== undefined) return
          clearTimeout(timer)
          reject(new Error(`the connection closed without a whole answer (errors: ${errors.join(', ')})`))
        })
      }),
    )
    request.on('error', (error: NodeJS.ErrnoException) => errors.push(`${answer === undefined ? 'before' : 'after'} the answer: ${error.code ?? error.message}`))
    send(request)
  })
}

function assertTooLarge(status: number, type: string, body: string, what: string): void {
  assert.equal(status, 413, `${what}: ${body.slice(0, 200)}`)
  assert.match(type, problemType, what)
  assert.equal((JSON.parse(body) as { code: string }).code, 'EVP_BODY_TOO_LARGE', what)
}

describe('request bodies', () => {
  /** A valid one-event batch padded with spaces (still JSON) to exactly `bytes`. */
  const paddedBatch = (test: string, bytes: number) => {
    const json = JSON.stringify([testEvent(test)])
    return json + ' '.repeat(bytes - json.length)
  }

  test('bodies being received are bounded in all by intake.max_pending_body_bytes', async () => {
    await withServer({ intake: { max_pending_body_bytes: 1048576, max_body_bytes: 1048576 } }, async (server, open) => {
      const first = await open()
      const firstBody = paddedBatch('first', 700_000)
      await first.write(rawRequest('POST', '/v1/events', { 'content-type': 'application/json', 'content-length': '700000' }))
      for (let i = 0; i < 5; i++) {
        await first.write(firstBody.slice(i * 20, (i + 1) * 20))
        await sleep(40)
      }
      // 700,000 bytes being received: another 700,000 would pass the 1 MiB bound.
      const second = await postEvents(server.url, paddedBatch('second', 700_000))
      assert.equal(second.status, 503)
      assert.match(second.headers.get('content-type') ?? '', problemType)
      assert.equal(((await second.json()) as { code: string }).code, 'EVP_OVERLOADED')
      assert.match(second.headers.get('retry-after') ?? '', /^\d+$/)

      await first.write(firstBody.slice(100))
      assert.equal((await first.answer()).status, 201)
      const third = await postEvents(server.url, paddedBatch('third', 700_000))
      assert.equal(third.status, 201)
      assert.deepEqual((await server.events('datacenter1.test.event')).map((e) => e['test']).sort(), ['first', 'third'])
    })
  })

  test('a body over the limit is answered 413 to fetch and node:http clients (they saw EPIPE)', async () => {
    await withServer({ intake: { max_body_bytes: 1048576 } }, async (server) => {
      const big = Buffer.from(JSON.stringify([testEvent('x'.repeat(3 * 1024 * 1024))]))
      const piece = 128 * 1024
      const pieces = Array.from({ length: Math.ceil(big.length / piece) }, (_, i) => big.subarray(i * piece, (i + 1) * piece))

      // fetch: the whole body at once (a declared Content-Length), then sent as a stream, in
      // pieces with pauses, so that it is still being sent when the server has seen enough.
      const whole = await postEvents(server.url, big.toString())
      assertTooLarge(whole.status, whole.headers.get('content-type') ?? '', await whole.text(), 'fetch, Content-Length')
      let next = 0
      const stream = new ReadableStream<Uint8Array>({
        async pull(controller) {
          await sleep(5)
          if (next < pieces.length) controller.enqueue(pieces[next++]!)
          else controller.close()
        },
      })
      const streamed = await fetch(`${server.url}/v1/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: stream,
        duplex: 'half',
        signal: AbortSignal.timeout(10_000),
      } as RequestInit)
      assertTooLarge(streamed.status, streamed.headers.get('content-type') ?? '', await streamed.text(), 'fetch, streamed')

      // node:http, the body written whole, then ended: chunked, then with a declared length.
      for (const [what, headers, send] of [
        ['node:http, chunked', { 'content-type': 'application/json' }, (request: ClientRequest) => {
          request.write(big)
          request.end()
        }],
        ['node:http, Content-Length', { 'content-type': 'application/json', 'content-length': String(big.length) }, (request: ClientRequest) => request.end(big)],
      ] as const) {
        const answer = await nodeHttpPost(`${server.url}/v1/events`, headers, send)
        assertTooLarge(answer.status, answer.type, answer.body, what)
        assert.deepEqual(answer.errors, [], `${what}: network errors around the answer`)
      }
    })

    // A body larger than the socket buffers hold (here ~4 MB on loopback): the old server closed
    // after answering while the client still sent, and node:http saw EPIPE after the 413.
    await withServer({ intake: { max_body_bytes: 2 * 1048576 } }, async (server) => {
      const big = Buffer.alloc(7 * 1048576, 0x20)
      big.write('[')
      const answer = await nodeHttpPost(`${server.url}/v1/events`, { 'content-type': 'application/json' }, (request) => request.end(big))
      assertTooLarge(answer.status, answer.type, answer.body, 'node:http, 7 MiB over a 2 MiB limit')
      assert.deepEqual(answer.errors, [], 'node:http, 7 MiB over a 2 MiB limit: network errors around the answer')
      const fetched = await postEvents(server.url, big.toString())
      assertTooLarge(fetched.status, fetched.headers.get('content-type') ?? '', await fetched.text(), 'fetch, 7 MiB over a 2 MiB limit')
    })
  })

  test('charset=utf-16 is 415 EVP_UNSUPPORTED_MEDIA_TYPE (it was 400)', async () => {
    await withServer({}, async (server) => {
      const utf16 = Buffer.from(JSON.stringify([testEvent('utf-16')]), 'utf16le')
      const refused = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json; charset=utf-16' }, body: utf16 })
      assert.equal(refused.status, 415)
      assert.match(refused.headers.get('content-type') ?? '', problemType)
      assert.equal(((await refused.json()) as { code: string }).code, 'EVP_UNSUPPORTED_MEDIA_TYPE')
      for (const type of ['application/json; charset=utf-8', 'application/json; charset="UTF-8"']) {
        const accepted = await postEvents(server.url, JSON.stringify([testEvent(type)]), { 'content-type': type })
        assert.equal(accepted.status, 201, type)
      }
      assert.deepEqual((await server.events('datacenter1.test.event')).map((e) => e['test']), ['application/json; charset=utf-8', 'application/json; charset="UTF-8"'])
    })
  })
})

describe('answer headers', () => {
  const assertSecurityHeaders = (headers: Headers | Record<string, string | string[] | undefined>, what: string) => {
    const get = (name: string) => (headers instanceof Headers ? headers.get(name) : (headers[name] as string | undefined)) ?? ''
    assert.equal(get('x-content-type-options'), 'nosniff', what)
    assert.equal(get('x-frame-options'), 'DENY', what)
    const policy = get('content-security-policy')
    assert.ok(policy.includes("default-src 'none'"), `${what}: ${policy}`)
    assert.ok(policy.includes("frame-ancestors 'none'"), `${what}: ${policy}`)
    return policy
  }

  test('answers with a body carry nosniff, frame and content security policies', async () => {
    await withServer({}, async (server) => {
      // The intake's 201 has no body for a browser to handle: it skips them (the hot path).
      const created = await postEvents(server.url, JSON.stringify([testEvent('headers')]))
      assert.equal(created.status, 201)
      assert.equal(await created.text(), '')
      const partly = await postEvents(server.url, JSON.stringify([testEvent('headers'), { ...testEvent('headers'), test: 1 }]))
      assert.equal(partly.status, 207)
      assertSecurityHeaders(partly.headers, 'POST /v1/events 207')
      const invalid = await postEvents(server.url, JSON.stringify([{ ...testEvent('headers'), test: 1 }]))
      assert.equal(invalid.status, 400)
      assertSecurityHeaders(invalid.headers, 'POST /v1/events 400')
      const health = await fetch(`${server.url}/healthz`)
      assert.equal(health.status, 200)
      assertSecurityHeaders(health.headers, 'GET /healthz')
      const missing = await fetch(`${server.url}/no/such/thing`)
      assert.equal(missing.status, 404)
      assertSecurityHeaders(missing.headers, '404')
      const doc = await fetch(`${server.url}/?doc`)
      assert.equal(doc.status, 200)
      assert.match(doc.headers.get('content-type') ?? '', /^text\/html/)
      const policy = assertSecurityHeaders(doc.headers, 'GET /?doc')
      assert.ok(policy.includes("style-src 'unsafe-inline'"), policy)
      assert.ok(!/script-src/.test(policy) && !/'unsafe-eval'/.test(policy), policy)
      await Promise.all([partly, invalid, health, missing, doc].map((response) => response.arrayBuffer()))

      const sse = await headersOf(`${server.url}/v2/stream/test.event`)
      assert.equal(sse.status, 200)
      assert.match(String(sse.headers['content-type']), /^text\/event-stream/)
      assertSecurityHeaders(sse.headers, 'GET /v2/stream/test.event')
    })
  })

  test('/metrics has no CORS headers and can live on a listener of its own', async () => {
    await withServer({}, async (server) => {
      const origin = { origin: 'https://evil.example' }
      const metrics = await fetch(`${server.url}/metrics`, { headers: origin })
      assert.equal(metrics.status, 200)
      assert.match(await metrics.text(), /eventplane_/)
      assert.equal(metrics.headers.get('access-control-allow-origin'), null)
      const health = await fetch(`${server.url}/healthz`, { headers: origin })
      assert.equal(health.headers.get('access-control-allow-origin'), '*')
      await health.arrayBuffer()
    })

    await withServer({ server: { metrics: { port: 0 } } }, async (server) => {
      const metricsUrl = server.server.metricsUrl
      assert.ok(metricsUrl !== undefined, 'server.metricsUrl is set')
      assert.notEqual(metricsUrl, server.url)
      const main = await fetch(`${server.url}/metrics`)
      assert.equal(main.status, 404)
      await main.arrayBuffer()
      const apart = await fetch(`${metricsUrl}/metrics`)
      assert.equal(apart.status, 200)
      assert.match(await apart.text(), /eventplane_/)
      for (const path of ['/healthz', '/v1/events', '/', '/metrics/x']) {
        const other = await fetch(`${metricsUrl}${path}`)
        assert.equal(other.status, 404, path)
        await other.arrayBuffer()
      }
    })
  })
})
