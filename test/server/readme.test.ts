import assert from 'node:assert/strict'
import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, test } from 'node:test'
import { codeBlocks, repoRoot, tempDir, tsxImport } from '../helpers.ts'

const run = promisify(execFile)

/** The curl lines of the README's shell blocks: the quick start a newcomer copies. */
function readmeCurls(): string[] {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8')
  return codeBlocks(readme)
    .filter((block) => block.lang === 'sh')
    .flatMap((block) => block.code.split('\n'))
    .filter((line) => line.startsWith('curl '))
}

/**
 * The newcomer's path on a fresh clone of this repository's last commit: `npm start` builds
 * from nothing (no dist/) and serves the bundled schemas and stream config. Its node_modules are
 * linked from here: `npm install` is npm's business, and .ci/run runs it on a fresh clone.
 */
let server: { url: string; stop(): Promise<void> }
const clone = join(tempDir(), 'clone')
const dataDir = tempDir()
before(async () => {
  await run('git', ['clone', '-q', repoRoot, clone])
  symlinkSync(join(repoRoot, 'node_modules'), join(clone, 'node_modules'))
  // Its own process group, so that stopping npm stops the server it started.
  const child = spawn('npm', ['start'], { cwd: clone, env: { ...process.env, PORT: '0', EVENTPLANE_DATA_DIR: dataDir }, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const deadline = Date.now() + 120_000
  while (!/listening on (http:\/\/\S+)/.test(output)) {
    if (Date.now() > deadline || child.exitCode !== null) {
      process.kill(-child.pid!, 'SIGKILL')
      throw new Error(`npm start on a fresh clone did not serve:\n${output}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  server = {
    url: /listening on (http:\/\/\S+)/.exec(output)![1]!,
    async stop() {
      process.kill(-child.pid!, 'SIGTERM')
      if (child.exitCode === null) await once(child, 'exit')
    },
  }
})
after(() => server?.stop())

test('on a fresh clone, npm start serves, and every curl command in the README works against it', async () => {
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

test('the addresses the README opens in a browser serve the console, with its scripts', async () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8')
  const quickStart = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('\n## ', readme.indexOf('## Quick start') + 5))
  const addresses = [...new Set([...quickStart.matchAll(/\*\*(http:\/\/localhost:8192\/\S*?)\*\*/g)].map((m) => m[1]!))]
  assert.deepEqual(addresses, ['http://localhost:8192/', 'http://localhost:8192/v2/ui'])
  const browser = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' }
  for (const address of addresses) {
    const response = await fetch(address.replace('http://localhost:8192', server.url), { headers: browser })
    assert.equal(response.status, 200, address)
    assert.match(response.headers.get('content-type') ?? '', /^text\/html/, address)
    const page = await response.text()
    for (const [, asset] of page.matchAll(/(?:src|href)="(\/console\/[^"]+)"/g)) assert.equal((await fetch(`${server.url}${asset}`)).status, 200, asset)
    assert.match(page, /\/console\/console\.js/)
  }
})

test("the quick start's eventplane commands work in the clone against npm start", async () => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8')
  const quickStart = readme.slice(readme.indexOf('## Quick start'), readme.indexOf('\n## ', readme.indexOf('## Quick start') + 5))
  const commands = codeBlocks(quickStart)
    .filter((block) => block.lang === 'sh')
    .flatMap((block) => block.code.split('\n'))
    .filter((line) => /(^|\| )npx eventplane (tail|log|produce|pipe|canary)\b/.test(line))
  assert.ok(commands.length >= 5, commands.join('\n'))
  const port = new URL(server.url).port
  for (const command of commands) {
    // The changes: the test server's port, and `tail`, which follows for ever, stops after one event.
    const adapted = command.replaceAll('8192', port).replace(/npx eventplane tail (.*)$/, 'npx eventplane tail $1 --max 1')
    const { stdout, stderr } = await run('sh', ['-c', `set -e; ${adapted}`], { cwd: clone, timeout: 30_000, env: { ...process.env, PORT: port, EVENTPLANE_DATA_DIR: dataDir } })
    assert.ok(`${stdout}${stderr}`.trim().length > 0, `no output from: ${command}`)
    assert.doesNotMatch(`${stdout}${stderr}`, /EVP_[A-Z_]+/, `an error from: ${command}\n${stdout}${stderr}`)
  }
})

test("the README's configuration example works verbatim: config check passes, serve starts, refused events get error events", async (t) => {
  const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8')
  const section = readme.slice(readme.indexOf('## Configuration'), readme.indexOf('\n## ', readme.indexOf('## Configuration') + 5))
  const blocks = codeBlocks(section)
  const yaml = blocks.find((b) => b.lang === 'yaml')!.code
  const commands = blocks.filter((b) => b.lang === 'sh').flatMap((b) => b.code.split('\n')).filter((l) => l.trim() !== '' && !l.startsWith('#'))
  assert.deepEqual(commands.map((c) => c.split(' ').slice(0, 3).join(' ')), ['cp defaults/streams.yaml streams.yaml', 'npx eventplane config', 'npx eventplane serve'])
  // A folder laid out as the clone is (defaults/ beside the files the example makes).
  const dir = tempDir()
  symlinkSync(join(repoRoot, 'defaults'), join(dir, 'defaults'))
  // The only change: a free port instead of 8192.
  writeFileSync(join(dir, 'eventplane.yaml'), yaml.replace('port: 8192', 'port: 0'))
  const eventplane = [process.execPath, '--import', tsxImport, join(repoRoot, 'src/cli/bin.ts')]
  const [copy, check, serve] = commands.map((c) => c.replace(/\s+#.*$/, ''))
  await run('sh', ['-c', copy!], { cwd: dir })
  const checked = await run(eventplane[0]!, [...eventplane.slice(1), ...check!.split(' ').slice(2)], { cwd: dir })
  assert.match(checked.stdout, /eventplane\.yaml: valid\n/)
  assert.equal(checked.stderr, '', 'no warnings')

  const child = spawn(eventplane[0]!, [...eventplane.slice(1), ...serve!.split(' ').slice(2)], { cwd: dir, env: { ...process.env, EVENTPLANE_LOG_LEVEL: 'info' }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM')
      await once(child, 'exit')
    }
  })
  let output = ''
  child.stdout.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr.on('data', (d: Buffer) => (output += d.toString()))
  const deadline = Date.now() + 60_000
  while (!/listening on (http:\/\/\S+)/.test(output)) {
    assert.ok(Date.now() < deadline && child.exitCode === null, `serve did not start:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  const url = /listening on (http:\/\/\S+)/.exec(output)![1]!
  const answer = await fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: 5 }]) })
  assert.equal(answer.status, 400)
  const metrics = async (): Promise<string[]> => (await (await fetch(`${url}/metrics`)).text()).match(/eventplane_intake_error_events_total\{outcome="(\w+)"\} (\d+)/g) ?? []
  const deadlineWritten = Date.now() + 10_000
  while (!(await metrics()).includes('eventplane_intake_error_events_total{outcome="written"} 1')) {
    assert.ok(Date.now() < deadlineWritten, `no error event written: ${(await metrics()).join(', ')}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  assert.doesNotMatch(output, /"level":50/, 'no error in the log')
})
