import assert from 'node:assert/strict'
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { EventplaneError } from '../../src/core/errors.ts'
import { createSchemaSource, dereference, materializeSchema } from '../../src/schemas/index.ts'
import { tempDir } from '../helpers.ts'

function write(root: string, path: string, text: string): void {
  const file = join(root, path)
  mkdirSync(join(file, '..'), { recursive: true })
  writeFileSync(file, text)
}

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<EventplaneError> {
  try {
    await promise
  } catch (error) {
    assert.ok(error instanceof EventplaneError, `expected an EventplaneError, got ${String(error)}`)
    assert.equal(error.code, code, error.message)
    return error
  }
  assert.fail(`expected ${code}, but it resolved`)
}

function listen(handler: Parameters<typeof createServer>[1]): Promise<{ server: Server; url: string }> {
  const server = createServer(handler)
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` })),
  )
}

describe('schema source and $ref inlining', () => {
  const local = tempDir()
  write(local, 'fragment/base/1.0.0.yaml', 'title: fragment/base\n$id: /fragment/base/1.0.0\ntype: object\nproperties:\n  a: {type: string}\n')
  write(local, 'fragment/base/1.0.0', '1.0.0.yaml')
  write(local, 'broken/1.0.0.yaml', 'title: broken\nproperties: [unclosed\n')
  write(local, 'big/1.0.0.yaml', `title: big\ndescription: "${'x'.repeat(5000)}"\n`)
  write(local, 'cycle/a/1.0.0.yaml', 'title: cycle/a\nallOf:\n  - $ref: /cycle/b/1.0.0\n')
  write(local, 'cycle/b/1.0.0.yaml', 'title: cycle/b\nallOf:\n  - $ref: /cycle/a/1.0.0\n')

  let remote: { server: Server; url: string }
  let slow: { server: Server; url: string }
  const hanging = new Set<ServerResponse>()
  before(async () => {
    remote = await listen((req, res) => {
      if (req.url === '/schemas/remote/only/1.0.0') {
        res.writeHead(200, { 'content-type': 'application/yaml' }).end('title: remote/only\n$id: /remote/only/1.0.0\ntype: string\n')
      } else if (req.url === '/schemas/fails/1.0.0') {
        res.writeHead(500).end('oops')
      } else res.writeHead(404).end()
    })
    slow = await listen((_req, res) => {
      hanging.add(res) // never answers
    })
  })
  after(() => {
    for (const res of hanging) res.destroy()
    remote.server.close()
    slow.server.close()
  })

  test('resolves extensionless pointer entries and follows base URIs in order', async () => {
    const source = createSchemaSource({ baseUris: [local, `${remote.url}/schemas`] })
    assert.equal((await source.get('/fragment/base/1.0.0')).schema['$id'], '/fragment/base/1.0.0')
    const fromRemote = await source.get('/remote/only/1.0.0#/type')
    assert.equal(fromRemote.schema['$id'], '/remote/only/1.0.0')
    assert.equal(fromRemote.location, `${remote.url}/schemas/remote/only/1.0.0`)
  })

  test('a $ref to a missing schema is EVP_SCHEMA_REF_NOT_FOUND', async () => {
    const source = createSchemaSource({ baseUris: [local] })
    const error = await rejectsWith(dereference({ allOf: [{ $ref: '/nope/1.0.0#' }] }, { source }), 'EVP_SCHEMA_REF_NOT_FOUND')
    assert.match(error.message, /\/nope\/1\.0\.0/)
  })

  test('a $ref to a missing pointer inside an existing schema is EVP_SCHEMA_REF_NOT_FOUND', async () => {
    const source = createSchemaSource({ baseUris: [local] })
    await rejectsWith(dereference({ $ref: '/fragment/base/1.0.0#/properties/zzz' }, { source }), 'EVP_SCHEMA_REF_NOT_FOUND')
  })

  test('cyclic $refs across files and inside one document are EVP_SCHEMA_REF_CYCLE', async () => {
    const source = createSchemaSource({ baseUris: [local] })
    const error = await rejectsWith(dereference({ $ref: '/cycle/a/1.0.0' }, { source }), 'EVP_SCHEMA_REF_CYCLE')
    assert.ok(Array.isArray(error.details?.['cycle']))
    const local2 = { definitions: { a: { $ref: '#/definitions/b' }, b: { $ref: '#/definitions/a' } }, properties: { x: { $ref: '#/definitions/a' } } }
    await rejectsWith(dereference(local2, { source }), 'EVP_SCHEMA_REF_CYCLE')
  })

  test('a $ref that is neither a schema URI nor a pointer is EVP_SCHEMA_REF_INVALID', async () => {
    const source = createSchemaSource({ baseUris: [local] })
    await rejectsWith(dereference({ $ref: 'http://169.254.169.254/latest/meta-data' }, { source }), 'EVP_SCHEMA_REF_INVALID')
    await rejectsWith(source.get('file:///etc/passwd'), 'EVP_SCHEMA_REF_INVALID')
  })

  test('".." and other escapes in a schema URI are EVP_PATH_INVALID', async () => {
    const source = createSchemaSource({ baseUris: [local] })
    await rejectsWith(source.get('/../../etc/passwd'), 'EVP_PATH_INVALID')
    await rejectsWith(source.get('/fragment/base/%2e%2e/1.0.0'), 'EVP_PATH_INVALID')
  })

  test('malformed YAML is EVP_SCHEMA_PARSE with the line', async () => {
    const source = createSchemaSource({ baseUris: [local] })
    const error = await rejectsWith(source.get('/broken/1.0.0'), 'EVP_SCHEMA_PARSE')
    assert.equal(typeof error.details?.['line'], 'number')
    assert.match(error.message, /broken\/1\.0\.0\.yaml:\d+:\d+: /)
  })

  test('duplicate keys and alias bombs are EVP_SCHEMA_PARSE', async () => {
    write(local, 'dup/1.0.0.yaml', 'title: dup\ntype: object\ntype: string\n')
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x, x]']
    for (let i = 1; i < 9; i++) bomb.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(10).fill(`*${String.fromCharCode(96 + i)}`).join(', ')}]`)
    write(local, 'bomb/1.0.0.yaml', `title: bomb\n${bomb.join('\n')}\n`)
    const source = createSchemaSource({ baseUris: [local] })
    const duplicate = await rejectsWith(source.get('/dup/1.0.0'), 'EVP_SCHEMA_PARSE')
    assert.equal(duplicate.details?.['line'], 3)
    const started = Date.now()
    const expanded = await rejectsWith(source.get('/bomb/1.0.0'), 'EVP_SCHEMA_PARSE')
    assert.match(expanded.message, /aliases expand/)
    assert.ok(Date.now() - started < 2000)
  })

  test('an oversized schema file is EVP_SCHEMA_FILE_TOO_LARGE', async () => {
    const source = createSchemaSource({ baseUris: [local], maxBytes: 4096 })
    await rejectsWith(source.get('/big/1.0.0'), 'EVP_SCHEMA_FILE_TOO_LARGE')
  })

  test('a remote base that is down is EVP_SCHEMA_REMOTE_UNAVAILABLE, and retryable', async () => {
    const down = await listen(() => {})
    const url = down.url
    await new Promise((resolve) => down.server.close(resolve))
    const source = createSchemaSource({ baseUris: [url] })
    const error = await rejectsWith(source.get('/any/1.0.0'), 'EVP_SCHEMA_REMOTE_UNAVAILABLE')
    assert.equal(error.canRetry, true)
    const failing = createSchemaSource({ baseUris: [`${remote.url}/schemas`] })
    await rejectsWith(failing.get('/fails/1.0.0'), 'EVP_SCHEMA_REMOTE_UNAVAILABLE')
  })

  test('a slow remote base times out with EVP_SCHEMA_REMOTE_TIMEOUT', async () => {
    const source = createSchemaSource({ baseUris: [slow.url], timeoutMs: 200 })
    const started = Date.now()
    await rejectsWith(source.get('/any/1.0.0'), 'EVP_SCHEMA_REMOTE_TIMEOUT')
    assert.ok(Date.now() - started < 3000, 'gave up within the timeout')
  })

  test('a down base earlier in the list does not hide a schema found later', async () => {
    const source = createSchemaSource({ baseUris: [slow.url, local], timeoutMs: 100 })
    assert.equal((await source.get('/fragment/base/1.0.0')).schema['title'], 'fragment/base')
  })

  test('sibling keys override the referenced schema; examples refs resolve', async () => {
    const source = createSchemaSource({ baseUris: [local] })
    const schema = {
      $id: '/x/1.0.0',
      properties: { base: { $ref: '/fragment/base/1.0.0', description: 'mine' } },
      examples: [{ $schema: { $ref: '#/$id' } }],
    }
    const out = await dereference(schema, { source })
    assert.deepEqual(out, {
      $id: '/x/1.0.0',
      properties: {
        base: { description: 'mine', title: 'fragment/base', $id: '/fragment/base/1.0.0', type: 'object', properties: { a: { type: 'string' } } },
      },
      examples: [{ $schema: '/x/1.0.0' }],
    })
  })

  test('materializing merges allOf, keeps only the root examples and adds numeric bounds', async () => {
    const source = createSchemaSource({ baseUris: [local] })
    write(local, 'fragment/withex/1.0.0.yaml', 'title: f\nrequired: [a]\nproperties:\n  a: {type: integer}\nexamples:\n  - {a: 1}\n')
    const { schema } = await materializeSchema(
      { title: 't', required: ['b'], allOf: [{ $ref: '/fragment/withex/1.0.0' }, { properties: { b: { type: 'number', minimum: 0 } } }], examples: [{ a: 1, b: 2 }] },
      { source },
    )
    assert.deepEqual(schema, {
      title: 't',
      required: ['a', 'b'],
      properties: {
        a: { type: 'integer', minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER },
        b: { type: 'number', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
      },
      examples: [{ a: 1, b: 2 }],
    })
  })
})
