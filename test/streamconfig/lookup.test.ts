import assert from 'node:assert/strict'
import { fileURLToPath } from 'node:url'
import { describe, it } from 'node:test'
import { loadStreamConfig, parseStreamConfig } from '../../src/streamconfig/index.ts'
import { sampleYaml } from './helpers.ts'

const config = parseStreamConfig(sampleYaml, { source: '/test/streams.yaml' })

describe('StreamConfig lookup', () => {
  it('an exact key beats a regex that also matches', () => {
    const got = config.resolve('mediawiki.job.special')
    assert.equal(got?.key, 'mediawiki.job.special')
    assert.equal(got?.settings.schema_title, 'mediawiki/job/special')
  })

  it('the first regex in file order wins when several match', () => {
    assert.equal(config.resolve('mediawiki.job.refresh')?.key, '/^mediawiki\\.job\\..+/')
    assert.equal(config.lookup('mediawiki.job.refresh')?.schema_title, 'mediawiki/job')
    assert.equal(config.resolve('mediawiki.page')?.key, '/^mediawiki\\..+/')
  })

  it('keys a regex match by the requested name, with stream and topics for that name', () => {
    const got = config.get(['nonya', 'mediawiki.job.A', 'mediawiki.job.B'])
    assert.deepEqual(Object.keys(got), ['nonya', 'mediawiki.job.A', 'mediawiki.job.B'])
    assert.equal(got['mediawiki.job.A']?.stream, 'mediawiki.job.A')
    assert.deepEqual(got['mediawiki.job.A']?.topics, ['eqiad.mediawiki.job.A', 'codfw.mediawiki.job.A'])
    assert.deepEqual(got['mediawiki.job.B']?.topics, ['eqiad.mediawiki.job.B', 'codfw.mediawiki.job.B'])
    assert.equal(got['mediawiki.job.B']?.destination_event_service, 'eventgate-main')
  })

  it('omits targets that match nothing, and names that are not stream names', () => {
    assert.deepEqual(config.get(['unconfigured-stream-name']), {})
    assert.deepEqual(Object.keys(config.get(['nonya', 'nope', 'mediawiki.has space'])), ['nonya'])
    assert.equal(config.lookup('mediawiki.' + 'x'.repeat(300)), undefined)
  })

  it('lists every entry keyed by its name or regex when no targets are given', () => {
    const all = config.get()
    assert.deepEqual(Object.keys(all), [
      'nonya',
      'eventlogging_EventplaneTest',
      'test.event',
      'mediawiki.job.special',
      '/^mediawiki\\.job\\..+/',
      '/^mediawiki\\..+/',
    ])
    assert.equal(all['/^mediawiki\\.job\\..+/']?.stream, '/^mediawiki\\.job\\..+/')
  })

  it('looks a /regex/ key up as an exact key', () => {
    const got = config.get(['/^mediawiki\\..+/'])
    assert.deepEqual(got['/^mediawiki\\..+/']?.topics, ['/^(eqiad\\.|codfw\\.)mediawiki\\..+/'])
  })

  it('returns frozen settings, the same object for repeated lookups in one generation', () => {
    const a = config.lookup('mediawiki.job.x')
    assert.ok(Object.isFrozen(a))
    assert.ok(Object.isFrozen(a?.topics))
    assert.equal(config.lookup('mediawiki.job.x'), a)
    assert.ok(Object.isFrozen(config))
  })
})

describe('topics', () => {
  it('explicit topics win over prefixes', () => {
    assert.deepEqual(config.lookup('nonya')?.topics, ['nonya_topic'])
  })

  it('prefix + stream for each prefix; a stream’s own prefixes replace the default list', () => {
    assert.deepEqual(config.lookup('test.event')?.topics, ['dc1.test.event', 'dc2.test.event'])
    assert.deepEqual(config.lookup('test.event')?.topic_prefixes, ['dc1.', 'dc2.'])
  })

  it('null topic_prefixes make the stream name the topic', () => {
    assert.deepEqual(config.lookup('eventlogging_EventplaneTest')?.topics, ['eventlogging_EventplaneTest'])
  })

  it('no topic_prefixes at all make the stream name the topic', () => {
    const bare = parseStreamConfig('streams:\n  a.b: {schema_title: x}\n  /^c\\..+/: {schema_title: y}\n', { source: 's' })
    assert.deepEqual(bare.lookup('a.b')?.topics, ['a.b'])
    assert.deepEqual(bare.lookup('c.d')?.topics, ['c.d'])
    assert.deepEqual(bare.get()['/^c\\..+/']?.topics, ['/^c\\..+/'])
  })

  it('a listed regex entry gets one regex over the escaped prefixes, as EventStreamConfig', () => {
    assert.deepEqual(config.get()['/^mediawiki\\.job\\..+/']?.topics, ['/^(eqiad\\.|codfw\\.)mediawiki\\.job\\..+/'])
    const unanchored = parseStreamConfig("defaults: {topic_prefixes: ['a.']}\nstreams:\n  /job/: {schema_title: x}\n", { source: 's' })
    assert.deepEqual(unanchored.get()['/job/']?.topics, ['/(a\\.)job/'])
  })

  it('a single /regex/ topic of a regex entry is not used as the topics of a concrete name', () => {
    const fromMw = parseStreamConfig(
      "streams:\n  /^a\\..+/:\n    schema_title: x\n    stream: /^a\\..+/\n    topic_prefixes: ['e.']\n    topics: ['/^(e\\.)a\\..+/']\n",
      { source: 's' },
    )
    assert.deepEqual(fromMw.lookup('a.b')?.topics, ['e.a.b'])
    assert.deepEqual(fromMw.get()['/^a\\..+/']?.topics, ['/^(e\\.)a\\..+/'])
  })
})

