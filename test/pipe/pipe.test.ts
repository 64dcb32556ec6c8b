/**
 * `eventplane pipe`: every endpoint scheme as source and destination (Kafka's in
 * test/kafka/pipe.test.ts), resuming from a state file with no gap and no duplicate, filters and
 * transforms, and endpoint URIs refused with EVP_PIPE_URI_INVALID.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { appendFileSync, existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { parseCommandArgs } from '../../src/cli/command.ts'
import { pipeCommand } from '../../src/cli/pipe.ts'
import { parseEndpoint } from '../../src/pipe/index.ts'
import { codeBlocks, repoRoot } from '../helpers.ts'
import { testPlatform, type TestPlatform } from '../intake/helpers.ts'
import { faultyIntake, pipeSandbox, readLines, readState, spawnPipe, testEvents, writeLines } from './helpers.ts'

const { dir, config, run } = pipeSandbox()

test('endpoint URIs: each scheme parses, and a bad one is refused with what to write instead', () => {
  assert.deepEqual(parseEndpoint('embedded://datacenter1.test.event?from=latest', 'source', dir), { scheme: 'embedded', topic: 'datacenter1.test.event', from: { kind: 'latest' } })
  assert.deepEqual(parseEndpoint('kafka://a:9092,b:9093/t?from=2026-01-01T00:00:00Z', 'source', dir), {
    scheme: 'kafka',
    brokers: ['a:9092', 'b:9093'],
    topic: 't',
    from: { kind: 'time', ms: Date.parse('2026-01-01T00:00:00Z') },
  })
  assert.deepEqual(parseEndpoint('out.ndjson', 'destination', dir), { scheme: 'file', path: join(dir, 'out.ndjson'), rotateBytes: 256 * 1024 * 1024, maxLineBytes: 16 * 1024 * 1024 })
  assert.equal((parseEndpoint('file:///tmp/x.ndjson?rotate_bytes=2048', 'destination', dir) as { rotateBytes: number }).rotateBytes, 2048)
  assert.deepEqual(parseEndpoint('-', 'source', dir), { scheme: 'stdin', maxLineBytes: 16 * 1024 * 1024 })
  assert.deepEqual(parseEndpoint('-', 'destination', dir), { scheme: 'stdout' })
  assert.deepEqual(parseEndpoint('https://intake.example/v1/events?batch=50', 'destination', dir), { scheme: 'http', url: 'https://intake.example/v1/events', batch: 50, hasty: false })
  assert.deepEqual(parseEndpoint('sse://127.0.0.1:8192/v2/stream/a,b?since=0&filter=x', 'source', dir), { scheme: 'sse', url: 'http://127.0.0.1:8192/v2/stream/a,b?since=0&filter=x' })
  assert.equal((parseEndpoint('sses://h/v2/stream/a', 'source', dir) as { url: string }).url, 'https://h/v2/stream/a')
  for (const [uri, role] of [
    ['embedded://', 'source'],
    ['embedded://a/b', 'source'],
    ['embedded://t?from=yesterday', 'source'],
    ['embedded://t?form=earliest', 'source'],
    ['kafka://nohost/t', 'source'],
    ['kafka://h:1', 'destination'],
    ['file:///x?rotate_bytes=12', 'destination'],
    ['file://otherhost/x', 'destination'],
    ['http://h/ingest', 'destination'],
    ['http://h/v1/events?batch=0', 'destination'],
    ['http://h/v1/events', 'source'],
    ['sse://h/v2/stream/a', 'destination'],
    ['stdout://', 'source'],
    ['stdin://x', 'source'],
    ['ftp://h/x', 'source'],
    ['mailto:someone', 'source'],
    ['', 'source'],
  ] as const) {
    assert.throws(() => parseEndpoint(uri, role, dir), (e: { code?: string; message?: string }) => e.code === 'EVP_PIPE_URI_INVALID' && /Endpoints:/.test(e.message ?? ''), `${uri} as ${role}`)
  }
})

test('file → embedded (validated) → file: the events come back byte for byte, in order', async () => {
  const lines = testEvents(2500)
  const input = writeLines(join(dir, 'round.ndjson'), lines)
  const a = await run(input, 'embedded://round.trip', '--validate')
  assert.equal(a.code, 0, a.stderr)
  assert.match(a.stderr, /^pipe: 2,500 read, 2,500 written in .*: the source ended$/m)
  const b = await run('embedded://round.trip', join(dir, 'round.out.ndjson'), '--no-follow')
  assert.equal(b.code, 0, b.stderr)
  assert.deepEqual(readLines(join(dir, 'round.out.ndjson')), lines)
  // from=latest starts at the end: nothing to copy.
  const c = await run('embedded://round.trip?from=latest', join(dir, 'none.ndjson'), '--no-follow')
  assert.equal(c.code, 0, c.stderr)
  assert.deepEqual(readLines(join(dir, 'none.ndjson')), [])
})

test('stdin → stdout, as its own process', async () => {
  const lines = testEvents(50)
  const p = spawnPipe(['-', 'stdout://', '--config', config], { input: lines.join('\n') + '\n' })
  assert.equal(await p.exited, 0, p.stderr())
  assert.deepEqual(p.stdout().trimEnd().split('\n'), lines)
  assert.match(p.stderr(), /pipe: 50 read, 50 written/)
  const refused = await run('-', 'stdout://', '--state', join(dir, 'stdin.state'))
  assert.equal(refused.code, 2)
  assert.match(refused.stderr, /stdin cannot be resumed: leave out --state \[EVP_CLI_USAGE\]/)
})

test('into an intake over HTTP (per-event results counted), and out of a streams endpoint over SSE, resuming', async (t) => {
  const platform: TestPlatform = await testPlatform()
  t.after(() => platform.close())
  const base = await platform.app.listen({ host: '127.0.0.1', port: 0 })
  const lines = testEvents(1200)
  lines.splice(7, 0, JSON.stringify({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: 42 }))
  const input = writeLines(join(dir, 'http.ndjson'), lines)
  const sent = await run(input, `${base}/v1/events?batch=100`, '--state', join(dir, 'http.state'))
  assert.equal(sent.code, 0, sent.stderr)
  assert.match(sent.stderr, /refused an event: EVP_EVENT_INVALID '\.test' should be string/)
  assert.match(sent.stderr, /pipe: 1,201 read, 1,200 written, 1 refused/)
  const stored = await platform.events('datacenter1.test.event')
  assert.equal(stored.length, 1200)

  // SSE source: 700 events, then the rest from the saved last event id; each exactly once.
  const sse = `sse://${base.slice('http://'.length)}/v2/stream/test.event?since=0`
  const out = join(dir, 'sse.ndjson')
  const first = await run(sse, out, '--limit', '700', '--state', join(dir, 'sse.state'))
  assert.equal(first.code, 0, first.stderr)
  assert.match(first.stderr, /--limit 700 reached/)
  assert.equal(readLines(out).length, 700)
  const second = await run(sse, out, '--limit', '500', '--state', join(dir, 'sse.state'))
  assert.equal(second.code, 0, second.stderr)
  const ids = readLines(out).map((l) => (JSON.parse(l) as { meta: { id: string } }).meta.id)
  assert.equal(ids.length, 1200)
  assert.equal(new Set(ids).size, 1200, 'no event twice')
  assert.deepEqual(new Set(ids), new Set(stored.map((e) => (e['meta'] as { id: string }).id)), 'no event missed')
})

test('a restarted pipe resumes with no gap and no duplicate: file and log sources, file and log destinations', async () => {
  const lines = testEvents(1000)
  const input = writeLines(join(dir, 'resume.ndjson'), lines)
  const state = join(dir, 'resume.state')
  for (const limit of ['1', '249', '500']) {
    const r = await run(input, 'embedded://resume', '--state', state, '--limit', limit, '--batch', '100')
    assert.equal(r.code, 0, r.stderr)
  }
  assert.equal(readState(state).source['line'], 750)
  const rest = await run(input, 'embedded://resume', '--state', state)
  assert.match(rest.stderr, /pipe: 250 read, 250 written/)
  assert.equal(readState(state).totals['written'], 1000)

  const out = join(dir, 'resume.out.ndjson')
  const logState = join(dir, 'resume-log.state')
  for (const limit of ['333', '333']) assert.equal((await run('embedded://resume', out, '--state', logState, '--limit', limit, '--no-follow')).code, 0)
  assert.deepEqual(readState(logState).source, { topic: 'resume', offsets: { '0': 666 } })
  assert.equal((await run('embedded://resume', out, '--state', logState, '--no-follow')).code, 0)
  assert.deepEqual(readLines(out), lines)

  // Nothing new: a run more copies nothing.
  assert.match((await run('embedded://resume', out, '--state', logState, '--no-follow')).stderr, /pipe: 0 read, 0 written/)
  assert.equal(readLines(out).length, 1000)
})

test('after a crash, what the file destination got past the saved position is cut before going on', async () => {
  const lines = testEvents(300)
  const input = writeLines(join(dir, 'crash.ndjson'), lines)
  const out = join(dir, 'crash.out.ndjson')
  const state = join(dir, 'crash.state')
  assert.equal((await run(input, out, '--state', state, '--limit', '100')).code, 0)
  // As a pipe killed between writing a batch and saving its position leaves it: the events
  // after the position are in the file already, and half a line.
  appendFileSync(out, lines.slice(100, 150).join('\n') + '\n' + lines[150]!.slice(0, 20))
  const resumed = await run(input, out, '--state', state)
  assert.equal(resumed.code, 0, resumed.stderr)
  assert.match(resumed.stderr, /cutting \d+ bytes written after the last saved position/)
  assert.deepEqual(readLines(out), lines)
})

test('a state file is used only by the pipe it belongs to, and a broken one is reported', async () => {
  const input = writeLines(join(dir, 'owner.ndjson'), testEvents(5))
  const state = join(dir, 'owner.state')
  assert.equal((await run(input, join(dir, 'owner.out'), '--state', state)).code, 0)
  const other = await run(input, join(dir, 'other.out'), '--state', state)
  assert.equal(other.code, 1)
  assert.match(other.stderr, /belongs to a pipe with destination .*owner\.out.*\[EVP_PIPE_STATE_INVALID\]/)
  appendFileSync(state, '}}')
  const broken = await run(input, join(dir, 'owner.out'), '--state', state)
  assert.match(broken.stderr, /is not JSON .*fix or delete it \[EVP_PIPE_STATE_INVALID\]/)
  // A replaced input file is not resumed at the old byte offset.
  const fresh = join(dir, 'replaced.ndjson')
  writeLines(fresh, testEvents(5))
  const s2 = join(dir, 'replaced.state')
  assert.equal((await run(fresh, join(dir, 'replaced.out'), '--state', s2, '--limit', '2')).code, 0)
  writeLines(`${fresh}.new`, testEvents(5))
  const { renameSync } = await import('node:fs')
  renameSync(`${fresh}.new`, fresh)
  const replaced = await run(fresh, join(dir, 'replaced.out'), '--state', s2)
  assert.match(replaced.stderr, /is not the file the state was saved for .*\[EVP_PIPE_STATE_INVALID\]/)
})

test('--filter, --set and --drop: only matching events, changed as asked', async () => {
  const input = writeLines(join(dir, 'filter.ndjson'), [
    JSON.stringify({ meta: { domain: 'en.wikipedia.org' }, wiki: 'enwiki', bot: false, http: { client_ip: '192.0.2.1' }, n: 1 }),
    JSON.stringify({ meta: { domain: 'de.wikipedia.org' }, wiki: 'dewiki', bot: false, n: 2 }),
    JSON.stringify({ meta: { domain: 'en.wikipedia.org' }, wiki: 'enwiki', bot: true, n: 3 }),
    JSON.stringify({ wiki: 'enwiki', bot: false, n: 4 }),
  ])
  const out = join(dir, 'filter.out.ndjson')
  const r = await run(input, out, '--filter', 'wiki == "enwiki" && !bot', '--set', 'meta.domain=canary', '--set', 'labels={"a":[1,2]}', '--set', 'n=text', '--drop', 'http', '--drop', 'no.such.field')
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stderr, /4 read, 2 written, 2 filtered/)
  assert.deepEqual(
    readLines(out).map((l) => JSON.parse(l) as unknown),
    [
      { meta: { domain: 'canary' }, wiki: 'enwiki', bot: false, n: 'text', labels: { a: [1, 2] } },
      { wiki: 'enwiki', bot: false, n: 'text', meta: { domain: 'canary' }, labels: { a: [1, 2] } },
    ],
  )
  const bad = await run(input, out, '--filter', 'wiki ==')
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /\[EVP_FILTER_INVALID\]/)
  assert.equal((await run(input, out, '--set', 'novalue')).code, 2)
  assert.equal((await run(input, out, '--drop', 'a..b')).code, 2)
})

test('--validate skips and counts events that do not validate, and says why', async () => {
  const lines = testEvents(3)
  lines.push(JSON.stringify({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: ['not a string'] }))
  lines.push(JSON.stringify({ $schema: '/no/such/schema/1.0.0', meta: { stream: 'x' } }))
  lines.push(JSON.stringify({ meta: { stream: 'x' } }))
  const out = join(dir, 'validate.out.ndjson')
  const r = await run(writeLines(join(dir, 'validate.ndjson'), lines), out, '--validate')
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stderr, /line 4: invalid: '\.test' should be string/)
  assert.match(r.stderr, /line 5: invalid: \$schema \/no\/such\/schema\/1\.0\.0: no schema/)
  assert.match(r.stderr, /line 6: invalid: the event has no \$schema/)
  assert.match(r.stderr, /6 read, 3 written, 3 invalid/)
  assert.deepEqual(readLines(out), lines.slice(0, 3), 'written as read: validation fills no defaults in')
})

test('a file destination is rotated past rotate_bytes, at saved positions, and nothing is lost', async () => {
  const lines = testEvents(400)
  const input = writeLines(join(dir, 'rotate.ndjson'), lines)
  const folder = join(dir, 'rotated')
  const r = await run(input, `file://${folder}/events.ndjson?rotate_bytes=20000`, '--batch', '50', '--state', join(dir, 'rotate.state'))
  assert.equal(r.code, 0, r.stderr)
  const files = readdirSync(folder).sort()
  assert.ok(files.length >= 3, files.join(', '))
  assert.ok(files.every((f) => /^events(\.\d{8}T\d{9}Z)?\.ndjson$/.test(f)), files.join(', '))
  for (const f of files.filter((f) => f !== 'events.ndjson')) assert.ok(statSync(join(folder, f)).size >= 20000)
  // Rotated files sort by name in the order they were written; the current file is last.
  const all = [...files.filter((f) => f !== 'events.ndjson'), 'events.ndjson'].flatMap((f) => readLines(join(folder, f)))
  assert.deepEqual(all, lines)
  assert.equal(existsSync(join(folder, 'events.ndjson')), true)
})

test('every pipe command in docs/pipe.md and the README has endpoints and options that parse', () => {
  const commands = ['docs/pipe.md', 'README.md'].flatMap((file) =>
    codeBlocks(readFileSync(join(repoRoot, file), 'utf8'))
      .filter((b) => b.lang === 'sh')
      .flatMap((b) => b.code.split('\n'))
      .filter((line) => line.startsWith('npx eventplane pipe ')),
  )
  assert.ok(commands.length >= 5, `${commands.length} commands`)
  for (const command of commands) {
    // Words, with '…' quoting as the shell does.
    const words = [...command.slice('npx eventplane pipe '.length).matchAll(/'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2]!)
    const { positionals } = parseCommandArgs(pipeCommand, words)
    assert.equal(positionals.length, 2, command)
    parseEndpoint(positionals[0]!, 'source', dir)
    parseEndpoint(positionals[1]!, 'destination', dir)
  }
})

test('progress on a terminal (totals, events/s, lag), none when stderr is not one', async (t) => {
  const platform = await testPlatform()
  t.after(() => platform.close())
  const base = await platform.app.listen({ host: '127.0.0.1', port: 0 })
  // Slow enough (4 requests of 600 ms) for progress lines, which come once a second.
  const proxy = await faultyIntake(base, () => ({ delayMs: 600 }))
  t.after(() => proxy.close())
  const input = writeLines(join(dir, 'progress.ndjson'), testEvents(400))
  const command = [process.execPath, '--import', 'tsx', 'src/cli/bin.ts', 'pipe', input, proxy.url, '--batch', '100', '--config', config]
  // script(1) runs the pipe on a pseudo-terminal.
  const output = await new Promise<string>((resolve, reject) =>
    execFile('script', ['-qefc', command.map((w) => `'${w}'`).join(' '), '/dev/null'], { cwd: repoRoot, timeout: 60_000 }, (error, stdout) => (error ? reject(error) : resolve(stdout))),
  )
  // eslint-disable-next-line no-control-regex -- the terminal's erase-line sequence is what is tested
  assert.match(output, /\r\x1b\[K\d+ read, \d+ written · \d+ events\/s, lag [\d,]+ bytes/)
  assert.match(output, /pipe: 400 read, 400 written/)
  const plain = await run(input, join(dir, 'progress.out'))
  assert.ok(!plain.stderr.includes('\x1b') && !plain.stderr.includes('·'), plain.stderr)
})
