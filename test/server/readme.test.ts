import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, test } from 'node:test'
import { pino } from 'pino'
import { loadConfig } from '../../src/config/index.ts'
import { startServer, type RunningServer } from '../../src/server/index.ts'
import { codeBlocks, repoRoot, tempDir } from '../helpers.ts'

const run = promisify(execFile)

/** The curl lines of the README's shell blocks: the quick start a newcomer copies. */
function readmeCurls(): string[] {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8')
  return codeBlocks(readme)
    .filter((block) => block.lang === 'sh')
    .flatMap((block) => block.code.split('\n'))
    .filter((line) => line.startsWith('curl '))
}

let server: RunningServer
before(async () => {
  const { config } = loadConfig({ env: { PORT: '0', EVENTPLANE_DATA_DIR: tempDir() } })
  server = await startServer(config, { logger: pino({ level: 'silent' }) })
})
after(() => server.close())

test('every curl command in the README works against the bundled server', async () => {
  const commands = readmeCurls()
  assert.ok(commands.length >= 8, `found ${commands.length} curl commands`)
  const port = new URL(server.url).port
  for (const command of commands) {
    // The only change: the port the test server got instead of 8192.
    const adapted = command.replaceAll('localhost:8192', `127.0.0.1:${port}`)
    const { stdout } = await run('sh', ['-c', `set -e; ${adapted}`], { timeout: 10_000 })
    assert.ok(stdout.trim().length > 0, `no output from: ${command}`)
    // A problem document means the command failed; per-event results (207/400 bodies) are examples.
    assert.doesNotMatch(stdout, /"type":"urn:eventplane:error:/, `error from: ${command}\n${stdout}`)
  }
})
