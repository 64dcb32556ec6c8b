import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { loadConfig, bundledConfigPath } from '../../src/config/index.ts'
import { EventplaneError } from '../../src/core/errors.ts'
import { cli, tempDir } from '../helpers.ts'

function configFile(text: string): string {
  const file = join(tempDir(), 'eventplane.yaml')
  writeFileSync(file, text)
  return file
}

function failure(fn: () => unknown): EventplaneError {
  try {
    fn()
  } catch (error) {
    assert.ok(error instanceof EventplaneError)
    return error
  }
  assert.fail('expected an error')
}

test('with no config the bundled defaults listen on 127.0.0.1:8192', () => {
  const { config, file } = loadConfig({ env: {} })
  assert.equal(file, bundledConfigPath)
  assert.equal(config.server.host, '127.0.0.1')
  assert.equal(config.server.port, 8192)
  assert.equal(config.schemas.repositories[0]?.name, 'eventplane')
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.server))
})

test('--config wins over EVENTPLANE_CONFIG, and relative paths resolve against the file', () => {
  const file = configFile('schemas:\n  repositories:\n    - {name: x, path: ./repo}\nstream_config:\n  source: ./streams.yaml\n')
  const other = configFile('server: {port: 1}\n')
  const { config } = loadConfig({ path: file, env: { EVENTPLANE_CONFIG: other } })
  assert.equal(config.schemas.repositories[0]?.path, join(file, '..', 'repo'))
  assert.equal(config.stream_config.source, join(file, '..', 'streams.yaml'))
  assert.equal(loadConfig({ env: { EVENTPLANE_CONFIG: other } }).config.server.port, 1)
})

test('PORT, HOST and EVENTPLANE_* override the file', () => {
  const file = configFile('server: {port: 9000, host: 0.0.0.0}\n')
  const { config } = loadConfig({ path: file, env: { PORT: '9100', HOST: '::1', EVENTPLANE_LOG_LEVEL: 'warn', EVENTPLANE_DATA_DIR: 'd' }, cwd: '/srv' })
  assert.equal(config.server.port, 9100)
  assert.equal(config.server.host, '::1')
  assert.equal(config.log.level, 'warn')
  assert.equal(config.data_dir, '/srv/d')
})

test('an invalid value names the file, the line and the key', () => {
  const file = configFile('server:\n  host: 127.0.0.1\n  port: 70000\n')
  const error = failure(() => loadConfig({ path: file, env: {} }))
  assert.equal(error.code, 'EVP_CONFIG_INVALID')
  assert.equal(error.details?.['line'], 3)
  assert.equal(error.details?.['key'], 'server.port')
  assert.ok(error.message.startsWith(`${file}:3:`), error.message)
})

test('an unknown key is an error naming it', () => {
  const file = configFile('server:\n  prot: 1\n')
  const error = failure(() => loadConfig({ path: file, env: {} }))
  assert.equal(error.code, 'EVP_CONFIG_INVALID')
  assert.equal(error.details?.['key'], 'server.prot')
  assert.match(error.message, /server\.prot is not a known key/)
})

test('malformed YAML is EVP_CONFIG_PARSE with the line', () => {
  const file = configFile('server:\n  port: 1\n  port: 2\n')
  const error = failure(() => loadConfig({ path: file, env: {} }))
  assert.equal(error.code, 'EVP_CONFIG_PARSE')
  assert.equal(error.details?.['line'], 3)
})

test('a missing file is EVP_CONFIG_NOT_FOUND; a bad env value names the variable', () => {
  assert.equal(failure(() => loadConfig({ path: '/nonexistent/eventplane.yaml', env: {} })).code, 'EVP_CONFIG_NOT_FOUND')
  const error = failure(() => loadConfig({ env: { PORT: 'eighty' } }))
  assert.equal(error.code, 'EVP_CONFIG_INVALID')
  assert.match(error.message, /PORT/)
  const range = failure(() => loadConfig({ env: { PORT: '99999' } }))
  assert.match(range.message, /PORT \(server\.port\)/)
})

test('eventplane config check prints the effective config, or the error and exit code 1', async () => {
  const ok = await cli(['config', 'check'])
  assert.equal(ok.code, 0)
  assert.equal(JSON.parse(ok.stdout.split('\n').slice(1).join('\n')).server.port, 8192)
  const bad = await cli(['config', 'check', '--config', configFile('log: {level: loud}\n')])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /log\.level must be one of .*\[EVP_CONFIG_INVALID\]/)
})
