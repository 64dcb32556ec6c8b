/**
 * The legacy EventLogging beacon, `GET /beacon/event?<capsule>;`: the conversion of capsules as
 * EventLogging's clients encode them (`'?' + encodeURIComponent(JSON.stringify(capsule)) + ';'`),
 * malformed and oversize ones, then the endpoint of a real server on the bundled config (what
 * `npm start` serves): 204 at once, the event in the eventlogging_EventplaneTest topic, bad beacons
 * counted and never a 500.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { capsuleEvent } from '../../src/intake/beacon.ts'
import { bundledStreams, codeBlocks, repoRoot } from '../helpers.ts'
import { eventually, testPlatform, type TestPlatform } from './helpers.ts'

const settings = { schemas: { EventplaneTest: '1.0.0', MediaWikiPingback: '1.0.0' }, maxUrlLength: 2000 }
const at = new Date('2026-11-30T12:00:00.000Z')
/** The query string EventLogging's JS client makes of a capsule (ext.eventLogging: makeBeaconUrl). */
const qson = (capsule: unknown) => `${encodeURIComponent(JSON.stringify(capsule))};`
const mwCapsule = { event: { action: 'hello', value: 3 }, schema: 'EventplaneTest', webHost: 'en.wikipedia.org', wiki: 'enwiki', revision: -1 }

test('beacon: a capsule as mw.eventLog made it becomes an event of the migrated schema, in the eventlogging_ stream', () => {
  const made = capsuleEvent(qson(mwCapsule), settings, at)
  assert.ok('event' in made)
  const { event } = made
  const id = (event['meta'] as { id: string }).id
  assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  assert.deepEqual(event, {
    $schema: '/analytics/legacy/eventplanetest/1.0.0',
    meta: { stream: 'eventlogging_EventplaneTest', id },
    event: { action: 'hello', value: 3 },
    schema: 'EventplaneTest',
    uuid: id,
    client_dt: '2026-11-30T12:00:00.000Z',
    webHost: 'en.wikipedia.org',
    wiki: 'enwiki',
    revision: -1,
  })
  assert.notEqual((capsuleEvent(qson(mwCapsule), settings, at) as { event: { uuid: string } }).event.uuid, id, 'a new id for each capsule without one')
})

const conversions: Array<[string, string, (event: Record<string, unknown>) => void]> = [
  ['client_dt and uuid of the client kept (uuid lowercased, also meta.id)', qson({ ...mwCapsule, client_dt: '2026-11-30T11:59:59.000Z', uuid: '8B6D4E4A5C384C569A363B1F25C1C0F1' }), (e) => {
    assert.equal(e['client_dt'], '2026-11-30T11:59:59.000Z')
    assert.equal(e['uuid'], '8b6d4e4a5c384c569a363b1f25c1c0f1')
    assert.equal((e['meta'] as { id: string }).id, '8b6d4e4a5c384c569a363b1f25c1c0f1')
  }],
  ['a uuid that is not one is replaced', qson({ ...mwCapsule, uuid: 'not-a-uuid' }), (e) => assert.notEqual(e['uuid'], 'not-a-uuid')],
  ['fields only a server may set, and old clients\' flags, are left out', qson({ ...mwCapsule, ip: '1.2.3.4', recvFrom: 'cp1001', topic: 'x', clientValidated: true, isTruncated: false, userAgent: 'spoof' }), (e) => {
    for (const field of ['ip', 'recvFrom', 'topic', 'clientValidated', 'isTruncated', 'userAgent']) assert.equal(field in e, false, field)
  }],
  ['fields of the wrong type are left out', qson({ ...mwCapsule, wiki: 5, revision: 'x', webHost: null }), (e) => {
    for (const field of ['wiki', 'revision', 'webHost']) assert.equal(field in e, false, field)
  }],
  ['text beyond ASCII, and + kept as +', qson({ ...mwCapsule, event: { action: 'é ✓ 🎉 a+b' } }), (e) => assert.deepEqual(e['event'], { action: 'é ✓ 🎉 a+b' })],
  ['a leading ? and trailing & or ; as proxies leave them', `?${encodeURIComponent(JSON.stringify(mwCapsule))}&;`, (e) => assert.equal(e['schema'], 'EventplaneTest')],
  ['MediaWikiPingback, the schema third-party wikis still send', qson({ event: { database: 'mysql', MediaWiki: '1.43.0' }, schema: 'MediaWikiPingback', wiki: 'abc', webHost: 'wiki.example.org', revision: 15781718 }), (e) => {
    assert.equal(e['$schema'], '/analytics/legacy/mediawikipingback/1.0.0')
    assert.equal((e['meta'] as { stream: string }).stream, 'eventlogging_MediaWikiPingback')
  }],
]
for (const [name, query, check] of conversions) {
  test(`beacon conversion: ${name}`, () => {
    const made = capsuleEvent(query, settings, at)
    assert.ok('event' in made, JSON.stringify(made))
    check(made.event)
  })
}

