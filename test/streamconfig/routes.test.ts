import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { Registry } from 'prom-client'
import { installErrorHandling } from '../../src/core/http.ts'
import { openStreamConfig, streamConfigRoutes, type StreamConfigSource } from '../../src/streamconfig/index.ts'
import { captureLogger, sampleYaml, tempDir } from './helpers.ts'

describe('stream config HTTP routes', () => {
  const temp = tempDir()
  let file: string
  let source: StreamConfigSource
  let app: FastifyInstance

  before(async () => {
    file = temp.write('streams.yaml', sampleYaml)
    source = await openStreamConfig({ source: file, watch: false, logger: captureLogger().logger, registry: new Registry() })
    // The router options the server uses, so the wildcard route is tested as it runs there.
    app = Fastify({ routerOptions: { ignoreTrailingSlash: true, maxParamLength: 1024 } })
    installErrorHandling(app)
    await app.register(streamConfigRoutes, { source, cacheMaxAgeS: 600 })
    await app.ready()
  })

  after(async () => {
    await app.close()
    await source.close()
    temp.cleanup()
  })

  const get = (url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers })

  describe('GET /w/api.php?action=streamconfigs', () => {
    it('answers {"streams":{…}} for the named streams, keyed by requested name with stream and topics', async () => {
      const response = await get('/w/api.php?action=streamconfigs&format=json&streams=nonya|mediawiki.job.A|nope')
      assert.equal(response.statusCode, 200)
      assert.match(String(response.headers['content-type']), /^application\/json/)
      const body = response.json() as { streams: Record<string, { stream: string; topics: string[] }> }
      assert.deepEqual(Object.keys(body.streams), ['nonya', 'mediawiki.job.A'])
      assert.equal(body.streams['mediawiki.job.A']?.stream, 'mediawiki.job.A')
      assert.deepEqual(body.streams['mediawiki.job.A']?.topics, ['eqiad.mediawiki.job.A', 'codfw.mediawiki.job.A'])
    })

    it('answers every entry without streams=, booleans as booleans, empty results as {}', async () => {
      const all = (await get('/w/api.php?action=streamconfigs&format=json')).json() as { streams: Record<string, { canary_events_enabled: unknown }> }
      assert.equal(Object.keys(all.streams).length, 6)
      assert.equal(all.streams['nonya']?.canary_events_enabled, true)
      assert.equal((await get('/w/api.php?action=streamconfigs&format=json&streams=nope')).body, '{"streams":{}}')
    })

    it('accepts and ignores all_settings and formatversion', async () => {
      const response = await get('/w/api.php?action=streamconfigs&format=json&formatversion=2&all_settings=1&streams=nonya')
      assert.equal(response.statusCode, 200)
      assert.deepEqual(Object.keys(response.json().streams), ['nonya'])
    })

    it('filters by MediaWiki-style constraints', async () => {
      const main = await get('/w/api.php?action=streamconfigs&format=json&constraints=destination_event_service=eventgate-main')
      assert.deepEqual(Object.keys(main.json().streams), ['test.event', '/^mediawiki\\.job\\..+/'])
      const nested = await get(
        `/w/api.php?action=streamconfigs&format=json&constraints=${encodeURIComponent('producers[metrics_platform_client][provide_values]=page_id|canary_events_enabled=1')}`,
      )
      assert.deepEqual(Object.keys(nested.json().streams), ['test.event'])
      const off = await get('/w/api.php?action=streamconfigs&format=json&constraints=canary_events_enabled=&streams=mediawiki.job.x|nonya')
      assert.deepEqual(Object.keys(off.json().streams), ['mediawiki.job.x'])
    })

    it('allows 250 stream names and refuses 251 as problem+json', async () => {
      const names = (n: number) => Array.from({ length: n }, (_, i) => `mediawiki.job.n${i}`).join('|')
      const ok = await get(`/w/api.php?action=streamconfigs&format=json&streams=${names(250)}`)
      assert.equal(ok.statusCode, 200)
      assert.equal(Object.keys(ok.json().streams).length, 250)
      const tooMany = await get(`/w/api.php?action=streamconfigs&format=json&streams=${names(251)}`)
      assert.equal(tooMany.statusCode, 400)
      assert.match(String(tooMany.headers['content-type']), /^application\/problem\+json/)
      assert.equal(tooMany.json().code, 'EVP_BAD_REQUEST')
    })

    it('answers bad constraints with problem+json', async () => {
      const response = await get('/w/api.php?action=streamconfigs&format=json&constraints=a%5Bb=1')
      assert.equal(response.statusCode, 400)
      assert.equal(response.json().code, 'EVP_BAD_REQUEST')
    })

    it('answers a missing or unknown action and a format other than json in the MediaWiki error shape', async () => {
      for (const [url, mwCode] of [
        ['/w/api.php?format=json', 'missingparam'],
        ['/w/api.php?action=query&format=json', 'badvalue'],
        ['/w/api.php?action=streamconfigs&format=xml', 'badvalue'],
      ] as const) {
        const response = await get(url)
        assert.equal(response.statusCode, 400, url)
        assert.equal(response.headers['mediawiki-api-error'], mwCode)
        assert.equal(response.headers['cache-control'], 'no-store')
        const body = response.json() as { error: { code: string; info: string; eventplane_code: string } }
        assert.equal(body.error.code, mwCode)
        assert.equal(typeof body.error.info, 'string')
        assert.equal(body.error.eventplane_code, 'EVP_BAD_REQUEST')
      }
    })
  })

  describe('GET /v1/stream-configs', () => {
    it('answers every entry keyed by name or regex', async () => {
      for (const url of ['/v1/stream-configs', '/v1/stream-configs/']) {
        const response = await get(url)
        assert.equal(response.statusCode, 200, url)
        assert.equal(Object.keys(response.json()).length, 6)
        assert.ok(response.json()['/^mediawiki\\..+/'])
      }
    })

    it('answers the named streams, split on , or |, unknown ones dropped', async () => {
      const response = await get('/v1/stream-configs/nonya,mediawiki.job.A%7Cnope|test.event')
      assert.equal(response.statusCode, 200)
      const body = response.json() as Record<string, { stream: string; topics: string[] }>
      assert.deepEqual(Object.keys(body), ['nonya', 'mediawiki.job.A', 'test.event'])
      assert.deepEqual(body['test.event']?.topics, ['dc1.test.event', 'dc2.test.event'])
      assert.equal(body['mediawiki.job.A']?.stream, 'mediawiki.job.A')
    })

    it('the same settings objects as the MediaWiki shape', async () => {
      const rest = (await get('/v1/stream-configs/nonya,mediawiki.job.A')).json()
      const mw = (await get('/w/api.php?action=streamconfigs&format=json&streams=nonya|mediawiki.job.A')).json()
      assert.deepEqual(rest, mw.streams)
    })

    it('allows 250 names in the path and refuses 251', async () => {
      const names = (n: number) => Array.from({ length: n }, (_, i) => `mediawiki.job.some-long-name-${i}`).join(',')
      assert.equal((await get(`/v1/stream-configs/${names(250)}`)).statusCode, 200)
      const tooMany = await get(`/v1/stream-configs/${names(251)}`)
      assert.equal(tooMany.statusCode, 400)
      assert.equal(tooMany.json().code, 'EVP_BAD_REQUEST')
    })
  })

  describe('caching', () => {
    it('is public with max-age and a strong ETag; If-None-Match gives 304', async () => {
      for (const url of ['/w/api.php?action=streamconfigs&format=json&streams=nonya', '/v1/stream-configs/nonya']) {
        const first = await get(url)
        assert.equal(first.headers['cache-control'], 'public, max-age=600')
        const etag = String(first.headers['etag'])
        assert.match(etag, /^"[^"]+"$/)
        const again = await get(url, { 'if-none-match': etag })
        assert.equal(again.statusCode, 304, url)
        assert.equal(again.body, '')
        assert.equal(again.headers['etag'], etag)
        assert.equal(again.headers['cache-control'], 'public, max-age=600')
        assert.equal((await get(url, { 'if-none-match': `"other", W/${etag}` })).statusCode, 304)
        assert.equal((await get(url, { 'if-none-match': '"other"' })).statusCode, 200)
      }
    })

    it('a new config generation changes the ETag', async () => {
      const url = '/v1/stream-configs/nonya'
      const etag = String((await get(url)).headers['etag'])
      writeFileSync(file, sampleYaml.replace('mediawiki/nonya', 'mediawiki/nonya2'))
      assert.ok((await source.reload()).ok)
      const response = await get(url, { 'if-none-match': etag })
      assert.equal(response.statusCode, 200)
      assert.notEqual(response.headers['etag'], etag)
      assert.equal(response.json().nonya.schema_title, 'mediawiki/nonya2')
    })
  })
})
