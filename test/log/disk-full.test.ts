import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, statfsSync, unlinkSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import Database from 'better-sqlite3'
import { stringify } from 'yaml'
import { openSqliteLog } from '../../src/log/index.ts'
import { listen } from '../streams/helpers.ts'
import { bundledSchemas, repoRoot, spawnServer, tempDir } from '../helpers.ts'

// A real full disk: the server runs in a user and mount namespace of its own, its data_dir on
// a 16 MiB tmpfs mounted there; this process reaches that tmpfs through /proc/<pid>/root and
// fills it with a ballast file until ENOSPC, then deletes the ballast ("space returns").

const tmpfsBytes = 16 << 20
const topic = 'datacenter1.test.event'
/** The code every refused event must carry, and what the answer must say with it. */
const fullCode = 'EVP_LOG_FULL'

/** Why this machine cannot make a tmpfs in a user namespace, or undefined when it can. */
function namespacesMissing(): string | undefined {
  const probe = tempDir()
  const run = spawnSync('unshare', ['-rm', 'sh', '-c', 'mount -t tmpfs -o size=1m tmpfs "$1"', 'sh', probe], { encoding: 'utf8', timeout: 10_000 })
  if (run.error === undefined && run.status === 0) return undefined
  return (
    'this test needs `unshare -rm` (util-linux) to make a user and mount namespace and mount a tmpfs in it: ' +
    'user namespaces enabled (sysctl user.max_user_namespaces > 0, and kernel.unprivileged_userns_clone=1 where that exists; ' +
    'in a container, a seccomp/AppArmor profile that allows unshare and mount). It got: ' +
    (run.error?.message ?? `exit ${run.status ?? run.signal}: ${run.stderr.trim()}`)
  )
}

/** Writes `path` until the file system has no byte left; returns how many bytes it wrote. */
function fillUp(path: string): number {
  const fd = openSync(path, 'w')
  let written = 0
  try {
    // Large chunks first, then smaller ones, so that the last partly used page is filled too.
    for (const size of [1 << 20, 64 << 10, 4 << 10, 512, 1]) {
      const chunk = Buffer.alloc(size, 0x61)
      for (;;) {
        try {
          const n = writeSync(fd, chunk)
          written += n
          if (n < size) break
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOSPC') break
          throw error
        }
      }
    }
  } finally {
    closeSync(fd)
  }
  return written
}

/** The first truthy value of `check`, polled; past the timeout, an error naming what and why. */
async function waitFor<T>(what: string, timeoutMs: number, check: () => T | undefined | false | Promise<T | undefined | false>, explain = () => ''): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await check()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${explain()}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

interface Answer {
  status: number
  retryAfter: string | null
  codes: string[]
  retryable: boolean
  startedAt: number
  endedAt: number
}

