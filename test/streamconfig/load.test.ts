import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import { isEventplaneError, type EventplaneError } from '../../src/core/errors.ts'
import { loadStreamConfig, maxStreamConfigBytes, parseStreamConfig } from '../../src/streamconfig/index.ts'
import { tempDir } from './helpers.ts'

const source = '/etc/eventplane/streams.yaml'

/** Parses `text`, expects an EventplaneError and returns it. */
function failure(text: string): EventplaneError {
  try {
    parseStreamConfig(text, { source })
  } catch (error) {
    assert.ok(isEventplaneError(error), String(error))
    return error
  }
  assert.fail('expected the stream config to be refused')
}

describe('stream config validation', () => {
  it('a missing schema_title names the file, the stream key’s line and the setting', () => {
    const error = failure('streams:\n  ok: {schema_title: a}\n  foo:\n    description: x\n')
    assert.equal(error.code, 'EVP_STREAM_CONFIG_INVALID')
    assert.match(error.message, new RegExp(`^${source}:3:3: `))
    assert.match(error.message, /"foo".*schema_title/)
    assert.equal(error.details?.['line'], 3)
    assert.equal(error.details?.['stream'], 'foo')
    assert.equal(error.details?.['setting'], 'schema_title')
  })

  it('an empty schema_title is refused', () => {
    const error = failure("streams:\n  foo:\n    schema_title: ''\n")
    assert.equal(error.code, 'EVP_STREAM_CONFIG_INVALID')
    assert.match(error.message, /:3:19: /)
  })

  it('sample.rate 2 points at the value', () => {
    const error = failure('streams:\n  foo:\n    schema_title: x\n    sample:\n      rate: 2\n')
    assert.equal(error.code, 'EVP_STREAM_CONFIG_INVALID')
    assert.match(error.message, /streams\.yaml:5:13: stream "foo": sample\.rate must be <= 1/)
    assert.equal(error.details?.['setting'], 'sample.rate')
  })

  it('sample.unit bogus lists the allowed units', () => {
    const error = failure('streams:\n  foo:\n    schema_title: x\n    sample: {rate: 1, unit: bogus}\n')
    assert.equal(error.code, 'EVP_STREAM_CONFIG_INVALID')
    assert.match(error.message, /:4:\d+: .*sample\.unit must be one of "pageview", "session", "device"/)
  })

  it('an invalid regex key is EVP_STREAM_KEY_INVALID with line, column and key', () => {
    const error = failure("streams:\n  ok: {schema_title: a}\n  '/([/':\n    schema_title: x\n")
    assert.equal(error.code, 'EVP_STREAM_KEY_INVALID')
    assert.match(error.message, /streams\.yaml:3:3: stream key "\/\(\[\/" is not a valid regex/)
    assert.equal(error.details?.['stream'], '/([/')
  })

  it('a key starting with / but not ending with / is refused', () => {
    const error = failure("streams:\n  '/^a.+/i': {schema_title: x}\n")
    assert.equal(error.code, 'EVP_STREAM_KEY_INVALID')
    assert.match(error.message, /:2:3: /)
  })

  it('a bad stream name is EVP_STREAM_KEY_INVALID', () => {
    for (const name of ['bad name', 'a/b', '.', '..', 'x'.repeat(250), 'ü']) {
      const error = failure(`streams:\n  ${JSON.stringify(name)}: {schema_title: x}\n`)
      assert.equal(error.code, 'EVP_STREAM_KEY_INVALID', name)
      assert.match(error.message, /:2:3: stream key/)
    }
    assert.doesNotThrow(() => parseStreamConfig(`streams:\n  ${'x'.repeat(249)}: {schema_title: x}\n`, { source }))
  })

  it('malformed YAML names the line', () => {
    const error = failure('streams:\n  foo: [\n    schema_title: x\n')
    assert.equal(error.code, 'EVP_STREAM_CONFIG_INVALID')
    assert.match(error.message, new RegExp(`^${source}:\\d+:\\d+: `))
    assert.equal(typeof error.details?.['line'], 'number')
  })

  it('duplicate keys are refused', () => {
    const error = failure('streams:\n  a: {schema_title: x}\n  a: {schema_title: y}\n')
    assert.equal(error.code, 'EVP_STREAM_CONFIG_INVALID')
    assert.match(error.message, /:3:\d+: /)
  })

  it('a document that is not a mapping, or has no streams:, is refused clearly', () => {
    for (const text of ['', '# nothing\n', '- a\n- b\n', 'just a string\n', '42\n']) {
      const error = failure(text)
      assert.equal(error.code, 'EVP_STREAM_CONFIG_INVALID', JSON.stringify(text))
      assert.match(error.message, /must be a mapping with a streams: key/)
    }
    assert.match(failure('defaults: {}\n').message, /streams is required/)
    assert.match(failure('streams:\n').message, /:1:9: streams must be a mapping/)
    assert.match(failure('streams: {}\nstream: {}\n').message, /:2:9: stream is not a known key/)
  })

  it('settings that are not a mapping are refused', () => {
    assert.match(failure('streams:\n  foo:\n').message, /:2:\d+: stream "foo": settings must be a mapping/)
    assert.match(failure('streams:\n  foo: [a]\n').message, /:2:8: stream "foo": settings must be a mapping/)
  })

  it('typed settings are checked; custom settings pass through', () => {
    const bad = [
      ['topic_prefixes: oops', /topic_prefixes must be a list or null/],
      ["topic_prefixes: ['has space.']", /topic_prefixes\[0\] must match pattern/],
      ['topics: []', /topics must NOT have fewer than 1 items/],
      ['message_key_fields: {a: "b..c"}', /message_key_fields\.a must match pattern/],
      ['message_key_fields: {a: 1}', /message_key_fields\.a must be a string/],
      ['canary_events_enabled: "yes"', /canary_events_enabled must be a boolean/],
      ['destination_event_service: ""', /destination_event_service must NOT have fewer than 1 characters/],
      ['producers: []', /producers must be a mapping/],
      ['consumers: 1', /consumers must be a mapping/],
      ['stream_aliases: [1]', /stream_aliases\[0\] must be a string/],
      ['description: 1', /description must be a string/],
      ['sample: {unit: session}', /sample\.rate is required/],
      ['sample: {rate: 0.5, rat: 1}', /sample\.rat is not a known key/],
      ['stream: other', /stream is computed from the key/],
    ] as const
    for (const [line, pattern] of bad) {
      const error = failure(`streams:\n  foo:\n    schema_title: x\n    ${line}\n`)
      assert.equal(error.code, 'EVP_STREAM_CONFIG_INVALID', line)
      assert.match(error.message, pattern, line)
      assert.match(error.message, /streams\.yaml:4:/, line)
    }
    const ok = parseStreamConfig('streams:\n  foo:\n    schema_title: x\n    stream: foo\n    my_custom: {any: [thing]}\n', { source })
    assert.deepEqual(ok.lookup('foo')?.['my_custom'], { any: ['thing'] })
  })

  it('a bad default is reported once, at its line in defaults:', () => {
    const error = failure('defaults:\n  sample: {rate: 3}\nstreams:\n  a: {schema_title: x}\n  b: {schema_title: y}\n')
    assert.equal(error.code, 'EVP_STREAM_CONFIG_INVALID')
    assert.equal(error.message.split('\n').length, 1)
    assert.match(error.message, /:2:18: defaults: sample\.rate must be <= 1/)
  })

  it('stream in defaults is refused once', () => {
    const error = failure('defaults:\n  stream: x\nstreams:\n  a: {schema_title: x}\n  b: {schema_title: y}\n')
    assert.equal(error.code, 'EVP_STREAM_CONFIG_INVALID')
    assert.equal(error.message.split('\n').length, 1)
    assert.match(error.message, /:2:11: defaults: stream is computed/)
  })

  it('a stream’s own bad value points at the stream, not at the default it merges with', () => {
    const error = failure('defaults:\n  sample: {rate: 0.5, unit: pageview}\nstreams:\n  a:\n    schema_title: x\n    sample: {unit: weekly}\n')
    assert.match(error.message, /:6:20: stream "a": sample\.unit must be one of/)
  })

  it('reports every problem, key problems first, and the first one’s code', () => {
    const error = failure("streams:\n  a: {}\n  'b c': {schema_title: x}\n  d: {schema_title: x, sample: {rate: -1}}\n")
    assert.equal(error.code, 'EVP_STREAM_KEY_INVALID')
    const problems = error.details?.['problems'] as Array<{ code: string; line: number }>
    assert.deepEqual(
      problems.map((p) => [p.code, p.line]),
      [
        ['EVP_STREAM_KEY_INVALID', 3],
        ['EVP_STREAM_CONFIG_INVALID', 2],
        ['EVP_STREAM_CONFIG_INVALID', 4],
      ],
    )
  })

  it('refuses text over the size limit', () => {
    const error = failure('#'.repeat(maxStreamConfigBytes + 1))
    assert.equal(error.code, 'EVP_STREAM_CONFIG_INVALID')
    assert.match(error.message, /over the \d+-byte limit/)
  })
})

describe('loadStreamConfig', () => {
  const temp = tempDir()
  after(() => temp.cleanup())

  it('reads a file', async () => {
    const file = temp.write('streams.yaml', 'streams:\n  a: {schema_title: x}\n')
    const config = await loadStreamConfig(file)
    assert.equal(config.source, file)
    assert.equal(config.lookup('a')?.schema_title, 'x')
  })

  it('reads JSON too', async () => {
    const file = temp.write('streams.json', JSON.stringify({ streams: { a: { schema_title: 'x' } } }))
    assert.equal((await loadStreamConfig(file)).lookup('a')?.schema_title, 'x')
  })

  it('a missing file is EVP_STREAM_CONFIG_UNAVAILABLE', async () => {
    await assert.rejects(loadStreamConfig(`${temp.dir}/nope.yaml`), (e) => isEventplaneError(e) && e.code === 'EVP_STREAM_CONFIG_UNAVAILABLE')
  })

  it('a relative path is refused', async () => {
    await assert.rejects(loadStreamConfig('streams.yaml'), (e) => isEventplaneError(e) && e.code === 'EVP_CONFIG_INVALID')
  })
})
