/**
 * The attacks, in the order they run. Each sends what a hostile or broken client would and
 * checks what the server is meant to answer (docs/intake.md, docs/streams.md, docs/config.md,
 * docs/errors.md); the harness adds the targets every attack shares (no crash, no undocumented
 * 5xx, /healthz under 100 ms, RSS back, acknowledged events in the log exactly once).
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { connect, type Socket } from 'node:net'
import { EventSource } from 'eventsource'
import { describeAnswer, header, isObject, rawAnswer, rawExchange, type Answer } from './client.ts'
import { generateCorpus } from './corpus.ts'
import { attackerAddress, getPath, metricValue, streams, type Attack, type AttackContext, type JsonObject, type Outcome } from './harness.ts'

const testSchema = '/eventplane/test/event/1.0.0'
const problemType = /^application\/problem\+json\b/i

// ---- small helpers ------------------------------------------------------------------------------

/** Runs `work` over `items`, `concurrency` at a time. */
async function pool<T>(items: readonly T[], concurrency: number, work: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0
  const lanes = Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) {
      const index = next++
      await work(items[index]!, index)
    }
  })
  await Promise.all(lanes)
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i)

function codeOf(outcome: Outcome | undefined): string {
  if (outcome === undefined) return 'none'
  return outcome.kind === 'refused' ? outcome.code : outcome.kind
}

/** `label` of an answer, for messages. */
const said = (answer: Answer) => answer.label + (answer.error && answer.status !== undefined ? ` (then ${answer.error})` : '')

function isProblem(answer: Answer, status: number, code: string): boolean {
  return answer.status === status && answer.code === code && problemType.test(header(answer.headers, 'content-type') ?? '')
}

function expectProblem(ctx: AttackContext, answer: Answer, status: number, code: string, what: string): boolean {
  return ctx.expect(isProblem(answer, status, code), `${what}: ${status} ${code} as problem+json, got ${said(answer)}${answer.status !== undefined ? ` (${header(answer.headers, 'content-type') ?? 'no content type'})` : ''}`)
}

/** The error events of this attack whose raw_event mentions `marker`. */
async function errorEventsAbout(ctx: AttackContext, marker: string): Promise<JsonObject[]> {
  const records = await ctx.readLog(`${ctx.limits.topicPrefix}${ctx.limits.errorStream}`)
  return records.map((r) => r.value).filter((v): v is JsonObject => v !== undefined && typeof v['raw_event'] === 'string' && v['raw_event'].includes(marker))
}

/** ESTABLISHED server-side sockets of the listener on `port`, by the peer's port (from /proc/net/tcp). */
function serverSockets(port: number): Map<number, string> {
  const states = new Map<number, string>()
  const local = `0100007F:${port.toString(16).toUpperCase().padStart(4, '0')}`
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/)
      if (fields.length < 4) continue
      const [, localAddress, remoteAddress, state] = fields
      if (!localAddress!.endsWith(local) && !localAddress!.endsWith(`0000000000000000FFFF0000${local}`)) continue
      states.set(parseInt(remoteAddress!.split(':')[1]!, 16), state!)
    }
  }
  return states
}
const established = '01'

/** A '[item,item,…]' body of at most `maxBytes` bytes (item '1' or '{}'), and its item count. */
function repeated(item: string, maxBytes: number): { body: Buffer; items: number } {
  const size = item.length + 1
  const items = Math.floor((maxBytes - 1) / size)
  const body = Buffer.alloc(items * size + 1)
  body.write('[')
  body.fill(`${item},`, 1, 1 + size * (items - 1))
  body.write(`${item}]`, size * (items - 1) + 1)
  return { body, items }
}

// ---- slow clients ------------------------------------------------------------------------------

interface SlowConnection {
  socket: Socket
  openedAt: number
  closedAt: number | undefined
  ending: string | undefined
  bytes: Buffer[]
}

/**
 * Opens `count` connections from the attacker's address that send `head`, then `trickle` one
 * byte every 300 ms, and never finish. Resolves once every connection has ended, or
 * `deadlineMs` after the last one opened.
 */
async function slowConnections(ctx: AttackContext, count: number, head: string, trickle: string, deadlineMs: number, whenOpen: () => Promise<void>): Promise<SlowConnection[]> {
  const connections: SlowConnection[] = []
  for (let i = 0; i < count && !ctx.signal.aborted; i++) {
    const socket = ctx.own(connect({ host: ctx.host, port: ctx.port, localAddress: attackerAddress }))
    const connection: SlowConnection = { socket, openedAt: Date.now(), closedAt: undefined, ending: undefined, bytes: [] }
    connections.push(connection)
    let sent = 0
    let timer: NodeJS.Timeout | undefined
    socket.on('connect', () => {
      socket.write(head)
      timer = setInterval(() => {
        if (!socket.destroyed && socket.writable) socket.write(trickle[sent++ % trickle.length]!)
      }, 300)
    })
    socket.on('data', (chunk: Buffer) => connection.bytes.push(chunk))
    socket.on('error', (error: NodeJS.ErrnoException) => (connection.ending ??= error.code ?? error.message))
    socket.on('end', () => (connection.ending ??= 'closed'))
    socket.on('close', () => {
      clearInterval(timer)
      connection.closedAt = Date.now()
      connection.ending ??= 'closed'
    })
    await ctx.sleep(3)
  }
  await ctx.sleep(100)
  await whenOpen()
  const deadline = Date.now() + deadlineMs
  while (Date.now() < deadline && connections.some((c) => c.closedAt === undefined)) await ctx.sleep(100)
  return connections
}

/**
 * Checks slow connections: every one cut by `timeoutMs` with 408 EVP_REQUEST_TIMEOUT as
 * problem+json or a closed socket (503 EVP_OVERLOADED allowed), none held past it; those past
 * the per-address cap refused: 429 EVP_TOO_MANY_CONNECTIONS, or (when no request ever
 * completes on them, as with slow headers) closed without an answer.
 */
function judgeSlow(ctx: AttackContext, connections: SlowConnection[], timeoutMs: number, what: string, method: string, path: string, excessAnswered: boolean): void {
  const limit = ctx.limits.maxConnectionsPerIp
  const kinds = new Map<string, number>()
  const count = (kind: string) => kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
  let tooMany = 0
  let held = 0
  let late = 0
  let silent = 0
  for (const c of connections) {
    const bytes = Buffer.concat(c.bytes)
    const answer = rawAnswer(method, path, bytes, c.closedAt === undefined ? 'still open' : c.ending, (c.closedAt ?? Date.now()) - c.openedAt)
    ctx.record(answer)
    if (isProblem(answer, 429, 'EVP_TOO_MANY_CONNECTIONS')) {
      tooMany++
      continue
    }
    if (c.closedAt === undefined) {
      held++
      continue
    }
    if (c.closedAt - c.openedAt > timeoutMs + 3000) late++
    if (answer.status === undefined) {
      silent++
      count('closed without an answer')
    } else if (isProblem(answer, 408, 'EVP_REQUEST_TIMEOUT')) count('408 EVP_REQUEST_TIMEOUT')
    else if (isProblem(answer, 503, 'EVP_OVERLOADED')) count('503 EVP_OVERLOADED')
    else count(`unexpected ${answer.label} ${header(answer.headers, 'content-type') ?? ''}`.trim())
  }
  ctx.note(`${what}: ${connections.length} connections: ${tooMany} got 429, ${[...kinds].map(([k, n]) => `${n} ${k}`).join(', ') || 'none cut'}${held > 0 ? `, ${held} still open` : ''}`)
  ctx.expect(held === 0, `${what}: every connection cut within ${timeoutMs} ms (+ slack); ${held} were still open`)
  ctx.expect(late === 0, `${what}: ${late} connections were cut only more than 3 s after the ${timeoutMs} ms timeout`)
  for (const [kind, n] of kinds) if (kind.startsWith('unexpected')) ctx.expect(false, `${what}: ${n} connections answered ${kind.slice('unexpected '.length)} (expected 408 EVP_REQUEST_TIMEOUT as problem+json, or a closed socket)`)
  const excess = openedPastCap(connections, limit, (c) => {
    const answer = rawAnswer(method, path, Buffer.concat(c.bytes), c.closedAt === undefined ? 'still open' : c.ending, (c.closedAt ?? Date.now()) - c.openedAt)
    return !isProblem(answer, 429, 'EVP_TOO_MANY_CONNECTIONS') && answer.status !== undefined
  })
  if (excessAnswered) {
    ctx.expect(tooMany >= excess, `${what}: connections past server.max_connections_per_ip (${limit}) answered 429 EVP_TOO_MANY_CONNECTIONS: expected at least ${excess}, got ${tooMany}`)
  } else {
    ctx.expect(tooMany + silent >= excess, `${what}: connections past server.max_connections_per_ip (${limit}) refused (429, or closed without an answer): expected at least ${excess}, got ${tooMany + silent}`)
  }
}

