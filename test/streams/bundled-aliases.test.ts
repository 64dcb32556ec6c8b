/**
 * The bundled stream config as readers know Wikimedia's: `recentchange` (the name in
 * EventStreams' documentation and in pywikibot) reads mediawiki.recentchange.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { pino } from 'pino'
import { parse } from 'yaml'
import { loadConfig } from '../../src/config/index.ts'
import { startServer } from '../../src/server/index.ts'
import { parseSse } from '../../src/streams/follow.ts'
import { bundledSchemas, tempDir, writeBundledConfig } from '../helpers.ts'

test('/v2/stream/recentchange is mediawiki.recentchange, as on stream.wikimedia.org', async (t) => {
  const dir = tempDir()
  const { config } = loadConfig({ path: writeBundledConfig(dir, { server: { port: 0 } }), env: {}, cwd: dir })
  const server = await startServer(config, { logger: pino({ level: 'silent' }) })
  t.after(() => server.close())
  const schema = parse(readFileSync(join(bundledSchemas, 'jsonschema/eventplane/mediawiki/recentchange/latest.yaml'), 'utf8')) as { examples: Array<Record<string, unknown>> }
  const event = { ...schema.examples[0]!, meta: { ...(schema.examples[0]!['meta'] as object), stream: 'mediawiki.recentchange', domain: 'en.wikipedia.org' }, title: 'Alias test' }
  const posted = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([event]) })
  assert.equal(posted.status, 201, await posted.text())

  const abort = new AbortController()
  t.after(() => abort.abort())
  const response = await fetch(`${server.url}/v2/stream/recentchange?since=0`, { signal: abort.signal })
  assert.equal(response.status, 200)
  for await (const message of parseSse(response.body!)) {
    if (message.event !== 'message') continue
    const got = JSON.parse(message.data) as { title: string; meta: { stream: string; topic: string } }
    assert.equal(got.title, 'Alias test')
    assert.equal(got.meta.stream, 'mediawiki.recentchange')
    assert.equal(got.meta.topic, 'datacenter1.mediawiki.recentchange')
    break
  }
  abort.abort()
})
