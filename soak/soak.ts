/**
 * The soak: `eventplane serve` on the bundled config and the embedded log, under a mixed load
 * for minutes, sampled as it goes and checked at the end.
 *
 * The load, all at once:
 * - intake: events at a steady rate through `POST /v1/events`, in requests of 1 to 20 events,
 *   each event numbered and stamped with the time of its POST; every 2 s one invalid event;
 * - streams: SSE clients (soak/clients.mjs, a process of their own), each filtering one group of
 *   the events on the server, by a CEL expression or by `match[...]`;
 * - reads: schema and stream config GETs at a steady rate;
 * - reloads: the stream config rewritten and `SIGHUP` sent, a stream added each time; every
 *   fourth edit does not parse and must be refused, the last good config kept.
 *
 * Every sample: the server's RSS and CPU, its event-loop delay p99 (prom-client's
 * `eventplane_nodejs_eventloop_lag_p99_seconds`, which each scrape of /metrics resets, so the
 * value is for the sample's interval; it includes the monitor's 10 ms sampling period, so an idle
 * loop reads about 10.5 ms), p99 latency of intake requests, of GETs and of SSE deliveries (from
 * the POST to receipt), and counts.
 *
 * At the end, the checks (`SoakReport.checks`):
 * - RSS growth after warm-up under 10 %: the highest RSS in the last third of the samples after
 *   warm-up against the highest before it (after warm-up). RSS is a saw: V8 grows its young
 *   generation under load and its memory reducer gives it back now and then, 127 to 194 MiB in a
 *   10-minute run whose live heap stayed at 36-38 MiB. A value at one time says where the saw
 *   is; a memory that grows makes new highs at the end;
 * - event-loop delay p99 under 50 ms in every sample after warm-up;
 * - every acknowledged event exactly once in the log (read from the SQLite file once the server
 *   has stopped) and in a full SSE replay (`?since=0`, an EventSource);
 * - every SSE client got every acknowledged event of its group, once, and nothing else;
 * - every answer as expected: 201 for the events, 400 for the invalid ones, 200 for the GETs,
 *   each reload loaded or refused as it should be; the server exits 0 on SIGTERM.
 */
import { fork, spawn, type ChildProcess, type StdioOptions } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { join } from 'node:path'
import { EventSource } from 'eventsource'
import { parse, stringify } from 'yaml'
import { openSqliteLog } from '../src/log/index.ts'
import { cpuSeconds, exited, freePort, median, pinned, repoRoot, rssKiB, serveArgs, serverEnv, sleep, stop, track, waitUntilAnswering, writeBundledConfig } from '../bench/lib.ts'

export interface SoakOptions {
  /** Seconds of load. */
  seconds: number
  /** Seconds at the start that the RSS and event-loop checks leave out. */
  warmupSeconds: number
  /** The RSS check's bound on growth after warm-up (0.1: 10 %). */
  rssGrowthLimit: number
  sampleSeconds: number
  /** Events per second posted. */
  rate: number
  clients: number
  /** Filter groups: each client gets 1/groups of the events. */
  groups: number
  reloadEverySeconds: number
  getsPerSecond: number
  /** `dist`: the compiled server, started as `npm start` does; `src`: the same flags, through tsx. */
  server: 'dist' | 'src'
  /** More node flags for the server (after `npm start`'s own), e.g. --trace-gc. */
  nodeOptions: string[]
  /** Server on core 0, load on core 1 (taskset), as the benchmarks do. */
  pin: boolean
  /** Where the soak's own files go (config, log); the caller removes it. */
  dir: string
  say: (line: string) => void
}

export interface Sample {
  atS: number
  rssMiB: number
  /** V8's heap in use and the memory of Buffers and ArrayBuffers (prom-client's gauges). */
  heapMiB: number
  externalMiB: number
  cpuPercent: number
  loopP99Ms: number
  requests: number
  events: number
  intakeP99Ms: number
  gets: number
  getP99Ms: number
  delivered: number
  sseP99Ms: number
  sseOpen: number
  reconnects: number
  reloads: number
}

export interface Check {
  name: string
  ok: boolean
  detail: string
}

export interface SoakReport {
  options: Omit<SoakOptions, 'say' | 'dir'>
  samples: Sample[]
  totals: Record<string, number>
  checks: Check[]
  ok: boolean
}