/**
 * How many connections opened while `limit` earlier ones clearly held their slots (taken, and
 * still open 50 ms after the newer one opened): those the cap must refuse. On a loaded machine,
 * opening them all can take longer than the timeout, and a slot freed by a timed-out connection
 * is rightly given to the next one; counting every connection past the limit then asked for
 * one refusal too many.
 */
function openedPastCap(connections: readonly SlowConnection[], limit: number, taken: (c: SlowConnection) => boolean): number {
  const held: SlowConnection[] = []
  let past = 0
  for (const c of [...connections].sort((a, b) => a.openedAt - b.openedAt)) {
    const holding = held.filter((h) => h.closedAt === undefined || h.closedAt > c.openedAt + 50).length
    if (holding >= limit) past++
    else if (taken(c)) held.push(c)
  }
  return past
}

/** While the slow connections hold their slots: a complete request from the same address must get 429. */
async function probeCap(ctx: AttackContext, what: string): Promise<void> {
  const probe = await rawExchange({ host: ctx.host, port: ctx.port, localAddress: attackerAddress, data: `GET /healthz HTTP/1.1\r\nHost: ${ctx.host}\r\nConnection: close\r\n\r\n`, path: '/healthz (one more connection)', timeoutMs: 3000 })
  ctx.record(probe.answer)
  expectProblem(ctx, probe.answer, 429, 'EVP_TOO_MANY_CONNECTIONS', `${what}: one more connection from the same address, with a whole request`)
}

// ---- the list -------------------------------------------------------------------------------