describe('defaults', () => {
  it('are deep-merged under every stream: mappings key by key, lists replaced whole', () => {
    const merged = parseStreamConfig(
      `defaults:
  topic_prefixes: [a., b., c.]
  producers: {eventgate: {enrich: true, headers: [x, y]}}
streams:
  s:
    schema_title: t
    topic_prefixes: [z.]
    producers: {eventgate: {headers: [only]}, other: {on: true}}
`,
      { source: 's' },
    )
    const s = merged.lookup('s')!
    assert.deepEqual(s.topic_prefixes, ['z.'])
    assert.deepEqual(s.producers, { eventgate: { enrich: true, headers: ['only'] }, other: { on: true } })
    assert.deepEqual(s.topics, ['z.s'])
  })

  it('a stream’s own setting wins, including false and null over a default', () => {
    assert.equal(config.lookup('mediawiki.job.x')?.canary_events_enabled, false)
    assert.equal(config.lookup('mediawiki.x')?.canary_events_enabled, true)
    assert.equal(config.lookup('eventlogging_EventplaneTest')?.topic_prefixes, null)
  })

  it('lists a stream’s own settings before the ones from defaults', () => {
    assert.equal(Object.keys(config.lookup('nonya')!)[0], 'schema_title')
  })
})

describe('the bundled defaults/streams.yaml', () => {
  it('loads and resolves the documented streams', async () => {
    const bundled = await loadStreamConfig(fileURLToPath(new URL('../../defaults/streams.yaml', import.meta.url)))
    assert.deepEqual(bundled.lookup('test.event')?.topics, ['datacenter1.test.event'])
    assert.equal(bundled.lookup('eventplane.error.validation')?.schema_title, 'eventplane/error')
    assert.deepEqual(bundled.lookup('mediawiki.revision-create')?.message_key_fields, { wiki_id: 'database', page_id: 'page_id' })
    assert.equal(bundled.lookup('mediawiki.page-delete')?.schema_title, 'eventplane/mediawiki/page/delete')
    assert.equal(bundled.lookup('mediawiki.recentchange')?.schema_title, 'eventplane/mediawiki/recentchange')
    const web = bundled.lookup('product_metrics.web_base')
    assert.deepEqual(web?.sample, { rate: 1, unit: 'session' })
    assert.deepEqual(web?.producers, { metrics_platform_client: { provide_values: ['page_namespace_id', 'performer_is_logged_in'] } })
    assert.equal(web?.canary_events_enabled, true, 'canaries on by default (defaults)')
    assert.equal(bundled.lookup('eventplane.error.validation')?.canary_events_enabled, false, 'none to the error stream')
    assert.equal(web?.destination_event_service, 'eventgate-analytics-external', 'the SDK asks for streams with this constraint')
    const adhoc = bundled.lookup('test.event.foo')
    assert.equal(adhoc?.schema_title, 'eventplane/test/event')
    assert.deepEqual(adhoc?.topics, ['datacenter1.test.event.foo'])
    assert.deepEqual(bundled.get()['/^test\\.event\\..+$/']?.topics, ['/^(datacenter1\\.)test\\.event\\..+$/'])
  })
})

describe('ETag', () => {
  it('depends on the settings, not on comments or formatting', () => {
    const a = parseStreamConfig('streams:\n  a: {schema_title: x}\n', { source: 's' })
    const b = parseStreamConfig('# comment\nstreams:\n  a:\n    schema_title: x\n', { source: 's' })
    const c = parseStreamConfig('streams:\n  a: {schema_title: y}\n', { source: 's' })
    assert.equal(a.etag, b.etag)
    assert.notEqual(a.etag, c.etag)
    assert.match(a.etag, /^"[^"]+"$/)
  })
})