const stream = 'test.event'
const topic = `datacenter1.${stream}`
const batchSizes = [1, 2, 5, 1, 10, 3, 1, 20, 1, 7]
const getPaths = [
  '/repositories',
  '/repositories/eventplane/jsonschema/eventplane/test/event/1.0.0',
  '/repositories/eventplane/jsonschema/eventplane/test/event/latest',
  '/v1/stream-configs',
  `/v1/stream-configs/${stream}`,
  '/w/api.php?action=streamconfigs&format=json',
]

/** Latencies in 0.1 ms buckets up to 60 s. */
class Latencies {
  private readonly buckets = new Uint32Array(600_001)
  count = 0
  record(ms: number): void {
    this.buckets[Math.min(600_000, Math.floor(ms * 10))]!++
    this.count++
  }
  p99(): number {
    if (this.count === 0) return 0
    const target = Math.ceil(this.count * 0.99)
    let seen = 0
    for (let i = 0; i < this.buckets.length; i++) {
      seen += this.buckets[i]!
      if (seen >= target) return (i + 1) / 10
    }
    return Infinity
  }
  reset(): void {
    this.buckets.fill(0)
    this.count = 0
  }
}

/** The clients process: one command at a time, each answered by one message. */
function clientsProcess(url: URL, pin: boolean) {
  const script = join(repoRoot, 'soak/clients.mjs')
  const args = [url.hostname, url.port]
  const command = pin ? pinned(1, process.execPath, [script, ...args]) : undefined
  const stdio: StdioOptions = ['ignore', 'inherit', 'inherit', 'ipc']
  const child = track(command ? spawn(command.command, command.args, { stdio }) : fork(script, args, { stdio }))
  let queue = Promise.resolve() as Promise<unknown>
  const ask = <T>(message: object): Promise<T> => {
    const answer = queue.then(
      () =>
        new Promise<T>((resolve, reject) => {
          const onExit = () => reject(new Error('the SSE clients process exited'))
          child.once('exit', onExit)
          child.once('message', (reply: { ok: boolean; error?: string }) => {
            child.off('exit', onExit)
            if (reply.ok) resolve(reply as T)
            else reject(new Error(`SSE clients: ${reply.error}`))
          })
          child.send(message)
        }),
    )
    queue = answer.catch(() => {})
    return answer
  }
  return { child, ask }
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const { say, dir, ...settings } = options
  const port = await freePort()
  const streamsFile = join(dir, 'streams.yaml')
  const bundledStreams = parse(readFileSync(join(repoRoot, 'defaults/streams.yaml'), 'utf8')) as { streams: Record<string, unknown> }
  writeFileSync(streamsFile, stringify(bundledStreams))
  const { configFile, logFile } = writeBundledConfig(dir, {
    server: { port, max_connections_per_ip: 0 },
    // 1,000 clients from one address: the per-address cap (10) would refuse all but ten.
    streams: { max_connections_per_ip: 0 },
    stream_config: { source: streamsFile, watch: false },
    event_log: { sync: 'normal' },
  })

  const flags = [...serveArgs().slice(0, -2), ...options.nodeOptions]
  const args = [...flags, ...(options.server === 'dist' ? [join(repoRoot, 'dist/cli/bin.js')] : ['--import', 'tsx', join(repoRoot, 'src/cli/bin.ts')]), 'serve']
  const command = options.pin ? pinned(0, process.execPath, [...args, '--config', configFile]) : { command: process.execPath, args: [...args, '--config', configFile] }
  const server: ChildProcess = track(spawn(command.command, command.args, { cwd: repoRoot, env: serverEnv(), stdio: ['ignore', 'inherit', 'inherit'] }))
  const base = `http://127.0.0.1:${port}`
  await waitUntilAnswering(server, `${base}/healthz`, 'eventplane serve')
  const pid = server.pid!

  const agent = new Agent({ keepAlive: true, maxSockets: 32 })
  let keepAliveRetries = 0
  const call = (method: string, path: string, body?: string, retried = false): Promise<{ status: number; text: string; ms: number }> =>
    new Promise<{ status: number; text: string; ms: number }>((resolve, reject) => {
      const started = performance.now()
      const req = request(`${base}${path}`, { method, agent, headers: body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString(), ms: performance.now() - started }))
        res.on('error', reject)
      })
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: no answer within 30 s`)))
      req.on('error', (error: NodeJS.ErrnoException) => {
        // The server closed an idle keep-alive connection (server.keep_alive_timeout_ms) as this
        // request went out on it: the request was never read, so it is sent again, once, on a
        // new connection (the retry node's documentation describes for request.reusedSocket).
        if (req.reusedSocket && error.code === 'ECONNRESET' && !retried) {
          keepAliveRetries++
          call(method, path, body, true).then(resolve, reject)
        } else reject(error)
      })
      req.end(body)
    })
  for (const path of getPaths) {
    const { status, text } = await call('GET', path)
    if (status !== 200) throw new Error(`GET ${path} answered ${status}: ${text.slice(0, 300)}`)
  }

  // The SSE clients connect before any event is posted, so each must get all of its group's.
  const clients = clientsProcess(new URL(base), options.pin)
  const connected = await clients.ask<{ connected: number; ms: number }>({ cmd: 'connect', count: options.clients, groups: options.groups })
  say(`${connected.connected} SSE clients connected in ${(connected.ms / 1000).toFixed(1)} s (${options.groups} filter groups, CEL and match[...])`)
  if (connected.connected !== options.clients) throw new Error(`only ${connected.connected} of ${options.clients} SSE clients connected`)

  // ---- the load -----------------------------------------------------------------------------
  let state = new Uint8Array(1 << 16) // per sequence number: 1 posted, 2 acknowledged, 3 refused
  let nextSeq = 0
  const statuses = new Map<string, number>()
  const count = (key: string) => statuses.set(key, (statuses.get(key) ?? 0) + 1)
  const intake = new Latencies()
  const gets = new Latencies()
  let requests = 0
  let acked = 0
  let inFlight = 0
  let behind = 0
  let getCount = 0
  const reloads = { loaded: 0, refused: 0, failed: [] as string[] }
  let reloadsInSample = 0

  const post = (size: number): void => {
    const first = nextSeq
    nextSeq += size
    while (nextSeq > state.length) {
      const grown = new Uint8Array(state.length * 2)
      grown.set(state)
      state = grown
    }
    const now = Date.now()
    const events: string[] = []
    for (let seq = first; seq < nextSeq; seq++) {
      const group = seq % options.groups
      state[seq] = 1
      events.push(`{"$schema":"/eventplane/test/event/1.0.0","meta":{"stream":"${stream}","domain":"g${group}.soak"},"test":"g${group}-${seq}-${now}"}`)
    }
    inFlight++
    call('POST', '/v1/events', `[${events.join(',')}]`).then(
      ({ status, text, ms }) => {
        inFlight--
        requests++
        intake.record(ms)
        count(`events ${status === 201 ? 201 : `${status} ${text.slice(0, 120)}`}`)
        for (let seq = first; seq < first + size; seq++) state[seq] = status === 201 ? 2 : 3
        if (status === 201) acked += size
      },
      (error: Error) => {
        inFlight--
        count(`events failed: ${error.message}`)
        for (let seq = first; seq < first + size; seq++) state[seq] = 3
      },
    )
  }

  const started = Date.now()
  let produced = 0
  let batch = 0
  const producer = setInterval(() => {
    const due = Math.floor((options.rate * (Date.now() - started)) / 1000) - produced
    if (due > 0 && inFlight >= 64) behind++
    for (let left = due; left > 0 && inFlight < 64; ) {
      const size = Math.min(left, batchSizes[batch++ % batchSizes.length]!)
      post(size)
      produced += size
      left -= size
    }
  }, 20)
  const invalid = setInterval(() => {
    call('POST', '/v1/events', `{"$schema":"/eventplane/test/event/1.0.0","meta":{"stream":"${stream}"},"test":42}`).then(
      ({ status }) => count(`invalid ${status}`),
      (error: Error) => count(`invalid failed: ${error.message}`),
    )
  }, 2000)
  let getIndex = 0
  const reader = setInterval(() => {
    const path = getPaths[getIndex++ % getPaths.length]!
    call('GET', path).then(
      ({ status, ms }) => {
        getCount++
        gets.record(ms)
        count(`GET ${status}`)
      },
      (error: Error) => count(`GET failed: ${error.message}`),
    )
  }, 1000 / options.getsPerSecond)

  const metric = (text: string, name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN)
  // Each scrape of /metrics resets prom-client's event-loop histogram, and the reload checks
  // scrape too: every scrape's p99 counts, and a sample takes the worst since the one before.
  let loopP99Ms = 0
  const scrape = async (): Promise<string> => {
    const text = (await call('GET', '/metrics')).text
    loopP99Ms = Math.max(loopP99Ms, metric(text, 'eventplane_nodejs_eventloop_lag_p99_seconds') * 1000)
    return text
  }
  const reloadOnce = async (n: number): Promise<void> => {
    const broken = n % 4 === 3
    const name = `soak.reload-${n}`
    if (broken) writeFileSync(streamsFile, `streams:\n  ${name}: [unclosed\n`)
    else writeFileSync(streamsFile, stringify({ ...bundledStreams, streams: { ...bundledStreams.streams, [name]: { schema_title: 'eventplane/test/event' } } }))
    server.kill('SIGHUP')
    const deadline = Date.now() + 10_000
    for (;;) {
      const success = metric(await scrape(), 'eventplane_stream_config_last_reload_success')
      // The API answers 200 with the streams it knows among those asked for: `{}` for none.
      // A refused edit keeps the last good config: the stream the edit before added, with the rest.
      const previous = `soak.reload-${n - 1}`
      const listed = (await call('GET', `/v1/stream-configs/${name},${previous},${stream}`)).text
      const added = listed.includes(`"${name}"`)
      const kept = listed.includes(`"${stream}"`) && (!broken || listed.includes(`"${previous}"`))
      if (kept && (broken ? success === 0 && !added : success === 1 && added)) {
        if (broken) reloads.refused++
        else reloads.loaded++
        reloadsInSample++
        return
      }
      if (Date.now() > deadline) {
        reloads.failed.push(`edit ${n} (${broken ? 'broken' : 'good'}): last_reload_success ${success}, ${name} ${added ? 'listed' : 'not listed'}, last good ${kept ? 'kept' : 'lost'}`)
        return
      }
      await sleep(100)
    }
  }
  let reloadCount = 0
  let reloading = Promise.resolve()
  const reloader = setInterval(() => {
    reloading = reloading.then(() => reloadOnce(reloadCount++))
  }, options.reloadEverySeconds * 1000)

  // ---- samples ------------------------------------------------------------------------------
  const samples: Sample[] = []
  const header = '    s   RSS MiB  heap MiB  ext MiB  CPU %  loop p99 ms  req  events  intake p99 ms  GETs  GET p99 ms  delivered  SSE p99 ms  open  reconn  reloads'
  say(header)
  let cpu = cpuSeconds(pid)
  let lastAt = Date.now()
  let lastRequests = 0
  let lastAcked = 0
  let lastGets = 0
  const sampleOnce = async (): Promise<void> => {
    const now = Date.now()
    const cpuNow = cpuSeconds(pid)
    const metrics = await scrape()
    const sse = await clients.ask<{ delivered: number; p99Ms: number; reconnects: number; open: number }>({ cmd: 'sample' })
    const sample: Sample = {
      atS: Math.round((now - started) / 1000),
      rssMiB: rssKiB(pid) / 1024,
      heapMiB: metric(metrics, 'eventplane_nodejs_heap_size_used_bytes') / 2 ** 20,
      externalMiB: metric(metrics, 'eventplane_nodejs_external_memory_bytes') / 2 ** 20,
      cpuPercent: ((cpuNow - cpu) / ((now - lastAt) / 1000)) * 100,
      loopP99Ms,
      requests: requests - lastRequests,
      events: acked - lastAcked,
      intakeP99Ms: intake.p99(),
      gets: getCount - lastGets,
      getP99Ms: gets.p99(),
      delivered: sse.delivered,
      sseP99Ms: sse.p99Ms,
      sseOpen: sse.open,
      reconnects: sse.reconnects,
      reloads: reloadsInSample,
    }
    ;[cpu, lastAt, lastRequests, lastAcked, lastGets, reloadsInSample, loopP99Ms] = [cpuNow, now, requests, acked, getCount, 0, 0]
    intake.reset()
    gets.reset()
    samples.push(sample)
    const cells = [sample.atS, sample.rssMiB.toFixed(1), sample.heapMiB.toFixed(1), sample.externalMiB.toFixed(1), sample.cpuPercent.toFixed(0), sample.loopP99Ms.toFixed(1), sample.requests, sample.events, sample.intakeP99Ms.toFixed(1), sample.gets, sample.getP99Ms.toFixed(1), sample.delivered, sample.sseP99Ms, sample.sseOpen, sample.reconnects, sample.reloads]
    const widths = [5, 9, 9, 8, 6, 12, 6, 7, 14, 5, 11, 10, 11, 5, 7, 8]
    say(cells.map((c, i) => String(c).padStart(widths[i]!)).join(' '))
  }
  try {
    while (Date.now() - started < options.seconds * 1000) {
      await sleep(Math.min(options.sampleSeconds * 1000 - ((Date.now() - started) % (options.sampleSeconds * 1000)), options.seconds * 1000 - (Date.now() - started)))
      if (server.exitCode !== null || server.signalCode !== null) throw new Error(`the server exited during the soak (${server.exitCode ?? server.signalCode})`)
      await sampleOnce()
    }
  } finally {
    clearInterval(producer)
    clearInterval(invalid)
    clearInterval(reader)
    clearInterval(reloader)
  }
  await reloading
  const drainDeadline = Date.now() + 30_000
  while (inFlight > 0 && Date.now() < drainDeadline) await sleep(20)
  const ackedSeqs: number[] = []
  let refused = 0
  for (let seq = 0; seq < nextSeq; seq++) {
    if (state[seq] === 2) ackedSeqs.push(seq)
    else refused++
  }
  say(`load stopped after ${((Date.now() - started) / 1000).toFixed(0)} s: ${nextSeq} events posted in ${requests} requests, ${acked} acknowledged; checking`)

  // ---- checks -------------------------------------------------------------------------------
  type Live = { clients: number; complete: number; missing: number; duplicates: number; foreign: number; unacked: number }
  let live = await clients.ask<Live>({ cmd: 'verify', acked: ackedSeqs })
  const liveDeadline = Date.now() + 30_000
  while (live.missing > 0 && Date.now() < liveDeadline) {
    await sleep(500)
    live = await clients.ask<Live>({ cmd: 'verify', acked: ackedSeqs })
  }
  await clients.ask({ cmd: 'close' })
  clients.child.disconnect()

  const replay = await fullReplay(base, ackedSeqs.length)
  server.kill('SIGTERM')
  const exitCode = await Promise.race([exited(server), sleep(30_000).then(() => 'still running after 30 s')])
  await stop(server)
  agent.destroy()
  const stored = await readLog(logFile)

  const exactlyOnce = (seen: Map<number, number>) => {
    let missing = 0
    let twice = 0
    for (const seq of ackedSeqs) {
      const n = seen.get(seq) ?? 0
      if (n === 0) missing++
      else if (n > 1) twice++
    }
    let unacknowledged = 0
    for (const seq of seen.keys()) if (state[seq] !== 2) unacknowledged++
    return { missing, twice, unacknowledged }
  }
  const inLog = exactlyOnce(stored.seen)
  const inReplay = exactlyOnce(replay.seen)

  const afterWarmup = samples.filter((s) => s.atS > options.warmupSeconds)
  const third = Math.max(1, Math.floor(afterWarmup.length / 3))
  const early = Math.max(...afterWarmup.slice(0, -third).map((s) => s.rssMiB))
  const late = Math.max(...afterWarmup.slice(-third).map((s) => s.rssMiB))
  const growth = late / early - 1
  const worstLoop = Math.max(...afterWarmup.map((s) => s.loopP99Ms))
  const unexpected = [...statuses].filter(([key]) => !['events 201', 'invalid 400', 'GET 200'].includes(key))
  const checks: Check[] = [
    {
      name: `RSS growth after warm-up under ${Math.round(options.rssGrowthLimit * 100)} %`,
      ok: afterWarmup.length >= 2 && growth < options.rssGrowthLimit,
      detail: `${(growth * 100).toFixed(1)} %: highest of the last ${third} samples ${late.toFixed(1)} MiB against the highest from ${options.warmupSeconds} s until then, ${early.toFixed(1)} MiB; lowest after warm-up ${Math.min(...afterWarmup.map((s) => s.rssMiB)).toFixed(1)} MiB`,
    },
    { name: 'event-loop delay p99 under 50 ms after warm-up', ok: worstLoop < 50, detail: `worst sample ${worstLoop.toFixed(1)} ms, median ${median(afterWarmup.map((s) => s.loopP99Ms)).toFixed(1)} ms` },
    {
      name: 'every acknowledged event exactly once in the log',
      ok: inLog.missing === 0 && inLog.twice === 0 && ackedSeqs.length > 0,
      detail: `${ackedSeqs.length} acknowledged; ${inLog.missing} missing, ${inLog.twice} stored twice, ${inLog.unacknowledged} stored without a 201; ${stored.records} records in ${topic}`,
    },
    {
      name: 'every acknowledged event exactly once in a full SSE replay',
      ok: inReplay.missing === 0 && inReplay.twice === 0 && ackedSeqs.length > 0,
      detail: `${replay.received} events replayed in ${(replay.ms / 1000).toFixed(1)} s; ${inReplay.missing} missing, ${inReplay.twice} twice, ${inReplay.unacknowledged} without a 201`,
    },
    {
      name: 'every SSE client got every event of its filter, once, and nothing else',
      ok: live.complete === live.clients && live.clients === options.clients,
      detail: `${live.complete} of ${live.clients} complete; ${live.missing} deliveries missing, ${live.duplicates} twice, ${live.foreign} outside the filter, ${live.unacked} without a 201`,
    },
    {
      name: 'every answer as expected (events 201, invalid events 400, GETs 200)',
      ok: unexpected.length === 0 && refused === 0,
      detail: [...statuses].map(([key, n]) => `${key}: ${n}`).join(', '),
    },
    {
      name: 'stream config reloads: good edits loaded, broken ones refused keeping the last good',
      ok: reloads.failed.length === 0 && reloads.loaded + reloads.refused > 0,
      detail: `${reloads.loaded} loaded, ${reloads.refused} refused${reloads.failed.length ? `; ${reloads.failed.join('; ')}` : ''}`,
    },
    { name: 'the server exited 0 on SIGTERM', ok: exitCode === 0, detail: `exit ${exitCode}` },
  ]
  const totals = {
    seconds: (Date.now() - started) / 1000,
    posted: nextSeq,
    requests,
    acknowledged: ackedSeqs.length,
    gets: getCount,
    reloadsLoaded: reloads.loaded,
    reloadsRefused: reloads.refused,
    producerFellBehind: behind,
    sseClients: live.clients,
    replayed: replay.received,
    keepAliveRetries,
  }
  return { options: settings, samples, totals, checks, ok: checks.every((c) => c.ok) }
}

/** Every event of the stream from its start, through an EventSource; stops 2 s after the last arrived once `expected` are in. */
async function fullReplay(base: string, expected: number): Promise<{ seen: Map<number, number>; received: number; ms: number }> {
  const started = Date.now()
  const seen = new Map<number, number>()
  let received = 0
  let lastAt = Date.now()
  const source = new EventSource(`${base}/v2/stream/${stream}?since=0`)
  source.addEventListener('message', (event) => {
    const test = (JSON.parse(event.data) as { test?: unknown }).test
    if (typeof test !== 'string' || !test.startsWith('g')) return
    const seq = Number(test.split('-')[1])
    seen.set(seq, (seen.get(seq) ?? 0) + 1)
    received++
    lastAt = Date.now()
  })
  const deadline = Date.now() + 120_000
  while (Date.now() < deadline && !(received >= expected && Date.now() - lastAt > 2000)) await sleep(100)
  source.close()
  return { seen, received, ms: Date.now() - started }
}

/** Per sequence number, how many records of the soak's stream the SQLite log holds. */
async function readLog(path: string): Promise<{ seen: Map<number, number>; records: number }> {
  const log = await openSqliteLog({ path })
  const seen = new Map<number, number>()
  let records = 0
  try {
    const partitions = await log.partitions(topic)
    for (let partition = 0; partition < partitions; partition++) {
      for await (const record of log.read({ topic, partition, offset: 0 }, { follow: false })) {
        records++
        const test = (JSON.parse(record.value.toString()) as { test?: unknown }).test
        if (typeof test !== 'string' || !test.startsWith('g')) continue
        const seq = Number(test.split('-')[1])
        seen.set(seq, (seen.get(seq) ?? 0) + 1)
      }
    }
  } finally {
    await log.close()
  }
  return { seen, records }
}