test('disk full under load: 503 EVP_LOG_FULL with Retry-After, nothing acknowledged lost, 201 again once space returns', async (t) => {
  const missing = namespacesMissing()
  if (missing !== undefined) assert.fail(missing)

  const dir = tempDir()
  const disk = join(dir, 'disk')
  mkdirSync(disk)
  const config = join(dir, 'eventplane.yaml')
  writeFileSync(
    config,
    stringify({
      schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }] },
      stream_config: { source: join(repoRoot, 'defaults/streams.yaml'), watch: false },
      data_dir: join(disk, 'data'),
      intake: { error_stream: null },
      streams: { max_connections_per_ip: 50 },
    }),
  )
  const { child, url, output } = await spawnServer(['--config', config], { EVENTPLANE_LOG_LEVEL: 'warn' }, {
    // `exec` keeps the pid: child.pid is the server, and /proc/<pid>/root is its view of the files.
    wrap: (command) => ['unshare', '-rm', 'sh', '-c', `mount -t tmpfs -o size=${tmpfsBytes} tmpfs "$1" && shift && exec "$@"`, 'sh', disk, ...command],
  })
  const exited = once(child, 'exit')
  const onDisk = `/proc/${child.pid}/root${disk}`
  const logFile = join(onDisk, 'data', 'events.sqlite')
  const ballast = join(onDisk, 'ballast')
  try {
    assert.ok(existsSync(logFile), `the server's log file is not visible at ${logFile}`)
    const fs = statfsSync(onDisk)
    assert.ok(fs.blocks * fs.bsize <= tmpfsBytes, `${onDisk} is not the server's ${tmpfsBytes}-byte tmpfs (${fs.blocks * fs.bsize} bytes)`)

    // A live reader from the start: it must see every acknowledged event, through the outage.
    const live = listen(`${url}/v2/stream/test.event`)
    await live.opened

    const answers: Answer[] = []
    const acknowledged = new Set<string>()
    const refused = new Set<string>()
    const strange: string[] = []
    let stop = false
    const producer = async (worker: number) => {
      for (let n = 0; !stop; n++) {
        const ids = [0, 1, 2].map((i) => `w${worker}-${n}-${i}`)
        const body = JSON.stringify(ids.map((id) => ({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event', id } })))
        const startedAt = performance.now()
        let response: Response
        let text: string
        try {
          response = await fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(10_000) })
          text = await response.text()
        } catch (error) {
          strange.push(`no answer: ${(error as Error).message}`)
          return
        }
        const answer: Answer = { status: response.status, retryAfter: response.headers.get('retry-after'), codes: [], retryable: true, startedAt, endedAt: performance.now() }
        if (response.status === 201) {
          ids.forEach((id) => acknowledged.add(id))
        } else {
          ids.forEach((id) => refused.add(id))
          let parsed: { invalid?: unknown[]; error?: Array<{ context?: { code?: string; canRetry?: boolean; message?: string } }> } = {}
          try {
            parsed = JSON.parse(text) as typeof parsed
          } catch {
            // Not an intake answer: reported below, as no event is listed.
          }
          for (const item of parsed.error ?? []) {
            answer.codes.push(item.context?.code ?? 'none')
            if (item.context?.canRetry !== true) answer.retryable = false
            // The issue asks for a message that says so, besides the code that clients branch on.
            if (item.context?.code === fullCode && !/disk is full/.test(item.context.message ?? '')) strange.push(`a message that does not say the disk is full: ${item.context.message}`)
          }
          if ((parsed.invalid ?? []).length > 0 || answer.codes.length !== ids.length) strange.push(`${response.status}: ${text.slice(0, 300)}`)
        }
        answers.push(answer)
      }
    }
    const producers = Array.from({ length: 8 }, (_, i) => producer(i))
    const until = <T>(what: string, timeoutMs: number, check: () => T | undefined | false | Promise<T | undefined | false>) =>
      waitFor(what, timeoutMs, check, () => {
        const exit = child.exitCode === null && child.signalCode === null ? '' : `; the server exited (${child.exitCode ?? child.signalCode}):\n${output().slice(-2000)}`
        return `${strange.length > 0 ? `; ${strange.slice(0, 3).join('; ')}` : ''}${exit}`
      })
    const readyz = async () => {
      const response = await fetch(`${url}/readyz`)
      return { status: response.status, body: (await response.json()) as { checks: Record<string, boolean>; reason?: string } }
    }

    try {
      // Before: the disk has room.
      await until('300 events acknowledged before the disk fills', 15_000, () => acknowledged.size >= 300)
      assert.equal((await readyz()).status, 200)

      // The disk fills up.
      const ballastBytes = fillUp(ballast)
      const filledAt = performance.now()
      const ackedBeforeFull = acknowledged.size
      const refusedAfter = () => answers.filter((a) => a.status !== 201 && a.startedAt > filledAt).length
      await until('50 refused requests after the disk filled up', 10_000, () => refusedAfter() >= 50)
      const notReady = await until('/readyz to say the disk is full', 5_000, async () => {
        const r = await readyz()
        return r.status === 503 && r.body.checks.event_log_writable === false && (r.body.reason ?? '').includes(fullCode) ? r : undefined
      })
      // Readers still work on a full disk: a new client replays the stream from its start.
      const replay = listen(`${url}/v2/stream/test.event`, JSON.stringify([{ topic, partition: 0, offset: 0 }]))
      await until(`a replay from offset 0 during the outage to deliver ${ackedBeforeFull} events`, 5_000, () => replay.received.length >= ackedBeforeFull)
      replay.close()
      // Long enough in the full state for several checkpoints (every 250 ms) to fail as well.
      await new Promise((resolve) => setTimeout(resolve, 1_000))
      assert.equal(child.exitCode, null, 'the server is still running on a full disk')

      // Space returns.
      unlinkSync(ballast)
      const freedAt = performance.now()
      const [firstAfter, readyMs] = await Promise.all([
        until('a 201 for a request sent after space returned', 10_000, () => answers.find((a) => a.status === 201 && a.startedAt > freedAt)),
        until('/readyz to be ready again after space returned', 10_000, async () => (await readyz()).status === 200 && performance.now() - freedAt),
      ])
      const recoveredMs = firstAfter.endedAt - freedAt
      const ackedAtRecovery = acknowledged.size
      await until('300 more events acknowledged after space returned', 10_000, () => acknowledged.size >= ackedAtRecovery + 300)
      stop = true
      await Promise.all(producers)
      await until(`the live reader to receive the ${acknowledged.size} acknowledged events`, 10_000, () => live.received.length >= acknowledged.size)
      live.close()
      const failures = Number(/^eventplane_log_group_commit_failures_total (\d+)/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? NaN)
      assert.equal(child.exitCode, null, `the server exited:\n${output()}`)

      // The tmpfs lives as long as the server's namespace; an open folder keeps it readable after
      // that. SQLite cannot open a file through /proc/<pid>/root (it resolves the link to "/", in
      // this namespace), so the file is copied out once the server has stopped, cleanly: its
      // last checkpoint then ran on a disk with room again.
      const held = openSync(join(onDisk, 'data'), 'r')
      const copy = join(dir, 'copy')
      mkdirSync(copy)
      try {
        child.kill('SIGTERM')
        const [code] = (await Promise.race([exited, new Promise((_, reject) => setTimeout(() => reject(new Error(`the server did not exit within 15 s of SIGTERM:\n${output()}`)), 15_000).unref())])) as [number | null]
        assert.equal(code, 0, `the server did not stop cleanly after the outage:\n${output()}`)
        for (const name of ['events.sqlite', 'events.sqlite-wal']) {
          if (existsSync(`/proc/self/fd/${held}/${name}`)) copyFileSync(`/proc/self/fd/${held}/${name}`, join(copy, name))
        }
      } finally {
        closeSync(held)
      }

      const seen = new Map<string, number>()
      const offsets: number[] = []
      const log = await openSqliteLog({ path: join(copy, 'events.sqlite') })
      try {
        for await (const record of log.read({ topic, partition: 0, offset: 0 }, { follow: false })) {
          offsets.push(record.offset)
          const id = (JSON.parse(record.value.toString()) as { meta: { id: string } }).meta.id
          seen.set(id, (seen.get(id) ?? 0) + 1)
        }
      } finally {
        await log.close()
      }
      const db = new Database(join(copy, 'events.sqlite'), { readonly: true })
      const integrity = db.pragma('integrity_check', { simple: true })
      db.close()

      const statuses = new Map<number, number>()
      for (const a of answers) statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1)
      const non201 = answers.filter((a) => a.status !== 201)
      const lost = [...acknowledged].filter((id) => !seen.has(id))
      const twice = [...seen].filter(([, count]) => count > 1).map(([id]) => id)
      const refusedButWritten = [...refused].filter((id) => seen.has(id))
      const liveIds = live.received.map((r) => (r.data['meta'] as { id: string }).id)
      const gaps = offsets.filter((offset, i) => offset !== i).length
      const logLines = output().split('\n').filter((line) => line.includes('"part":"event-log"')).length

      t.diagnostic(`ballast: ${ballastBytes} bytes; requests tried: ${answers.length} (${[...statuses].map(([s, n]) => `${n} x ${s}`).join(', ')})`)
      t.diagnostic(`events acknowledged: ${acknowledged.size} (${ackedBeforeFull} before the disk filled, ${ackedAtRecovery - ackedBeforeFull} while full, ${acknowledged.size - ackedAtRecovery} after); refused: ${refused.size}`)
      t.diagnostic(`acknowledged lost: ${lost.length}; stored twice: ${twice.length}; refused but written: ${refusedButWritten.length}; group commit failures: ${failures}`)
      t.diagnostic(`offsets out of sequence: ${gaps} of ${offsets.length}; event log lines in the server's output: ${logLines}`)
      t.diagnostic(`recovered (first 201) ${recoveredMs.toFixed(0)} ms after space returned, /readyz ready after ${readyMs.toFixed(0)} ms; /readyz while full: ${JSON.stringify(notReady.body.reason)}`)

      assert.deepEqual(strange, [], 'every refusal lists each event of its request as a retryable error')
      assert.deepEqual([...statuses.keys()].filter((s) => s !== 201 && s !== 503), [], 'every answer is 201 or 503')
      assert.equal(non201.filter((a) => a.retryAfter === null || !(Number(a.retryAfter) > 0)).length, 0, 'every 503 carries Retry-After')
      assert.deepEqual([...new Set(non201.flatMap((a) => a.codes))], [fullCode], `every refused event is ${fullCode}`)
      assert.ok(non201.every((a) => a.retryable), 'every refused event has canRetry: true')
      assert.ok(failures >= 1, 'eventplane_log_group_commit_failures_total counted the failed commits')
      assert.equal(lost.length, 0, `${lost.length} acknowledged events are missing from the log`)
      assert.deepEqual(twice, [], 'no event is stored twice')
      assert.deepEqual(refusedButWritten, [], 'no refused event is in the log')
      assert.equal(gaps, 0, 'offsets run 0, 1, 2, … without a gap or a reuse')
      assert.equal(integrity, 'ok')
      assert.deepEqual([...liveIds].sort(), [...seen.keys()].sort(), 'the live reader saw exactly what the log holds')
    } finally {
      stop = true
      live.close()
      await Promise.allSettled(producers)
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
})
