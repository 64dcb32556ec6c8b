import assert from 'node:assert/strict'
import { symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import Fastify, { type FastifyInstance } from 'fastify'
import { parse } from 'yaml'
import { installErrorHandling } from '../../src/core/http.ts'
import { listTitles, listVersions, openRepository, readSchemaFile, schemaRoutes } from '../../src/schemas/index.ts'
import { bundledSchemas, fixtureRepo, fixtureSkipped, writableCopy } from '../helpers.ts'

describe('schema service', { skip: fixtureSkipped }, () => {
  let app: FastifyInstance
  const copy = writableCopy(fixtureRepo)
  const schemaDir = join(copy, 'jsonschema')
  // Bad things a repository may hold: a symlink pointing out, an oversized file, broken YAML.
  symlinkSync('/etc/passwd', join(schemaDir, 'test', 'event', 'escape.yaml'))
  symlinkSync('/etc', join(schemaDir, 'test', 'etcdir'))
  writeFileSync(join(schemaDir, 'test', 'event', '9.9.9.yaml'), `title: test/event\ndescription: "${'x'.repeat(300 * 1024)}"\n`)
  writeFileSync(join(schemaDir, 'test', 'event', '8.8.8.yaml'), 'title: [unclosed\n')

  before(async () => {
    app = Fastify()
    installErrorHandling(app)
    await app.register(schemaRoutes, {
      repositories: [
        openRepository(copy, { name: 'primary', maxFileBytes: 256 * 1024 }),
        openRepository(bundledSchemas, { name: 'eventplane' }),
      ],
      cacheMaxAgeS: 31536000,
    })
  })
  after(() => app.close())

  const get = (url: string, headers: Record<string, string> = {}) => app.inject({ method: 'GET', url, headers })

  test('GET /repositories lists the mounted repositories as JSON, or HTML for browsers', async () => {
    const json = await get('/repositories')
    assert.equal(json.statusCode, 200)
    assert.deepEqual(
      json.json().map((e: { name: string }) => e.name),
      ['eventplane', 'primary'],
    )
    const html = await get('/repositories', { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' })
    assert.match(html.headers['content-type'] as string, /text\/html/)
    assert.match(html.body, /<a href="\/repositories\/primary\/">primary\/<\/a>/)
  })

  test('a versioned file is served as YAML with a strong ETag and an immutable Cache-Control', async () => {
    const response = await get('/repositories/primary/jsonschema/test/event/1.0.0.yaml')
    assert.equal(response.statusCode, 200)
    assert.match(response.headers['content-type'] as string, /application\/yaml/)
    assert.equal(parse(response.body).$id, '/test/event/1.0.0')
    assert.match(response.headers['cache-control'] as string, /max-age=31536000, immutable/)
    const etag = response.headers['etag'] as string
    assert.match(etag, /^"[\w-]+"$/)
    const again = await get('/repositories/primary/jsonschema/test/event/1.0.0.yaml', { 'if-none-match': etag })
    assert.equal(again.statusCode, 304)
    assert.equal(again.body, '')
  })

  test('a schema opened in a browser is shown, not downloaded: YAML as text/plain to a browser, the same bytes', async () => {
    const browser = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8'
    for (const path of ['/repositories/primary/jsonschema/test/event/1.0.0.yaml', '/repositories/primary/jsonschema/test/event/1.0.0', '/repositories/primary/jsonschema/test/event/latest']) {
      const shown = await get(path, { accept: browser })
      assert.equal(shown.statusCode, 200)
      assert.equal(shown.headers['content-type'], 'text/plain; charset=utf-8', path)
      assert.equal(shown.headers['x-content-type-options'] ?? 'nosniff', 'nosniff')
      assert.equal(shown.body, (await get(path)).body)
    }
    const json = await get('/repositories/primary/jsonschema/test/event/1.0.0.json', { accept: browser })
    assert.match(json.headers['content-type'] as string, /application\/json/, 'browsers show JSON themselves')
  })

  test('extensionless and latest entries negotiate YAML or JSON by Accept; .json converts', async () => {
    const yaml = await get('/repositories/primary/jsonschema/test/event/1.0.0')
    assert.match(yaml.headers['content-type'] as string, /yaml/)
    const json = await get('/repositories/primary/jsonschema/test/event/1.0.0', { accept: 'application/json' })
    assert.match(json.headers['content-type'] as string, /application\/json/)
    assert.equal(json.json().$id, '/test/event/1.0.0')
    assert.equal(json.headers['vary'], 'Accept')
    const latest = await get('/repositories/primary/jsonschema/mediawiki/revision/create/latest', { accept: 'application/json' })
    assert.equal(latest.json().$id, '/mediawiki/revision/create/2.0.0')
    assert.match(latest.headers['cache-control'] as string, /max-age=60$/)
    const converted = await get('/repositories/primary/jsonschema/test/event/1.0.0.json')
    assert.equal(converted.statusCode, 200)
    assert.equal(converted.json().$id, '/test/event/1.0.0')
    const latestJson = await get('/repositories/primary/jsonschema/fragment/common/latest.json')
    assert.equal(latestJson.json().$id, '/fragment/common/2.0.0')
  })

  test('directory listings are JSON (with hrefs) or HTML', async () => {
    const json = await get('/repositories/primary/jsonschema/test/event/')
    assert.equal(json.statusCode, 200)
    const names = json.json().map((e: { name: string }) => e.name)
    assert.ok(names.includes('1.0.0.yaml') && names.includes('latest') && names.includes('current.yaml'))
    const root = await get('/repositories/primary/jsonschema')
    assert.ok(root.json().some((e: { name: string; type: string; href: string }) => e.name === 'mediawiki' && e.type === 'directory' && e.href === '/repositories/primary/jsonschema/mediawiki/'))
    const html = await get('/repositories/primary/jsonschema/test/', { accept: 'text/html' })
    assert.match(html.body, /href="\/repositories\/primary\/jsonschema\/test\/event\/"/)
    assert.match(html.body, /href="\/#\/schemas"/, 'a folder of titles links to the console')
    const title = await get('/repositories/primary/jsonschema/test/event/', { accept: 'text/html' })
    assert.match(title.body, /href="\/#\/schemas\/primary\/test\/event">Fields, examples and versions in the console/)
  })

  test('every materialized version of the fixture is served and equals the file', async () => {
    const repository = openRepository(fixtureRepo)
    let served = 0
    for (const title of await listTitles(repository)) {
      for (const version of await listVersions(repository, title)) {
        const response = await get(`/repositories/primary/jsonschema/${title}/${version.version}`, { accept: 'application/json' })
        assert.equal(response.statusCode, 200, `${title}/${version.version}`)
        assert.deepEqual(response.json(), await readSchemaFile(repository, version.path))
        served++
      }
    }
    assert.ok(served >= 80)
  })

  test('missing schemas and repositories are a clear 404 problem', async () => {
    const missing = await get('/repositories/primary/jsonschema/test/event/7.0.0')
    assert.equal(missing.statusCode, 404)
    assert.match(missing.headers['content-type'] as string, /application\/problem\+json/)
    assert.equal(missing.json().code, 'EVP_SCHEMA_NOT_FOUND')
    assert.match(missing.json().detail, /test\/event\/7\.0\.0/)
    const noRepo = await get('/repositories/nope/jsonschema/test/event/1.0.0')
    assert.equal(noRepo.statusCode, 404)
    assert.equal(noRepo.json().code, 'EVP_REPOSITORY_NOT_FOUND')
  })

  for (const path of [
    '/repositories/primary/jsonschema/../../../../etc/passwd',
    '/repositories/primary/jsonschema/test/%2e%2e/%2e%2e/%2e%2e/etc/passwd',
    '/repositories/primary/jsonschema/test/%252e%252e/%252e%252e/etc/passwd',
    '/repositories/primary/jsonschema/test/..%2f..%2f..%2fetc%2fpasswd',
    '/repositories/primary/jsonschema/test/%2e%2e%5c%2e%2e%5cetc%5cpasswd',
    '/repositories/primary/jsonschema/test/event/1.0.0.yaml%00.json',
    '/repositories/primary/jsonschema/test/event/escape.yaml',
    '/repositories/primary/jsonschema/test/etcdir/passwd',
  ]) {
    test(`no path outside the repository can be read: ${path}`, async () => {
      const response = await get(path)
      assert.ok([400, 404].includes(response.statusCode), `status ${response.statusCode}`)
      assert.doesNotMatch(response.body, /root:/)
      assert.ok(['EVP_PATH_INVALID', 'EVP_NOT_FOUND', 'EVP_BAD_REQUEST'].includes(response.json().code), response.body)
    })
  }

  test('an oversized or broken file is a clear error, and the service keeps serving the rest', async () => {
    const big = await get('/repositories/primary/jsonschema/test/event/9.9.9.yaml')
    assert.equal(big.statusCode, 500)
    assert.equal(big.json().code, 'EVP_SCHEMA_FILE_TOO_LARGE')
    const broken = await get('/repositories/primary/jsonschema/test/event/8.8.8', { accept: 'application/json' })
    assert.equal(broken.statusCode, 500)
    assert.equal(broken.json().code, 'EVP_SCHEMA_PARSE')
    const fine = await get('/repositories/primary/jsonschema/test/event/1.0.0.yaml')
    assert.equal(fine.statusCode, 200)
  })

  test('the bundled repository serves its schemas', async () => {
    const response = await get('/repositories/eventplane/jsonschema/eventplane/test/event/latest', { accept: 'application/json' })
    assert.equal(response.statusCode, 200)
    assert.equal(response.json().title, 'eventplane/test/event')
  })
})
