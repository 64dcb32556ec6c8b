/**
 * `eventplane pipe` under bad input and faults: malformed lines (skipped and counted, or
 * --strict), a destination that cannot be reached or fails for a while, SIGINT in the middle of
 * a batch, and a full disk under a file destination. In each, no event the source gave is lost
 * or written twice once the pipe has been run again.
 */
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { tempDir } from '../helpers.ts'
import { testPlatform } from '../intake/helpers.ts'
import { faultyIntake, pipeSandbox, readLines, readState, spawnPipe, testEvents, writeLines } from './helpers.ts'

const { dir, config, run } = pipeSandbox()

test('malformed lines are skipped and counted; --strict stops at the first with its line number, and resumes there', async () => {
  const good = testEvents(6)
  const long = JSON.stringify({ pad: 'x'.repeat(3000) })
  const input = writeLines(join(dir, 'malformed.ndjson'), [good[0]!, good[1]!, '{"half": ', '', '[1, 2]', '   ', 'null', good[2]!, long, good[3]!, '\u00ff\u00fe', good[4]!, good[5]!])
  appendFileSync(input, Buffer.from([0x7b, 0xff, 0xfe, 0x7d, 0x0a]))
  const source = `file://${input}?max_line_bytes=2048`
  const out = join(dir, 'malformed.out.ndjson')
  const skipped = await run(source, out)
  assert.equal(skipped.code, 0, skipped.stderr)
  assert.match(skipped.stderr, /line 3: malformed: not JSON/)
  assert.match(skipped.stderr, /line 5: malformed: not a JSON object, but an array/)
  assert.match(skipped.stderr, /line 9: malformed: 3010 bytes, over max_line_bytes 2048/)
  assert.match(skipped.stderr, /line 14: malformed: not valid UTF-8/)
  // Blank lines are no events: neither read nor malformed.
  assert.match(skipped.stderr, /pipe: 12 read, 6 written, 6 malformed/)
  assert.deepEqual(readLines(out), good)

  const strictOut = join(dir, 'strict.out.ndjson')
  const state = join(dir, 'strict.state')
  const strict = await run(source, strictOut, '--strict', '--state', state)
  assert.equal(strict.code, 1)
  assert.match(strict.stderr, /line 3: not JSON: .*--strict stops here; the state points at this event\) \[EVP_PIPE_LINE_MALFORMED\]/)
  assert.deepEqual(readLines(strictOut), good.slice(0, 2), 'the events before the bad line are written')
  assert.equal(readState(state).source['line'], 2)
  // Fixed by skipping: a run without --strict goes on from line 3.
  const rest = await run(source, strictOut, '--state', state)
  assert.equal(rest.code, 0, rest.stderr)
  assert.deepEqual(readLines(strictOut), good)
})

test('a byte order mark at the start of a file is not part of the first event', async () => {
  const lines = testEvents(2)
  const input = join(dir, 'bom.ndjson')
  writeFileSync(input, `\ufeff${lines.join('\n')}\n`)
  const r = await run(input, join(dir, 'bom.out.ndjson'))
  assert.match(r.stderr, /pipe: 2 read, 2 written in/)
  assert.deepEqual(readLines(join(dir, 'bom.out.ndjson')), lines)
})

test('an unreachable destination: bounded retries with backoff, then exit 1 with the position not moved', async () => {
  const port = await new Promise<number>((resolve) => {
    const s = createServer()
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as AddressInfo).port
      s.close(() => resolve(p))
    })
  })
  const input = writeLines(join(dir, 'unreachable.ndjson'), testEvents(30))
  const state = join(dir, 'unreachable.state')
  const started = Date.now()
  const r = await run(input, `http://127.0.0.1:${port}/v1/events`, '--retries', '2', '--state', state, '--batch', '10')
  assert.equal(r.code, 1)
  assert.match(r.stderr, /trying 10 events again in \d\.\d s/)
  assert.match(r.stderr, /10 events not written after 3 attempts \(last: no answer: fetch failed\); the state points at the first of them \[EVP_PIPE_DESTINATION_FAILED\]/)
  assert.ok(Date.now() - started >= 500, 'it waited between attempts')
  assert.deepEqual(readState(state).source['offset'], 0, 'nothing acknowledged, nothing skipped')
})

