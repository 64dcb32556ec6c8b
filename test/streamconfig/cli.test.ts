import assert from 'node:assert/strict'
import { after, describe, it } from 'node:test'
import type { CommandContext } from '../../src/cli/command.ts'
import { streamsListCommand, streamsShowCommand } from '../../src/cli/streams.ts'
import { isEventplaneError } from '../../src/core/errors.ts'
import { captureStream, sampleYaml, tempDir } from './helpers.ts'

describe('eventplane streams', () => {
  const temp = tempDir()
  temp.write('streams.yaml', sampleYaml)
  const config = temp.write('eventplane.yaml', 'stream_config:\n  source: ./streams.yaml\n')
  const noSource = temp.write('nosource.yaml', 'log: {level: silent}\n')
  after(() => temp.cleanup())

  function context(values: CommandContext['values'], positionals: string[] = []) {
    const stdout = captureStream()
    const stderr = captureStream()
    return { stdout, stderr, context: { values, positionals, stdout, stderr, env: {}, cwd: temp.dir } satisfies CommandContext }
  }

  it('list prints a table of name or regex, schema title and topics', async () => {
    const { stdout, context: ctx } = context({ config })
    assert.equal(await streamsListCommand.run(ctx), 0)
    const lines = stdout.text().trimEnd().split('\n')
    assert.match(lines[0]!, /^STREAM\s+SCHEMA_TITLE\s+TOPICS$/)
    assert.equal(lines.length, 7)
    assert.match(lines[1]!, /^nonya\s+mediawiki\/nonya\s+nonya_topic$/)
    assert.match(lines[3]!, /^test\.event\s+eventplane\/test\/event\s+dc1\.test\.event,dc2\.test\.event$/)
    assert.ok(lines.some((line) => /^\/\^mediawiki\\\.job\\\.\.\+\/\s+mediawiki\/job\s+\/\^\(eqiad\\\.\|codfw\\\.\)mediawiki/.test(line)), stdout.text())
  })

  it('list --json prints every entry’s settings', async () => {
    const { stdout, context: ctx } = context({ config, json: true })
    assert.equal(await streamsListCommand.run(ctx), 0)
    const parsed = JSON.parse(stdout.text()) as Record<string, { stream: string }>
    assert.equal(Object.keys(parsed).length, 6)
    assert.equal(parsed['/^mediawiki\\..+/']?.stream, '/^mediawiki\\..+/')
  })

  it('show prints the resolved settings of a name, also one matched by a regex', async () => {
    const { stdout, context: ctx } = context({ config }, ['mediawiki.job.refresh'])
    assert.equal(await streamsShowCommand.run(ctx), 0)
    const shown = JSON.parse(stdout.text()) as { stream: string; schema_title: string; topics: string[] }
    assert.equal(shown.stream, 'mediawiki.job.refresh')
    assert.equal(shown.schema_title, 'mediawiki/job')
    assert.deepEqual(shown.topics, ['eqiad.mediawiki.job.refresh', 'codfw.mediawiki.job.refresh'])
  })

  it('show of an unknown stream is EVP_STREAM_NOT_FOUND', async () => {
    const { stdout, context: ctx } = context({ config }, ['nope'])
    await assert.rejects(streamsShowCommand.run(ctx), (e) => isEventplaneError(e) && e.code === 'EVP_STREAM_NOT_FOUND')
    assert.equal(stdout.text(), '')
  })

  it('show without a name is a usage error', async () => {
    const { context: ctx } = context({ config })
    await assert.rejects(streamsShowCommand.run(ctx), (e) => isEventplaneError(e) && e.code === 'EVP_CLI_USAGE')
  })

  it('a config without stream_config.source is EVP_CONFIG_INVALID', async () => {
    const { context: ctx } = context({ config: noSource })
    await assert.rejects(streamsListCommand.run(ctx), (e) => isEventplaneError(e) && e.code === 'EVP_CONFIG_INVALID')
  })

  it('an invalid stream config fails with its code', async () => {
    temp.write('broken.yaml', 'streams:\n  "bad name": {schema_title: x}\n')
    const brokenConfig = temp.write('broken-config.yaml', 'stream_config:\n  source: ./broken.yaml\n')
    const { context: ctx } = context({ config: brokenConfig })
    await assert.rejects(streamsListCommand.run(ctx), (e) => isEventplaneError(e) && e.code === 'EVP_STREAM_KEY_INVALID')
  })

  it('uses the bundled config and stream config by default', async () => {
    const { stdout, context: ctx } = context({}, ['test.event'])
    assert.equal(await streamsShowCommand.run(ctx), 0)
    assert.deepEqual(JSON.parse(stdout.text()).topics, ['datacenter1.test.event'])
  })
})