export const attacks: Attack[] = [
  {
    name: 'poison-batch',
    group: 'data loss',
    summary:
      'One batch mixing valid events with schema-valid ones the log cannot take: meta.dt 1969-12-31T23:59:59Z, meta.dt 9999-01-01, a regex stream test.event.+300×a and one of 249 characters (topic over 249); sent at once with innocent batches, and again with ?hasty=1.',
    expected: '207, the bad ones in `invalid` with EVP_EVENT_TIME_OUT_OF_RANGE / EVP_STREAM_NAME_INVALID, every valid one in the log once; innocent concurrent batches 201; hasty: 202 and every valid one in the log.',
    timeoutMs: { quick: 20_000, full: 30_000 },
    async run(ctx) {
      const bad = (label: string, stream: string, dt?: string) => {
        const event: JsonObject = { $schema: testSchema, meta: { stream, id: randomUUID(), ...(dt === undefined ? {} : { dt }) }, test: `poison-batch: ${label}` }
        ctx.track(event, { expect: 'bad' })
        return event
      }
      const batch = () => {
        const good = range(5).map((i) => ctx.event(i === 4 ? streams.keyed : streams.test, { test: `poison-batch good ${i}`, meta: { domain: 'example.org' } }))
        const poison: Array<[JsonObject, string[], string]> = [
          [bad('before 1970', streams.test, '1969-12-31T23:59:59Z'), ['EVP_EVENT_TIME_OUT_OF_RANGE'], 'meta.dt before 1970'],
          [bad('year 9999', streams.test, '9999-01-01T00:00:00Z'), ['EVP_EVENT_TIME_OUT_OF_RANGE'], 'meta.dt in 9999'],
          // Its name is over the schema's maxLength too: either refusal is right.
          [bad('300-character regex stream', `test.event.${'a'.repeat(300)}`), ['EVP_STREAM_NAME_INVALID', 'EVP_EVENT_INVALID'], 'stream test.event.+300×a'],
          // Schema-valid (249 characters), but datacenter1.+249 is not a topic name.
          [bad('249-character regex stream', `test.event.${'b'.repeat(238)}`), ['EVP_STREAM_NAME_INVALID'], 'a 249-character regex stream (topic of 261)'],
        ]
        const events: JsonObject[] = []
        const expected = new Map<number, [string[], string]>()
        for (let i = 0; i < good.length; i++) {
          events.push(good[i]!)
          const p = poison[i]
          if (p !== undefined) {
            expected.set(events.length, [p[1], p[2]])
            events.push(p[0])
          }
        }
        return { events, expected }
      }

      const { events, expected } = batch()
      const innocent = range(4).map(() => range(5).map((i) => ctx.event(streams.test, { test: `poison-batch innocent ${i}` })))
      const [mixed, ...others] = await Promise.all([ctx.post(events), ...innocent.map((e) => ctx.post(e))])
      ctx.expect(mixed!.answer.status === 207, `the mixed batch: 207, got ${said(mixed!.answer)}`)
      for (const [index, [codes, what]] of expected) {
        const code = codeOf(mixed!.outcomes[index])
        ctx.expect(codes.includes(code), `${what}: refused with ${codes.join(' or ')}, got ${code}`)
      }
      others.forEach((o, i) => ctx.expect(o.answer.status === 201, `innocent batch ${i + 1} sent at the same time: 201, got ${said(o.answer)}`))

      const hasty = batch()
      const answer = (await ctx.post(hasty.events, { query: 'hasty=1' })).answer
      ctx.expect(answer.status === 202, `the same batch with ?hasty=1: 202, got ${said(answer)}`)
    },
  },

  {
    name: 'long-request-id',
    group: 'data loss',
    summary: 'Valid events with an X-Request-ID of 1,000 characters.',
    expected: '201; meta.request_id cut to the schema’s maxLength (128) or left out.',
    timeoutMs: { quick: 10_000, full: 20_000 },
    async run(ctx) {
      const events = range(3).map(() => ctx.event())
      const { answer } = await ctx.post(events, { headers: { 'x-request-id': 'r'.repeat(1000) } })
      ctx.expect(answer.status === 201, `3 valid events with a 1,000-character X-Request-ID: 201, got ${said(answer)}`)
      if (answer.status !== 201) return
      const ids = new Set(events.map((e) => getPath(e, 'meta.id')))
      const stored = (await ctx.readLog(`${ctx.limits.topicPrefix}${streams.test}`)).filter((r) => ids.has(getPath(r.value, 'meta.id')))
      for (const record of stored) {
        const requestId = getPath(record.value, 'meta.request_id')
        ctx.expect(requestId === undefined || (typeof requestId === 'string' && requestId.length <= 128), `stored meta.request_id is at most 128 characters or absent, got ${typeof requestId === 'string' ? `${requestId.length} characters` : JSON.stringify(requestId)}`)
      }
    },
  },

  {
    name: 'unfit-error-events',
    group: 'data loss',
    summary:
      'Invalid events ("test": 42) whose error events would not fit the error schema: meta.uri not a URI, empty meta.domain, a 2,000-character $schema, a 300-character stream name, a 1,000-character request id.',
    expected: '400 for each batch, and one error event per refused event in datacenter1.eventplane.error.validation.',
    timeoutMs: { quick: 15_000, full: 20_000 },
    async run(ctx) {
      const invalid = (change: (event: JsonObject, meta: JsonObject) => void) => {
        const meta: JsonObject = { stream: streams.test, id: randomUUID() }
        const event: JsonObject = { $schema: testSchema, meta, test: 42 }
        change(event, meta)
        ctx.track(event, { expect: 'bad' })
        return event
      }
      const cases: Array<[string, JsonObject]> = [
        ['meta.uri that is not a URI', invalid((_e, meta) => (meta['uri'] = 'not a uri: \\ <> {} ^ `'))],
        ['empty meta.domain', invalid((_e, meta) => (meta['domain'] = ''))],
        ['2,000-character $schema', invalid((event) => (event['$schema'] = `${testSchema}/${'s'.repeat(2000 - testSchema.length - 1)}`))],
        ['300-character stream name', invalid((_e, meta) => (meta['stream'] = `test.event.${'c'.repeat(289)}`))],
      ]
      const first = await ctx.post(cases.map(([, e]) => e))
      ctx.expect(first.answer.status === 400, `a batch of 4 invalid events: 400, got ${said(first.answer)}`)
      const longId: [string, JsonObject] = ['1,000-character request id', invalid(() => {})]
      const second = await ctx.post([longId[1]], { headers: { 'x-request-id': 'q'.repeat(1000) } })
      ctx.expect(second.answer.status === 400, `an invalid event with a 1,000-character X-Request-ID: 400, got ${said(second.answer)}`)
      const all = [...cases, longId]
      const outcomes = [...first.outcomes, ...second.outcomes]

      const deadline = Date.now() + (ctx.quick ? 3000 : 5000)
      let found: JsonObject[][] = []
      for (;;) {
        found = []
        for (const [, event] of all) found.push(await errorEventsAbout(ctx, String(getPath(event, 'meta.id'))))
        if (found.every((f) => f.length > 0) || Date.now() > deadline) break
        await ctx.sleep(200)
      }
      all.forEach(([what, ], i) => {
        const events = found[i]!
        if (!ctx.expect(events.length === 1, `${what}: one error event in the error stream, found ${events.length}`)) return
        const code = codeOf(outcomes[i])
        ctx.expect(events[0]!['error_type'] === code, `${what}: the error event's error_type is the refusal's code ${code}, got ${JSON.stringify(events[0]!['error_type'])}`)
      })
    },
  },

  {
    name: 'error-stream-forgery',
    group: 'data loss',
    summary: 'An event with meta.stream eventplane.error.validation and the error schema, beside a valid one; and alone with ?hasty=1.',
    expected: '207 with the forged one in `invalid` as EVP_STREAM_INTERNAL; neither forged event is in the error stream.',
    timeoutMs: { quick: 10_000, full: 20_000 },
    async run(ctx) {
      const forged = () => {
        const event: JsonObject = {
          $schema: '/eventplane/error/1.0.0',
          meta: { stream: ctx.limits.errorStream, id: randomUUID(), uri: 'unknown', domain: 'example.org' },
          dt: new Date().toISOString(),
          emitter_id: 'eventplane-intake',
          raw_event: '{"forged":true}',
          errored_schema_uri: testSchema,
          errored_stream_name: streams.test,
          message: 'forged by error-stream-forgery',
          error_type: 'EVP_EVENT_INVALID',
        }
        ctx.track(event, { expect: 'bad' })
        return event
      }
      const one = forged()
      const { answer, outcomes } = await ctx.post([ctx.event(), one])
      ctx.expect(answer.status === 207, `a valid event and a forged error event: 207, got ${said(answer)}`)
      ctx.expect(codeOf(outcomes[1]) === 'EVP_STREAM_INTERNAL', `the forged error event refused with EVP_STREAM_INTERNAL, got ${codeOf(outcomes[1])}`)
      const two = forged()
      const hasty = await ctx.post([two], { query: 'hasty=1' })
      ctx.expect(hasty.answer.status === 202, `a forged error event with ?hasty=1: 202, got ${said(hasty.answer)}`)
      await ctx.sleep(1000)
      const stored = await ctx.readLog(`${ctx.limits.topicPrefix}${ctx.limits.errorStream}`)
      for (const event of [one, two]) {
        const id = getPath(event, 'meta.id')
        ctx.expect(!stored.some((r) => getPath(r.value, 'meta.id') === id), `the forged event ${String(id)} is not in the error stream`)
      }
    },
  },

  {
    name: 'many-items',
    group: 'denial of service',
    summary: 'A 4 MiB body [1,1,1,…] (2.1 million items), then two at once.',
    expected: '413 EVP_TOO_MANY_EVENTS each; alive, /healthz fast, RSS back.',
    timeoutMs: { quick: 30_000, full: 60_000 },
    async run(ctx) {
      const { body, items } = repeated('1', ctx.limits.maxBodyBytes)
      ctx.note(`${items.toLocaleString('en-US')} items in ${body.length} bytes`)
      const send = () => ctx.request({ method: 'POST', path: '/v1/events', headers: { 'content-type': 'application/json' }, body, timeoutMs: ctx.quick ? 25_000 : 55_000 })
      const first = await send()
      expectProblem(ctx, first, 413, 'EVP_TOO_MANY_EVENTS', `${items} items`)
      const both = await Promise.all([send(), send()])
      both.forEach((answer, i) => expectProblem(ctx, answer, 413, 'EVP_TOO_MANY_EVENTS', `${items} items, ${i + 1} of two at once`))
    },
  },

  {
    name: 'many-empty-objects',
    group: 'denial of service',
    summary: '[{},{},…] (1.4 million) to /v1/events?schema_uri=/eventplane/test/event/1.0.0&stream=test.event, where each would become a valid event.',
    expected: '413 EVP_TOO_MANY_EVENTS, nothing appended.',
    timeoutMs: { quick: 30_000, full: 60_000 },
    async run(ctx) {
      const { body, items } = repeated('{}', ctx.limits.maxBodyBytes)
      ctx.note(`${items.toLocaleString('en-US')} items in ${body.length} bytes`)
      const answer = await ctx.request({
        method: 'POST',
        path: `/v1/events?schema_uri=${encodeURIComponent(testSchema)}&stream=${streams.test}`,
        headers: { 'content-type': 'application/json' },
        body,
        timeoutMs: ctx.quick ? 25_000 : 55_000,
      })
      expectProblem(ctx, answer, 413, 'EVP_TOO_MANY_EVENTS', `${items} empty objects with ?schema_uri&stream`)
      const appended = await ctx.appendedSince(`${ctx.limits.topicPrefix}${streams.test}`)
      ctx.expect(appended === 0, `nothing appended to ${streams.test}, got ${appended} records`)
    },
  },

  {
    name: 'max-batch-invalid',
    group: 'denial of service',
    summary: 'Exactly intake.max_events_per_request (10,000) invalid events in one request.',
    expected:
      '400 listing at most intake.max_refusals_listed (100) with omitted.invalid = the rest; error events rate-limited (eventplane_intake_error_events_suppressed_total grows, no 10,000 error events written); /healthz fast throughout.',
    timeoutMs: { quick: 20_000, full: 40_000 },
    async run(ctx) {
      const n = ctx.limits.maxEventsPerRequest
      const events = range(n).map((i) => {
        const event: JsonObject = { $schema: testSchema, meta: { stream: streams.test, id: randomUUID() }, test: i }
        ctx.track(event, { expect: 'bad' })
        return event
      })
      const before = metricValue((await ctx.metrics()).text, 'eventplane_intake_error_events_suppressed_total')
      const started = Date.now()
      const { answer } = await ctx.post(events)
      ctx.expect(answer.status === 400, `${n} invalid events: 400, got ${said(answer)}`)
      ctx.note(`answer body ${answer.bodyBytes} bytes`)
      if (isObject(answer.json)) {
        const listed = Array.isArray(answer.json['invalid']) ? answer.json['invalid'].length : -1
        const omitted = getPath(answer.json, 'omitted.invalid')
        ctx.expect(listed >= 0 && listed <= ctx.limits.maxRefusalsListed, `at most ${ctx.limits.maxRefusalsListed} refusals listed, got ${listed}`)
        ctx.expect(omitted === n - listed, `omitted.invalid = ${n - listed} (the rest), got ${JSON.stringify(omitted)}`)
      }
      await ctx.sleep(1500)
      const after = metricValue((await ctx.metrics()).text, 'eventplane_intake_error_events_suppressed_total')
      ctx.expect(after !== undefined && after > (before ?? 0), `eventplane_intake_error_events_suppressed_total grows: ${before ?? 'absent'} → ${after ?? 'absent'}`)
      const written = (await ctx.readLog(`${ctx.limits.topicPrefix}${ctx.limits.errorStream}`)).length
      const seconds = (Date.now() - started) / 1000
      const allowed = Math.ceil(1000 + 100 * (seconds + 2))
      ctx.expect(written <= allowed, `error events written stay within burst + rate (1000 + 100/s × ${seconds.toFixed(1)} s ≈ ${allowed}), got ${written}`)
    },
  },

  {
    name: 'cel-nesting',
    group: 'denial of service',
    summary:
      'A filter nesting comprehensions three deep; then a two-deep test_map.all(a, test_map.all(b, true)) stream while events with a test_map of thousands of entries are produced.',
    expected: '400 EVP_FILTER_INVALID for three deep; the two-deep stream keeps delivering (other events, heartbeats), /healthz fast, eventplane_streams_filter_over_budget_total counted.',
    timeoutMs: { quick: 25_000, full: 60_000 },
    async run(ctx) {
      const three = 'test_map.all(a, test_map.all(b, test_map.all(c, true)))'
      const refused = ctx.stream(`/v2/stream/${streams.test}?filter=${encodeURIComponent(three)}`)
      const refusedAnswer = await refused.answer
      refused.close()
      expectProblem(ctx, refusedAnswer, 400, 'EVP_FILTER_INVALID', 'a filter nesting three comprehensions')

      const two = 'test_map.all(a, test_map.all(b, true))'
      const budgetBefore = metricValue((await ctx.metrics()).text, 'eventplane_streams_filter_over_budget_total')
      const stream = ctx.stream(`/v2/stream/${streams.test}?filter=${encodeURIComponent(two)}`)
      const head = await stream.answer
      if (!ctx.expect(head.label === '200 SSE', `a filter nesting two comprehensions: 200 SSE, got ${said(head)}`)) return
      await stream.waitFor(() => stream.comments > 0, 2000)
      const entries = ctx.quick ? 3000 : 5000
      const rounds = ctx.quick ? 2 : 4
      const commentsBefore = stream.comments
      for (let round = 0; round < rounds; round++) {
        const map: Record<string, string> = {}
        for (let i = 0; i < entries; i++) map[`k${i}`] = 'v'
        const big = ctx.event(streams.test, { test: 'cel-nesting big map', test_map: map })
        const marker = ctx.event(streams.test, { test: 'cel-nesting marker', test_map: { only: 'one' } })
        const id = String(getPath(marker, 'meta.id'))
        const posted = await ctx.post([big])
        await ctx.post([marker])
        ctx.expect(posted.answer.status === 201, `an event with a ${entries}-entry test_map: 201, got ${said(posted.answer)}`)
        const delivered = await stream.waitFor(() => stream.messages.some((m) => m.data.includes(id)), ctx.quick ? 5000 : 10_000)
        ctx.expect(delivered, `round ${round + 1}: the stream delivered the next event after a ${entries}-entry test_map within ${ctx.quick ? 5 : 10} s`)
      }
      await ctx.sleep(ctx.limits.heartbeatIntervalS * 1000 + 500)
      ctx.note(`${stream.messages.length} events and ${stream.comments - commentsBefore} heartbeats received during the rounds`)
      ctx.expect(stream.comments > commentsBefore, 'heartbeats kept coming')
      const budgetAfter = metricValue((await ctx.metrics()).text, 'eventplane_streams_filter_over_budget_total')
      ctx.expect(budgetAfter !== undefined && budgetAfter - (budgetBefore ?? 0) >= rounds, `eventplane_streams_filter_over_budget_total grows by at least ${rounds}: ${budgetBefore ?? 'absent'} → ${budgetAfter ?? 'absent'}`)
    },
  },

  {
    name: 'history-scan',
    group: 'denial of service',
    summary:
      'A partition filled with many events (full 300k, quick 30k, in batches of 1,000, before the measurement), then streams ?since=0&filter=test == "never" (a few at once) that scan all of it.',
    expected: '/healthz stays under 100 ms while they scan; each scan reaches the end (gets the one matching event appended after it).',
    timeoutMs: { quick: 40_000, full: 240_000 },
    async prepare(ctx) {
      const total = ctx.quick ? 30_000 : 300_000
      const failed: string[] = []
      await pool(range(total / 1000), 2, async () => {
        const { answer } = await ctx.post(range(1000).map(() => ctx.event(streams.test, { test: 'history-scan fill' })))
        if (answer.status !== 201) failed.push(said(answer))
      })
      ctx.expect(failed.length === 0, `${total} events posted in batches of 1,000: all 201, got ${failed.slice(0, 3).join(', ')}`)
    },
    async run(ctx) {
      const count = ctx.quick ? 2 : 3
      const filter = encodeURIComponent('test == "never"')
      const scans = range(count).map(() => ctx.stream(`/v2/stream/${streams.test}?since=0&filter=${filter}`))
      const heads = await Promise.all(scans.map((s) => s.answer))
      heads.forEach((head, i) => ctx.expect(head.label === '200 SSE', `scan ${i + 1}: 200 SSE, got ${said(head)}`))
      const marker = ctx.event(streams.test, { test: 'never' })
      const id = String(getPath(marker, 'meta.id'))
      await ctx.post([marker])
      const started = Date.now()
      const limit = ctx.quick ? 20_000 : 120_000
      const times = await Promise.all(
        scans.map(async (scan, i) => {
          if (heads[i]!.label !== '200 SSE') return undefined
          const ok = await scan.waitFor(() => scan.messages.some((m) => m.data.includes(id)), limit)
          ctx.expect(ok, `scan ${i + 1} reached the end of the partition (the one matching event) within ${limit / 1000} s`)
          return ok ? Date.now() - started : undefined
        }),
      )
      ctx.note(`scans reached the end after ${times.map((t) => (t === undefined ? '–' : `${(t / 1000).toFixed(1)} s`)).join(', ')}`)
    },
  },

  {
    name: 'schema-fragments',
    group: 'denial of service',
    summary: 'Many requests whose $schema is /eventplane/test/event/1.0.0 plus a distinct #fragment or ?query of up to ~1 MiB.',
    expected: 'Refused with EVP_SCHEMA_URI_NOT_ALLOWED or accepted as the same schema; /metrics answers 200 quickly and does not grow per request; RSS back.',
    timeoutMs: { quick: 30_000, full: 120_000 },
    async run(ctx) {
      const n = ctx.quick ? 100 : 300
      const run = randomUUID().slice(0, 8)
      const before = await ctx.metrics()
      const outcomes = new Map<string, number>()
      let unexpected = 0
      let example = ''
      let seed = ctx.seed
      const random = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648)
      await pool(range(n), 2, async (i) => {
        const size = Math.max(1, Math.round(2 ** (random() * 20)))
        const token = `frag${run}x${i}x${'f'.repeat(size)}`
        const uri = [`${testSchema}#${token}`, `${testSchema}?${token}`, `${testSchema}?v=${token}#${token}`, `${testSchema}#/definitions/${token}`][i % 4]!
        const event: JsonObject = { $schema: uri, meta: { stream: streams.test, id: randomUUID() }, test: 'schema-fragments' }
        ctx.track(event, { expect: 'maybe' })
        const { answer, outcomes: [outcome] } = await ctx.post([event])
        const code = codeOf(outcome)
        outcomes.set(code, (outcomes.get(code) ?? 0) + 1)
        // Accepted, refused as a URI not allowed, or failing the schema's own maxLength of $schema.
        const tooLong = code === 'EVP_EVENT_INVALID' && uri.length > 1024
        if (!(code === 'accepted' || code === 'EVP_SCHEMA_URI_NOT_ALLOWED' || tooLong)) {
          unexpected++
          example ||= `${code} (${said(answer)}) for a ${uri.length}-character $schema`
        }
      })
      ctx.note(`outcomes: ${[...outcomes].map(([c, k]) => `${c} ×${k}`).join(', ')}`)
      ctx.expect(unexpected === 0, `each refused with EVP_SCHEMA_URI_NOT_ALLOWED or accepted: ${unexpected} were not, e.g. ${example}`)
      const after = await ctx.metrics()
      ctx.expect(after.status === 200 && after.ms < 500, `/metrics answers 200 within 500 ms afterwards, got ${after.status ?? 'no answer'} in ${Math.round(after.ms)} ms`)
      const growth = after.bytes - before.bytes
      ctx.note(`/metrics ${before.bytes} → ${after.bytes} bytes`)
      ctx.expect(growth <= 4096, `/metrics does not grow per request: +${growth} bytes after ${n} requests (allowed 4096)`)
      ctx.expect(!after.text.includes(`frag${run}`), '/metrics names none of the $schema values sent')
    },
  },

  {
    name: 'beacon-flood',
    group: 'denial of service',
    summary:
      'The legacy beacon, GET /beacon/event, flooded (quick 2,000, full 10,000, 8 at once) with what it must not choke on: capsules that are not URL-encoded JSON, broken %-escapes, arrays, paths as schema names, unknown schemas with random names, events of the wrong type, URLs just over 2,000 characters and of 15,000; then one good beacon.',
    expected: 'Every request 204, or 414 EVP_BEACON_URL_TOO_LONG for the long URLs, never 5xx; /metrics does not grow per request; the good beacon afterwards is accepted; RSS back.',
    timeoutMs: { quick: 30_000, full: 120_000 },
    async run(ctx) {
      const n = ctx.quick ? 2000 : 10_000
      const capsule = (value: unknown) => `${encodeURIComponent(JSON.stringify(value))};`
      const kinds = [
        (i: number) => `not-json-${i};`,
        (i: number) => `%7B%22schema%22%3A%22Test%22%2C%22event%22%3A%7B%7D%E0%A4%A${i};`,
        (i: number) => capsule([i, { schema: 'EventplaneTest' }]),
        (i: number) => capsule({ schema: `../../etc/passwd${i}`, event: {} }),
        (i: number) => capsule({ schema: `Unknown${i}x${randomUUID().slice(0, 8)}`, event: {} }),
        (i: number) => capsule({ schema: 'EventplaneTest', event: { value: `not a number ${i}` } }),
        (i: number) => capsule({ schema: 'EventplaneTest', event: { action: 'x'.repeat(2000 + (i % 50)) } }),
        (i: number) => capsule({ schema: 'EventplaneTest', event: { action: 'y'.repeat(15_000 + i) } }),
      ]
      const labels = new Map<string, number>()
      let wrong = 0
      let example = ''
      // One of each first: the series each kind of answer makes (once) exist before `before`.
      for (const [i, kind] of kinds.entries()) await ctx.request({ path: `/beacon/event?${kind(i)}` })
      const before = await ctx.metrics()
      await pool(range(n), 8, async (i) => {
        const query = kinds[i % kinds.length]!(i)
        const answer = await ctx.request({ path: `/beacon/event?${query}` })
        labels.set(answer.label, (labels.get(answer.label) ?? 0) + 1)
        const long = `/beacon/event?${query}`.length > 2000
        const ok = long ? answer.status === 414 && answer.code === 'EVP_BEACON_URL_TOO_LONG' : answer.status === 204
        // A URL past Node's header limit (16 KiB) is refused before any route: 431.
        if (!ok && !(long && (answer.status === 431 || answer.code === 'EVP_HEADERS_TOO_LARGE'))) {
          wrong++
          example ||= `${said(answer)} for a ${query.length}-character query of kind ${i % kinds.length}`
        }
      })
      ctx.note(`answers: ${[...labels].map(([l, k]) => `${l} ×${k}`).join(', ')}`)
      ctx.expect(wrong === 0, `each 204, or 414 EVP_BEACON_URL_TOO_LONG when too long: ${wrong} were not, e.g. ${example}`)
      const after = await ctx.metrics()
      ctx.note(`/metrics ${before.bytes} → ${after.bytes} bytes`)
      ctx.expect(after.bytes - before.bytes <= 4096, `/metrics does not grow per request: +${after.bytes - before.bytes} bytes after ${n} beacons (allowed 4096)`)
      ctx.expect(!after.text.includes('Unknown1x'), '/metrics names none of the schema names sent')
      const id = randomUUID()
      const good = await ctx.request({ path: `/beacon/event?${capsule({ schema: 'EventplaneTest', event: { action: 'after the flood' }, uuid: id, wiki: 'attackwiki' })}` })
      ctx.expect(good.status === 204, `the good beacon: 204, got ${said(good)}`)
      const accepted = async () => metricValue((await ctx.metrics()).text, 'eventplane_beacon_requests_total', { outcome: 'accepted' }) ?? 0
      const deadline = Date.now() + 5000
      while ((await accepted()) < 1 && Date.now() < deadline) await ctx.sleep(100)
      ctx.expect((await accepted()) >= 1, 'the good beacon is counted accepted within 5 s')
    },
  },

  {
    name: 'regex-topic-flood',
    group: 'denial of service',
    summary: 'Events to thousands of distinct test.event.<random> streams (each would be a topic).',
    expected: 'Accepted until intake.max_regex_streams (50 here), then EVP_STREAM_LIMIT_REACHED; /metrics gains no series per stream.',
    timeoutMs: { quick: 30_000, full: 120_000 },
    async run(ctx) {
      const n = ctx.quick ? 300 : 3000
      const prefix = `${ctx.limits.topicPrefix}test.event.`
      const existing = (await ctx.topics()).filter((t) => t.startsWith(prefix)).length
      const room = Math.max(0, ctx.limits.maxRegexStreams - existing)
      const run = randomUUID().slice(0, 8)
      const before = await ctx.metrics()
      let accepted = 0
      const codes = new Map<string, number>()
      for (let start = 0; start < n && !ctx.signal.aborted; start += 100) {
        const events = range(Math.min(100, n - start)).map((i) => ctx.event(`test.event.flood-${run}-${start + i}`, {}, { allowed: ['EVP_STREAM_LIMIT_REACHED'] }))
        const { outcomes } = await ctx.post(events)
        for (const outcome of outcomes) {
          if (outcome.kind === 'accepted') accepted++
          const code = codeOf(outcome)
          codes.set(code, (codes.get(code) ?? 0) + 1)
        }
      }
      ctx.note(`${existing} regex topics before; outcomes: ${[...codes].map(([c, k]) => `${c} ×${k}`).join(', ')}`)
      ctx.expect(accepted === Math.min(room, n), `accepted until the limit: ${Math.min(room, n)} new streams (limit ${ctx.limits.maxRegexStreams}, ${existing} before), got ${accepted}`)
      const after = await ctx.metrics()
      const named = after.text.split('\n').filter((line) => line.includes(`flood-${run}`))
      ctx.expect(named.length === 0, `/metrics has no series named after a flood stream (labels are the regex key): ${named.length} do, e.g. ${named[0]?.slice(0, 120) ?? ''}`)
      ctx.expect(after.bytes - before.bytes <= 8192, `/metrics stays small: +${after.bytes - before.bytes} bytes (allowed 8192)`)
      const topics = (await ctx.topics()).filter((t) => t.startsWith(prefix)).length
      ctx.expect(topics <= ctx.limits.maxRegexStreams, `topics made through the regex key: at most ${ctx.limits.maxRegexStreams}, got ${topics}`)
    },
  },

  {
    name: 'slow-sse-readers',
    group: 'denial of service',
    summary:
      'From one address, more SSE connections than streams.max_connections_per_ip (10) over time, each a raw socket that never reads, while events are produced fast enough to fill their buffers.',
    expected:
      'Each dropped after streams.max_buffered_bytes with its socket destroyed after streams.slow_client_grace_ms (2 s); never more than 10 held at once for the address (ESTABLISHED sockets in /proc/net/tcp); the producer keeps getting 201; RSS bounded and back.',
    timeoutMs: { quick: 30_000, full: 60_000 },
    boundRssDuring: true,
    async run(ctx) {
      const total = ctx.quick ? 14 : 30
      const path = `/v2/stream/${streams.flood}`
      const droppedBefore = metricValue((await ctx.metrics()).text, 'eventplane_streams_slow_clients_dropped_total')
      interface Reader {
        socket: Socket
        port: number
        status: number | undefined
        answer?: Answer
        goneAt: number | undefined
      }
      const readers: Reader[] = []
      let maxHeld = 0
      const watch = setInterval(() => {
        const sockets = serverSockets(ctx.port)
        let held = 0
        for (const reader of readers) {
          const state = sockets.get(reader.port)
          if (state === established && reader.status === 200) held++
          else if (reader.port > 0 && reader.goneAt === undefined && reader.status !== undefined) reader.goneAt = Date.now()
        }
        maxHeld = Math.max(maxHeld, held)
      }, 50)
      ctx.own({ close: () => clearInterval(watch) })

      let producing = true
      const productions: string[] = []
      const producer = (async () => {
        while (producing && !ctx.signal.aborted) {
          const { answer } = await ctx.post(range(50).map(() => ctx.event(streams.flood, { test: 'w'.repeat(4000) })))
          productions.push(answer.label)
          // About 4 MB/s: a reader that never reads passes 256 KiB (plus what the kernel
          // buffers) in a fraction of a second, without turning this into an intake benchmark.
          await ctx.sleep(50).catch(() => {})
        }
      })()

      const open = () =>
        new Promise<void>((resolve) => {
          const socket = ctx.own(connect({ host: ctx.host, port: ctx.port, localAddress: attackerAddress }))
          const reader: Reader = { socket, port: 0, status: undefined, goneAt: undefined }
          readers.push(reader)
          const chunks: Buffer[] = []
          const started = Date.now()
          const finish = () => resolve()
          socket.on('connect', () => {
            reader.port = socket.localPort ?? 0
            socket.write(`GET ${path} HTTP/1.1\r\nHost: ${ctx.host}:${ctx.port}\r\nAccept: text/event-stream\r\n\r\n`)
          })
          socket.on('data', (chunk: Buffer) => {
            chunks.push(chunk)
            if (reader.status !== undefined) return
            const bytes = Buffer.concat(chunks)
            const end = bytes.indexOf('\r\n\r\n')
            if (end === -1) return
            const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(bytes.toString('latin1', 0, 20))?.[1])
            reader.status = status
            if (status === 200) {
              // From here on it never reads: the kernel buffers fill, then the server's.
              socket.pause()
              ctx.record(describeAnswer({ method: 'GET', path, label: '', status, headers: { 'content-type': 'text/event-stream' }, body: Buffer.alloc(0), bodyBytes: 0, ms: Date.now() - started }))
              finish()
            } else {
              setTimeout(() => {
                reader.answer = rawAnswer('GET', path, Buffer.concat(chunks), 'closed', Date.now() - started)
                ctx.record(reader.answer)
                socket.destroy()
                finish()
              }, 200)
            }
          })
          socket.on('error', () => finish())
          socket.on('close', () => finish())
          setTimeout(finish, 5000)
        })
      for (let i = 0; i < total && !ctx.signal.aborted; i++) {
        await open()
        await ctx.sleep(150)
      }
      const accepted = readers.filter((r) => r.status === 200)
      const deadline = Date.now() + ctx.limits.slowClientGraceMs + (ctx.quick ? 8000 : 15_000)
      while (Date.now() < deadline && accepted.some((r) => r.goneAt === undefined)) await ctx.sleep(100)
      producing = false
      await producer

      const refused = readers.filter((r) => r.status === 429).length
      const stillHeld = accepted.filter((r) => r.goneAt === undefined).length
      ctx.note(`${readers.length} connections: ${accepted.length} streams opened, ${refused} got 429; at most ${maxHeld} held at once; ${productions.length} batches produced`)
      ctx.expect(maxHeld <= ctx.limits.streamsPerIp, `never more than streams.max_connections_per_ip (${ctx.limits.streamsPerIp}) held at once for the address, saw ${maxHeld}`)
      ctx.expect(stillHeld === 0, `every stream that never reads is dropped and its socket destroyed: ${stillHeld} of ${accepted.length} still held ${Math.round((ctx.limits.slowClientGraceMs + (ctx.quick ? 8000 : 15_000)) / 1000)} s after the last opened`)
      const droppedAfter = metricValue((await ctx.metrics()).text, 'eventplane_streams_slow_clients_dropped_total')
      ctx.expect((droppedAfter ?? 0) - (droppedBefore ?? 0) >= accepted.length, `eventplane_streams_slow_clients_dropped_total grows by ${accepted.length}: ${droppedBefore ?? 'absent'} → ${droppedAfter ?? 'absent'}`)
      const notCreated = productions.filter((l) => l !== '201')
      ctx.expect(notCreated.length === 0, `the producer's batches all 201 meanwhile, got ${notCreated.slice(0, 3).join(', ')}`)
    },
  },

  {
    name: 'slow-headers',
    group: 'denial of service',
    summary: 'Many connections from one address sending their request line and headers a byte every 300 ms, more than server.max_connections_per_ip (64 here).',
    expected:
      'Cut after server.headers_timeout_ms with 408 EVP_REQUEST_TIMEOUT (problem+json) or a closed socket; past 64 refused (429 EVP_TOO_MANY_CONNECTIONS, or closed: no request ever completes on them), and a complete request on one more connection gets 429; RSS bounded and back.',
    timeoutMs: { quick: 20_000, full: 40_000 },
    boundRssDuring: true,
    async run(ctx) {
      const count = ctx.quick ? 80 : 300
      const timeout = ctx.limits.headersTimeoutMs
      const what = `slow headers (headers_timeout_ms ${timeout})`
      const connections = await slowConnections(ctx, count, `GET /healthz HTTP/1.1\r\nHost: ${ctx.host}\r\nX-Slow: `, 'a', timeout + (ctx.quick ? 3000 : 5000), () => probeCap(ctx, what))
      judgeSlow(ctx, connections, timeout, what, 'GET', '/healthz (slow headers)', false)
    },
  },

  {
    name: 'slow-body',
    group: 'denial of service',
    summary: 'Many connections from one address announcing a 4 MiB body to POST /v1/events and sending it a byte every 300 ms, more than server.max_connections_per_ip.',
    expected:
      'Cut after server.request_timeout_ms with 408 EVP_REQUEST_TIMEOUT (problem+json) or a closed socket (503 EVP_OVERLOADED also allowed); past 64, 429 EVP_TOO_MANY_CONNECTIONS; RSS bounded and back.',
    timeoutMs: { quick: 20_000, full: 60_000 },
    boundRssDuring: true,
    async run(ctx) {
      const count = ctx.quick ? 72 : 100
      const timeout = ctx.limits.requestTimeoutMs
      const head = `POST /v1/events HTTP/1.1\r\nHost: ${ctx.host}\r\nContent-Type: application/json\r\nContent-Length: ${ctx.limits.maxBodyBytes}\r\n\r\n[`
      const what = `slow body (request_timeout_ms ${timeout})`
      const connections = await slowConnections(ctx, count, head, '{"a":1},', timeout + (ctx.quick ? 3000 : 5000), () => probeCap(ctx, what))
      judgeSlow(ctx, connections, timeout, what, 'POST', '/v1/events (slow body)', true)
    },
  },

  {
    name: 'privacy',
    group: 'leaks and integrity',
    summary:
      'A valid event with X-Client-IP: 203.0.113.9, X-Forwarded-For and a user agent (the server trusts no proxy); the stream of it; the error stream; /metrics with an Origin; $schema values that name files.',
    expected:
      'Stored http.client_ip is the peer (127.0.0.1); over SSE no http.client_ip and no http.request_headers; /v2/stream/eventplane.error.validation 400 EVP_STREAM_UNKNOWN; /metrics without access-control-allow-origin; no answer names a path of the server.',
    timeoutMs: { quick: 20_000, full: 30_000 },
    async run(ctx) {
      const since = Date.now() - 2000
      const event = ctx.event(streams.test, { test: 'privacy' })
      const id = String(getPath(event, 'meta.id'))
      const { answer } = await ctx.post([event], { headers: { 'x-client-ip': '203.0.113.9', 'x-forwarded-for': '198.51.100.7', 'user-agent': 'eventplane-attack/1.0 (privacy)' } })
      ctx.expect(answer.status === 201, `a valid event with X-Client-IP: 201, got ${said(answer)}`)
      const stored = (await ctx.readLog(`${ctx.limits.topicPrefix}${streams.test}`)).find((r) => getPath(r.value, 'meta.id') === id)
      const clientIp = getPath(stored?.value, 'http.client_ip')
      ctx.expect(clientIp === '127.0.0.1', `stored http.client_ip is the peer address 127.0.0.1, not a header: got ${JSON.stringify(clientIp)}`)

      // An EventSource, as a browser would follow the stream.
      const received: JsonObject[] = []
      const source = ctx.own(new EventSource(`${ctx.url}/v2/stream/${streams.test}?since=${since}`))
      source.addEventListener('message', (message) => {
        ctx.keepText(message.data)
        try {
          const value: unknown = JSON.parse(message.data)
          if (isObject(value) && getPath(value, 'meta.id') === id) received.push(value)
        } catch {
          // not JSON: ignored
        }
      })
      const deadline = Date.now() + 5000
      while (received.length === 0 && Date.now() < deadline) await ctx.sleep(50)
      source.close()
      if (ctx.expect(received.length > 0, 'the event arrives over SSE (EventSource, ?since=) within 5 s')) {
        const streamed = received[0]!
        ctx.expect(getPath(streamed, 'http.client_ip') === undefined, `the streamed event has no http.client_ip, got ${JSON.stringify(getPath(streamed, 'http.client_ip'))}`)
        ctx.expect(getPath(streamed, 'http.request_headers') === undefined, `the streamed event has no http.request_headers, got ${JSON.stringify(getPath(streamed, 'http.request_headers'))}`)
      }

      const errors = ctx.stream(`/v2/stream/${ctx.limits.errorStream}`)
      const errorsAnswer = await errors.answer
      errors.close()
      expectProblem(ctx, errorsAnswer, 400, 'EVP_STREAM_UNKNOWN', `GET /v2/stream/${ctx.limits.errorStream}`)

      const metrics = await ctx.request({ path: '/metrics', headers: { origin: 'https://attacker.example' } })
      ctx.expect(metrics.status === 200, `/metrics answers 200, got ${said(metrics)}`)
      ctx.expect(header(metrics.headers, 'access-control-allow-origin') === undefined, `/metrics has no access-control-allow-origin for a foreign Origin, got ${JSON.stringify(header(metrics.headers, 'access-control-allow-origin'))}`)

      // Answers to $schema values and schema paths that name files (the harness checks every answer for paths).
      const probes: Array<[string, string]> = [
        ['/../../etc/passwd', 'EVP_SCHEMA_URI_NOT_ALLOWED'],
        ['/nope/1.0.0', 'EVP_SCHEMA_NOT_FOUND'],
        ['file:///etc/passwd', 'EVP_SCHEMA_URI_NOT_ALLOWED'],
      ]
      const probeEvents = probes.map(([uri]) => {
        const e: JsonObject = { $schema: uri, meta: { stream: streams.test, id: randomUUID() }, test: 'privacy probe' }
        ctx.track(e, { expect: 'bad' })
        return e
      })
      const { outcomes } = await ctx.post(probeEvents)
      probes.forEach(([uri, code], i) => ctx.expect(codeOf(outcomes[i]) === code, `$schema ${uri}: ${code}, got ${codeOf(outcomes[i])}`))
      for (const path of ['/repositories/eventplane/jsonschema/nope/1.0.0', '/repositories/eventplane/jsonschema/%2e%2e/%2e%2e/%2e%2e/etc/passwd', '/repositories/nope/jsonschema/', '/v1/stream-configs/nope']) {
        await ctx.request({ path })
      }
    },
  },

  {
    name: 'test-events-route',
    group: 'leaks and integrity',
    summary: 'GET /v1/_test/events with the suite’s config (no intake.test_events).',
    expected: '404.',
    timeoutMs: { quick: 5000, full: 10_000 },
    async run(ctx) {
      const answer = await ctx.request({ path: '/v1/_test/events' })
      ctx.expect(answer.status === 404, `GET /v1/_test/events: 404, got ${said(answer)}`)
    },
  },

  {
    name: 'wrong-answers',
    group: 'leaks and integrity',
    summary:
      'Odd requests: /v2/stream/%25 and test.event%252Ctest.event; GET/PUT/DELETE/PATCH /v1/events; 20 KB of headers; a bad header byte; charset=utf-16; test.event,×1000; a body over the limit (fetch, node:http, chunked); security headers; Accept: image/png.',
    expected:
      '400 EVP_STREAM_UNKNOWN (not 500, not two streams); 405 EVP_METHOD_NOT_ALLOWED with Allow; 431 EVP_HEADERS_TOO_LARGE and 400 as problem+json; 415; one client counted; 413 EVP_BODY_TOO_LARGE seen whole by every client; nosniff and a CSP; 406 EVP_NOT_ACCEPTABLE.',
    timeoutMs: { quick: 25_000, full: 40_000 },
    async run(ctx) {
      const percent = ctx.stream('/v2/stream/%25')
      expectProblem(ctx, await percent.answer, 400, 'EVP_STREAM_UNKNOWN', 'GET /v2/stream/%25')
      percent.close()
      const encoded = ctx.stream('/v2/stream/test.event%252Ctest.event')
      const encodedAnswer = await encoded.answer
      encoded.close()
      if (expectProblem(ctx, encodedAnswer, 400, 'EVP_STREAM_UNKNOWN', 'GET /v2/stream/test.event%252Ctest.event')) {
        const invalid = getPath(encodedAnswer.json, 'details.invalid')
        ctx.expect(JSON.stringify(invalid) === JSON.stringify(['test.event%2Ctest.event']), `one unknown name test.event%2Ctest.event, got ${JSON.stringify(invalid)}`)
      }

      for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
        const answer = await ctx.request({ method, path: '/v1/events', ...(method === 'PUT' || method === 'PATCH' ? { headers: { 'content-type': 'application/json' }, body: '[]' } : {}) })
        if (expectProblem(ctx, answer, 405, 'EVP_METHOD_NOT_ALLOWED', `${method} /v1/events`)) {
          ctx.expect(/\bPOST\b/.test(header(answer.headers, 'allow') ?? ''), `${method} /v1/events: an Allow header naming POST, got ${JSON.stringify(header(answer.headers, 'allow'))}`)
        }
      }

      const filler = range(20).map((i) => `X-Filler-${i}: ${'h'.repeat(1000)}\r\n`).join('')
      const big = await rawExchange({ host: ctx.host, port: ctx.port, data: `GET /healthz HTTP/1.1\r\nHost: ${ctx.host}\r\n${filler}\r\n`, path: '/healthz (20 KB of headers)' })
      ctx.record(big.answer)
      expectProblem(ctx, big.answer, 431, 'EVP_HEADERS_TOO_LARGE', '20 KB of request headers')
      const badByte = await rawExchange({ host: ctx.host, port: ctx.port, data: `GET /healthz HTTP/1.1\r\nHost: ${ctx.host}\r\nX-Bad: a\u0001b\r\n\r\n`, path: '/healthz (a bad header byte)' })
      ctx.record(badByte.answer)
      ctx.expect(badByte.answer.status === 400 && problemType.test(header(badByte.answer.headers, 'content-type') ?? ''), `a header with a control byte: 400 as problem+json, got ${said(badByte.answer)} (${header(badByte.answer.headers, 'content-type') ?? 'no content type'})`)

      const utf16Event = ctx.event(streams.test, { test: 'utf-16' })
      ctx.track(utf16Event, { expect: 'bad' })
      const utf16 = await ctx.post([utf16Event], { contentType: 'application/json; charset=utf-16', body: Buffer.from(JSON.stringify([utf16Event]), 'utf16le') })
      expectProblem(ctx, utf16.answer, 415, 'EVP_UNSUPPORTED_MEDIA_TYPE', 'content-type application/json; charset=utf-16')

      const gauge = async () => metricValue((await ctx.metrics()).text, 'eventplane_streams_connected_clients', { stream: streams.test }) ?? 0
      const clientsBefore = await gauge()
      const many = ctx.stream(`/v2/stream/${'test.event,'.repeat(1000)}`)
      const manyAnswer = await many.answer
      if (ctx.expect(manyAnswer.label === '200 SSE', `GET /v2/stream/test.event,×1000: 200 SSE, got ${said(manyAnswer)}`)) {
        await ctx.sleep(200)
        const open = await gauge()
        ctx.expect(open - clientsBefore === 1, `eventplane_streams_connected_clients{stream="test.event"} counts that connection once: ${clientsBefore} → ${open}`)
      }
      many.close()

      // A body over the limit, as every kind of client sends it: each must read the 413.
      const over = Buffer.alloc(ctx.limits.maxBodyBytes + 256 * 1024, 0x20)
      const started = performance.now()
      let fetched: Answer
      try {
        const response = await fetch(`${ctx.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: over, signal: ctx.signal })
        const body = Buffer.from(await response.arrayBuffer())
        fetched = describeAnswer({ method: 'POST', path: '/v1/events (fetch, over the limit)', label: '', status: response.status, headers: Object.fromEntries(response.headers), body, bodyBytes: body.length, ms: performance.now() - started })
      } catch (error) {
        const cause = (error as { cause?: { code?: string; message?: string } }).cause
        fetched = describeAnswer({ method: 'POST', path: '/v1/events (fetch, over the limit)', label: '', headers: {}, body: Buffer.alloc(0), bodyBytes: 0, error: cause?.code ?? cause?.message ?? (error as Error).message, errorBeforeEnd: true, ms: performance.now() - started })
      }
      ctx.record(fetched)
      expectProblem(ctx, fetched, 413, 'EVP_BODY_TOO_LARGE', `a ${over.length}-byte body with fetch`)
      const withHttp = await ctx.request({ method: 'POST', path: '/v1/events', headers: { 'content-type': 'application/json' }, body: over })
      expectProblem(ctx, withHttp, 413, 'EVP_BODY_TOO_LARGE', `a ${over.length}-byte body with node:http`)
      ctx.expect(withHttp.error === undefined, `node:http sees no network error around the 413, got ${withHttp.error}${withHttp.errorBeforeEnd ? ' before the answer' : ' after it'}`)
      const chunked = await chunkedPost(ctx, over)
      ctx.record(chunked)
      expectProblem(ctx, chunked, 413, 'EVP_BODY_TOO_LARGE', `a ${over.length}-byte chunked body with node:http`)

      const refused = () => {
        const event: JsonObject = { $schema: testSchema, meta: { stream: streams.test, id: randomUUID() }, test: 42 }
        ctx.track(event, { expect: 'bad' })
        return event
      }
      // Security headers on API answers of every kind that have a body (the intake's empty
      // 201 skips them: there is nothing for a browser to sniff or frame).
      const answers = [
        await ctx.request({ path: '/healthz' }),
        await ctx.request({ path: '/repositories' }),
        await ctx.request({ path: '/nope' }),
        (await ctx.post([ctx.event(), refused()])).answer,
        (await ctx.post([], { body: '{"not json' })).answer,
      ]
      for (const answer of answers) {
        const where = `${answer.method} ${answer.path} (${answer.label})`
        ctx.expect(header(answer.headers, 'x-content-type-options') === 'nosniff', `${where}: x-content-type-options: nosniff, got ${JSON.stringify(header(answer.headers, 'x-content-type-options'))}`)
        ctx.expect(header(answer.headers, 'content-security-policy') !== undefined, `${where}: a content-security-policy header`)
      }

      const png = ctx.stream(`/v2/stream/${streams.test}`, { accept: 'image/png' })
      expectProblem(ctx, await png.answer, 406, 'EVP_NOT_ACCEPTABLE', 'GET /v2/stream/test.event with Accept: image/png')
      png.close()
    },
  },

  {
    name: 'random-corpus',
    group: 'randomized',
    summary:
      'Seeded batches mixing valid eventplane/test/event events with mutated ones (wrong types, missing fields, huge strings, nesting near the limit, lone surrogates, U+0000, __proto__/constructor keys, 1e308, -0, times out of range, unknown and regex streams, bad $schema values), in every accepted content type, sometimes hasty, sometimes a body broken as a whole.',
    expected: 'No 5xx but documented retryable ones; every answer well-formed; every valid event (by construction) stored once and as sent; no invalid one stored.',
    timeoutMs: { quick: 30_000, full: 180_000 },
    async run(ctx) {
      const batches = generateCorpus({ seed: ctx.seed, batches: ctx.quick ? 60 : 600, maxBodyBytes: ctx.limits.maxBodyBytes })
      ctx.note(`seed ${ctx.seed} (replay: --only random-corpus --seed ${ctx.seed}); ${batches.length} batches, ${batches.reduce((n, b) => n + b.events.length, 0)} events`)
      const problems = new Map<string, number>()
      const problem = (text: string) => problems.set(text, (problems.get(text) ?? 0) + 1)
      await pool(batches, 4, async (batch) => {
        for (const event of batch.events) {
          if (typeof getPath(event.value, 'meta.id') !== 'string') continue
          ctx.track(event.value as JsonObject, { expect: event.expect, allowed: [...event.allowed, ...(batch.refuseWith ?? []), ...(batch.mayRefuseWith ?? [])], compare: event.compare })
        }
        const { answer, malformed } = await ctx.post(
          batch.events.map((e) => e.value),
          { body: batch.body, contentType: batch.contentType, ...(batch.hasty ? { query: 'hasty=1' } : {}) },
        )
        for (const m of malformed) problem(`malformed answer: ${m.replace(/\d+/g, 'N')}`)
        const batchProblem = answer.code !== undefined
        if (batch.refuseWith !== undefined) {
          if (!batch.refuseWith.includes(answer.code ?? '')) problem(`a body ${batch.brokenBy}: expected ${batch.refuseWith.join(' or ')}, got ${answer.label}`)
        } else if (batchProblem && !(batch.mayRefuseWith ?? []).includes(answer.code!) && !(answer.status === 503 && answer.code === 'EVP_OVERLOADED')) {
          problem(`a well-formed batch refused as a whole: ${answer.label}`)
        }
      })
      for (const [text, n] of problems) ctx.expect(false, `${text} (×${n})`)
    },
  },
]

/** POST with `Transfer-Encoding: chunked` (no Content-Length): the limit is found while reading. */
function chunkedPost(ctx: AttackContext, body: Buffer): Promise<Answer> {
  const started = performance.now()
  return new Promise((resolve) => {
    const path = '/v1/events (chunked, over the limit)'
    let settled = false
    let answer: Answer | undefined
    const chunks: Buffer[] = []
    const done = (error?: string) => {
      if (settled) return
      if (answer !== undefined && error === undefined) {
        settled = true
        answer.body = Buffer.concat(chunks)
        answer.bodyBytes = answer.body.length
        answer.ms = performance.now() - started
        return resolve(describeAnswer(answer))
      }
      if (error !== undefined && answer === undefined) {
        settled = true
        resolve(describeAnswer({ method: 'POST', path, label: '', headers: {}, body: Buffer.alloc(0), bodyBytes: 0, error, errorBeforeEnd: true, ms: performance.now() - started }))
      }
    }
    const req = httpRequest({ host: ctx.host, port: ctx.port, method: 'POST', path: '/v1/events', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, agent: false, localAddress: attackerAddress })
    ctx.own(req)
    req.on('response', (response) => {
      answer = { method: 'POST', path, label: '', status: response.statusCode, headers: response.headers, body: Buffer.alloc(0), bodyBytes: 0, ms: 0 }
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => done())
      response.on('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message))
    })
    req.on('error', (error: NodeJS.ErrnoException) => done(error.code ?? error.message))
    const piece = 64 * 1024
    let offset = 0
    const write = () => {
      while (offset < body.length) {
        const more = req.write(body.subarray(offset, offset + piece))
        offset += piece
        if (!more) return void req.once('drain', write)
      }
      req.end()
    }
    write()
    setTimeout(() => done('timeout'), 15_000).unref()
  })
}

/** The attacks by name, and whether a name is known. */
export function attackNamed(name: string): Attack | undefined {
  return attacks.find((a) => a.name === name)
}
