import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { pino } from 'pino'
import { loadConfig } from '../../src/config/index.ts'
import { startServer } from '../../src/server/index.ts'
import { cli, tempDir } from '../helpers.ts'

/** The bundled config with these roles (as EVENTPLANE_ROLES gives them), on a fresh data folder. */
async function serveRoles(roles: string) {
  const dir = tempDir()
  const { config } = loadConfig({ env: { PORT: '0', EVENTPLANE_DATA_DIR: dir, EVENTPLANE_ROLES: roles } })
  const server = await startServer(config, { logger: pino({ level: 'silent' }) })
  const status = async (path: string, init?: RequestInit) => (await fetch(`${server.url}${path}`, init)).status
  return { server, dir, status }
}

const event = { $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: 'roles' }
const post = { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(event) }

test('--role intake serves POST /v1/events, and neither streams nor schemas', async () => {
  const { server, status } = await serveRoles('intake')
  try {
    assert.equal(await status('/v1/events', post), 201)
    assert.equal(await status('/v2/stream/test.event'), 404)
    assert.equal(await status('/repositories'), 404)
    assert.equal(await status('/v1/stream-configs'), 404)
    assert.equal(await status('/healthz'), 200)
    assert.equal(await status('/readyz'), 200)
    const index = (await (await fetch(server.url)).json()) as { roles: string[]; endpoints: Record<string, string> }
    assert.deepEqual(index.roles, ['intake'])
    assert.equal(index.endpoints['events'], '/v1/events')
    assert.equal(index.endpoints['streams'], undefined)
  } finally {
    await server.close()
  }
})

test('--role schemas serves the repositories and the stream config API, and opens no event log', async () => {
  const { server, dir, status } = await serveRoles('schemas')
  try {
    assert.equal(server.platform.log, undefined)
    assert.equal(existsSync(join(dir, 'events.sqlite')), false, 'no log file was created')
    assert.equal(await status('/repositories'), 200)
    assert.equal(await status('/v1/stream-configs'), 200)
    assert.equal(await status('/v1/events', post), 404)
    assert.equal(await status('/v2/stream/test.event'), 404)
    assert.equal(await status('/readyz'), 200)
  } finally {
    await server.close()
  }
})

test('--role streams,intake serves both on one log: an event posted is streamed', async () => {
  const { server, status } = await serveRoles('streams,intake')
  try {
    assert.equal(await status('/repositories'), 404)
    const response = await fetch(`${server.url}/v2/stream/test.event?since=0`, { headers: { accept: 'application/json' } })
    assert.equal(response.status, 200)
    const reader = response.body!.getReader()
    assert.equal(await status('/v1/events', post), 201)
    // NDJSON; empty lines are keep-alives.
    let text = ''
    while (!/\S\n/.test(text)) text += new TextDecoder().decode((await reader.read()).value)
    assert.equal(JSON.parse(text.split('\n').find((line) => line.trim() !== '')!).test, 'roles')
    await reader.cancel()
  } finally {
    await server.close()
  }
})

test('an unknown role is refused before anything starts, naming the allowed ones', async () => {
  const result = await cli(['serve', '--role', 'ingest', '--port', '0'], { env: { EVENTPLANE_DATA_DIR: tempDir() } })
  assert.notEqual(result.code, 0)
  assert.match(result.stderr, /EVENTPLANE_ROLES|server\.roles/)
  assert.match(result.stderr, /"all", "intake", "streams", "schemas"/)
})