const refusals: Array<[string, string, 'malformed' | 'unknown_schema', RegExp]> = [
  ['no query at all', '', 'malformed', /no capsule/],
  ['only separators', '?;&', 'malformed', /no capsule/],
  ['a broken %-escape', `${encodeURIComponent('{"schema":"EventplaneTest","event":{}}')}%E0%A4%A;`, 'malformed', /not URL-encoded JSON/],
  ['not JSON', 'hello%20world;', 'malformed', /not URL-encoded JSON/],
  ['JSON cut short (a URL truncated on the way)', qson(mwCapsule).slice(0, 40), 'malformed', /not URL-encoded JSON/],
  ['a JSON array', qson([mwCapsule]), 'malformed', /not a JSON object/],
  ['no schema', qson({ event: {} }), 'malformed', /schema is not a legacy schema name/],
  ['a schema name that is a path', qson({ event: {}, schema: '../../etc/passwd' }), 'malformed', /schema is not a legacy schema name/],
  ['an event that is not an object', qson({ event: 'x', schema: 'EventplaneTest' }), 'malformed', /event is not a JSON object/],
  ['no event', qson({ schema: 'EventplaneTest' }), 'malformed', /event is not a JSON object/],
  ['a schema not configured', qson({ event: {}, schema: 'NavigationTiming' }), 'unknown_schema', /NavigationTiming is not one of intake.beacon.schemas \(EventplaneTest, MediaWikiPingback\)/],
  ['a name of Object.prototype', qson({ event: {}, schema: 'constructor' }), 'unknown_schema', /constructor/],
]
for (const [name, query, outcome, reason] of refusals) {
  test(`beacon conversion refused: ${name}`, () => {
    const made = capsuleEvent(query, settings, at)
    assert.ok('outcome' in made, JSON.stringify(made))
    assert.equal(made.outcome, outcome)
    assert.match(made.reason, reason)
  })
}

let platform: TestPlatform
let url: string
before(async () => {
  // The bundled stream config (eventlogging_EventplaneTest, the error stream), as npm start serves it.
  platform = await testPlatform({ stream_config: { source: bundledStreams, watch: false } })
  url = await platform.app.listen({ host: '127.0.0.1', port: 0 })
})
after(async () => {
  await platform?.close()
})

async function outcomes(): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const counts: Record<string, number> = {}
  for (const match of text.matchAll(/^eventplane_beacon_requests_total\{outcome="(\w+)"\} (\d+)$/gm)) counts[match[1]!] = Number(match[2])
  return counts
}

const inTopic = async (action: string) => (await platform.events('eventlogging_EventplaneTest')).filter((e) => (e['event'] as { action?: string }).action === action)

test('beacon endpoint: 204 at once, and the event is in the eventlogging_EventplaneTest topic with the intake\'s dt, meta.dt and user agent', async () => {
  const response = await fetch(`${url}/beacon/event?${qson({ ...mwCapsule, event: { action: 'served' } })}`, { headers: { 'user-agent': 'Mozilla/5.0 (beacon test)' } })
  assert.equal(response.status, 204)
  assert.equal(await response.text(), '')
  await eventually(async () => (await inTopic('served')).length === 1)
  const [event] = await inTopic('served')
  assert.equal(event!['$schema'], '/analytics/legacy/eventplanetest/1.0.0')
  assert.equal(event!['uuid'], (event!['meta'] as { id: string }).id)
  assert.ok(Math.abs(Date.parse(event!['dt'] as string) - Date.now()) < 60_000, 'dt set by the intake (legacy schemas take it from the receive time)')
  assert.ok(typeof (event!['meta'] as { dt?: string }).dt === 'string')
  assert.equal((event!['http'] as { request_headers: Record<string, string> }).request_headers['user-agent'], 'Mozilla/5.0 (beacon test)')
  assert.equal((await outcomes())['accepted'], 1)
})