test('an intake that fails for a while (503): the events are sent again and each arrives once', async (t) => {
  const platform = await testPlatform()
  t.after(() => platform.close())
  const base = await platform.app.listen({ host: '127.0.0.1', port: 0 })
  const proxy = await faultyIntake(`${base}`.replace(/\/$/, ''), (n) => (n === 2 || n === 3 ? 'fail' : 'pass'))
  t.after(() => proxy.close())
  const lines = testEvents(50)
  const r = await run(writeLines(join(dir, 'flaky.ndjson'), lines), proxy.url, '--batch', '20')
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stderr, /HTTP 503; trying 20 events again/)
  assert.match(r.stderr, /pipe: 50 read, 50 written, 2 retries/)
  const ids = (await platform.events('datacenter1.test.event')).map((e) => (e['meta'] as { id: string }).id)
  assert.deepEqual(ids.sort(), lines.map((l) => (JSON.parse(l) as { meta: { id: string } }).meta.id).sort())
})

test('SIGINT in the middle of a batch: the batch in hand is written, the position saved, and a restart finishes the rest', async (t) => {
  const platform = await testPlatform()
  t.after(() => platform.close())
  const base = await platform.app.listen({ host: '127.0.0.1', port: 0 })
  const hooks: { interrupt?: () => void } = {}
  const proxy = await faultyIntake(base, (n) => {
    if (n === 2) hooks.interrupt?.()
    return { delayMs: n === 2 ? 1500 : 0 }
  })
  t.after(() => proxy.close())
  const lines = testEvents(100)
  const input = writeLines(join(dir, 'sigint.ndjson'), lines)
  const state = join(dir, 'sigint.state')
  const p = spawnPipe([input, proxy.url, '--batch', '25', '--state', state, '--config', config])
  hooks.interrupt = () => p.child.kill('SIGINT')
  assert.equal(await p.exited, 0, p.stderr())
  assert.match(p.stderr(), /stopping after the batch in hand/)
  assert.match(p.stderr(), /pipe: 50 read, 50 written .*stopped by a signal; position saved/)
  assert.equal(proxy.requests(), 2)
  assert.equal(readState(state).source['line'], 50)
  assert.equal((await platform.events('datacenter1.test.event')).length, 50)

  const rest = await run(input, proxy.url, '--batch', '25', '--state', state)
  assert.equal(rest.code, 0, rest.stderr)
  const ids = (await platform.events('datacenter1.test.event')).map((e) => (e['meta'] as { id: string }).id)
  assert.deepEqual(ids.sort(), lines.map((l) => (JSON.parse(l) as { meta: { id: string } }).meta.id).sort())
})

/** A folder on a tmpfs of `size` (root can mount one), or undefined. */
function smallDisk(size: string): { path: string; grow(size: string): void; unmount(): void } | undefined {
  const path = join(tempDir(), 'disk')
  mkdirSync(path)
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', path], { stdio: 'ignore' }).status !== 0) return undefined
  return {
    path,
    grow: (to) => execFileSync('mount', ['-o', `remount,size=${to}`, path]),
    unmount: () => spawnSync('umount', [path], { stdio: 'ignore' }),
  }
}

test('a full disk under a file destination: no partial line, the position stays at what the file holds, and the rest follows once there is room', async (t) => {
  const lines = testEvents(600)
  const input = writeLines(join(dir, 'disk.ndjson'), lines)
  const disk = smallDisk('64k')
  if (disk === undefined) {
    // Not root: /dev/full answers every write with ENOSPC, as a full disk does.
    t.diagnostic('mounting a tmpfs needs root: testing with /dev/full instead')
    const r = await run(input, '/dev/full', '--retries', '1')
    assert.equal(r.code, 1)
    assert.match(r.stderr, /writing to \/dev\/full failed: ENOSPC \(no space left on the device\)/)
    return
  }
  t.after(() => disk.unmount())
  const out = join(disk.path, 'events.ndjson')
  const state = join(dir, 'disk.state')
  const full = await run(input, out, '--retries', '1', '--batch', '50', '--state', state)
  assert.equal(full.code, 1)
  assert.match(full.stderr, /ENOSPC \(no space left on the device\).*\[EVP_PIPE_DESTINATION_FAILED\]/s)
  const written = readFileSync(out, 'utf8')
  assert.ok(written.endsWith('\n'), 'no half-written line')
  const kept = readLines(out)
  assert.ok(kept.length > 0 && kept.length < 600 && kept.length % 50 === 0, `${kept.length} lines`)
  assert.deepEqual(kept, lines.slice(0, kept.length))
  assert.equal(readState(state).source['line'], kept.length, 'the position is what the file holds')

  disk.grow('1m')
  const rest = await run(input, out, '--state', state)
  assert.equal(rest.code, 0, rest.stderr)
  assert.deepEqual(readLines(out), lines)
  writeFileSync(join(dir, 'disk.done'), '')
})