test('beacon endpoint: the same beacon twice with its uuid is appended once; POST with the capsule in the query (as MediaWiki PHP sent it) works too', async () => {
  const capsule = { ...mwCapsule, event: { action: 'twice' }, uuid: 'f1b2c3d4-0000-4000-8000-000000000001' }
  for (let i = 0; i < 2; i++) assert.equal((await fetch(`${url}/beacon/event?${qson(capsule)}`)).status, 204)
  const posted = await fetch(`${url}/beacon/event?${qson({ ...mwCapsule, event: { action: 'posted' } })}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'ignored=1' })
  assert.equal(posted.status, 204)
  await eventually(async () => (await inTopic('posted')).length === 1)
  await eventually(async () => (await inTopic('twice')).length === 1)
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.equal((await inTopic('twice')).length, 1, 'once')
})

test('beacon endpoint: a URL over 2,000 characters is 414 EVP_BEACON_URL_TOO_LONG and nothing is kept', async () => {
  const capsule = { ...mwCapsule, event: { action: 'long', value: 1, pad: 'x'.repeat(2000) } }
  const response = await fetch(`${url}/beacon/event?${qson(capsule)}`)
  assert.equal(response.status, 414)
  assert.equal(((await response.json()) as { code: string }).code, 'EVP_BEACON_URL_TOO_LONG')
  await new Promise((resolve) => setTimeout(resolve, 200))
  assert.equal((await inTopic('long')).length, 0)
  assert.equal((await outcomes())['too_long'], 1)
})

test('beacon endpoint: malformed capsules, unknown schemas and invalid events are answered 204, counted, and the server stays up', async () => {
  const before = await outcomes()
  const bad = [
    '',
    '%E0%A4%A;',
    qson([1, 2]),
    qson({ event: {}, schema: 'NoSuchSchema' }),
    // Valid capsule, invalid event: value must be a number.
    qson({ ...mwCapsule, event: { action: 'invalid', value: 'three' } }),
  ]
  for (const query of bad) {
    const response = await fetch(`${url}/beacon/event${query === '' ? '' : `?${query}`}`)
    assert.equal(response.status, 204, query)
  }
  // 200 more, fast: a flood of bad beacons is only counted.
  await Promise.all(Array.from({ length: 200 }, () => fetch(`${url}/beacon/event?not-json;`).then((r) => r.arrayBuffer())))
  await eventually(async () => {
    const now = await outcomes()
    return (now['malformed'] ?? 0) - (before['malformed'] ?? 0) === 203 && (now['unknown_schema'] ?? 0) - (before['unknown_schema'] ?? 0) === 1 && (now['invalid'] ?? 0) - (before['invalid'] ?? 0) === 1
  })
  // The invalid one is in the error stream, as any invalid event.
  await eventually(async () => (await platform.events('datacenter1.eventplane.error.validation')).some((e) => e['errored_stream_name'] === 'eventlogging_EventplaneTest'))
  assert.equal((await fetch(`${url}/healthz`)).status, 200)
})

test("beacon endpoint: docs/intake.md's example, run as written", async () => {
  const section = readFileSync(join(repoRoot, 'docs', 'intake.md'), 'utf8').split('## Legacy beacon')[1]!
  const lines = codeBlocks(section).find((block) => block.lang === 'sh')!.code.trim().split('\n')
  assert.equal(lines.length, 2)
  const outputs: string[] = []
  for (const line of lines) {
    const command = line.replaceAll('localhost:8192', url.replace('http://', ''))
    outputs.push(await new Promise<string>((resolve, reject) => execFile('sh', ['-c', `set -e; ${command}`], { timeout: 10_000 }, (error, stdout) => (error ? reject(new Error(`${command}: ${error.message}`)) : resolve(stdout)))))
    await eventually(async () => (await inTopic('hello')).length > 0)
  }
  assert.match(outputs[0]!, /^HTTP\/1\.1 204/)
  assert.match(outputs[1]!, /^data: .*"wiki":"examplewiki"/m)
})
