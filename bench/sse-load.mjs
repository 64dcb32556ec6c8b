// Load generator of bench/sse.ts (plain JavaScript: no TypeScript loader in the measured
// process). It holds many SSE connections on raw sockets (an EventSource per connection would
// make the generator, not the server, the limit at 10,000 clients), produces test events at a
// steady rate through POST /v1/events, and measures, per received event, the time from the
// POST's 201 (and from the POST's start) to receipt. Driven by its parent over IPC:
//   {cmd: 'connect', count}  → {ok, connected, ms}
//   {cmd: 'step', rate, seconds, drainMs} → {ok, ...counts and latency percentiles}
//   {cmd: 'disconnect'}      → {ok}
import { Agent, request } from 'node:http'
import { connect } from 'node:net'
import { performance } from 'node:perf_hooks'

const [host, port, stream] = [process.argv[2], Number(process.argv[3]), process.argv[4]]
const path = `/v2/stream/${stream}`
const marker = '"test":"'

// Per event (by sequence number): when its POST started and when its 201 arrived.
let capacity = 1 << 20
let postAt = new Float64Array(capacity)
let ackAt = new Float64Array(capacity)
let nextSeq = 0

// Latency histograms: 0.1 ms buckets up to 30 s.
const BUCKETS = 300_000
const fromAck = new Uint32Array(BUCKETS + 1)
const fromPost = new Uint32Array(BUCKETS + 1)
let measuring = { first: Infinity, last: -1 }
let received = 0
let receivedBeforeAck = 0
let maxFromAck = 0

const clients = []

function record(seq, now) {
  if (seq < measuring.first || seq > measuring.last) return
  received++
  const posted = postAt[seq]
  fromPost[Math.min(BUCKETS, Math.floor((now - posted) * 10))]++
  const acked = ackAt[seq]
  let latency = 0
  if (acked === 0) receivedBeforeAck++
  else latency = Math.max(0, now - acked)
  if (latency > maxFromAck) maxFromAck = latency
  fromAck[Math.min(BUCKETS, Math.floor(latency * 10))]++
}

function openClient() {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true })
    const client = { socket, carry: '', open: false, events: 0 }
    let head = ''
    const timer = setTimeout(() => reject(new Error('no :ok within 30 s')), 30_000)
    socket.on('connect', () => socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nAccept: text/event-stream\r\n\r\n`))
    socket.on('error', (error) => {
      if (!client.open) reject(error)
      else client.error = error
    })
    socket.on('close', () => (client.closed = true))
    socket.on('data', (chunk) => {
      if (!client.open) {
        head += chunk.toString('latin1')
        if (!/^HTTP\/1\.1 200/.test(head) && head.length > 12) {
          clearTimeout(timer)
          socket.destroy()
          return reject(new Error(`the stream answered: ${head.split('\r\n')[0]}`))
        }
        if (!head.includes(':ok')) return
        client.open = true
        clearTimeout(timer)
        resolve(client)
        return
      }
      onData(client, chunk)
    })
  })
}

// Finds every "test":"<seq>" in what arrived (a marker may be split between two chunks).
function onData(client, chunk) {
  const now = performance.now()
  const text = client.carry + chunk.toString('latin1')
  let at = text.indexOf(marker)
  let keepFrom = Math.max(0, text.length - marker.length + 1)
  while (at !== -1) {
    let i = at + marker.length
    let seq = 0
    let c
    while (i < text.length && (c = text.charCodeAt(i)) >= 48 && c <= 57) {
      seq = seq * 10 + (c - 48)
      i++
    }
    if (i >= text.length) {
      keepFrom = at
      break
    }
    client.events++
    record(seq, now)
    at = text.indexOf(marker, i)
  }
  client.carry = text.slice(Math.max(keepFrom, 0))
}

async function connectAll(count) {
  const started = performance.now()
  const wave = 250
  while (clients.length < count) {
    const n = Math.min(wave, count - clients.length)
    clients.push(...(await Promise.all(Array.from({ length: n }, openClient))))
  }
  return { connected: clients.filter((c) => c.open && !c.closed).length, ms: performance.now() - started }
}

// ---------------------------------------------------------------------------------------------
// Producer: rate events/s, paced every 5 ms, at most 100 events per POST and 16 POSTs in flight.

const agent = new Agent({ keepAlive: true, maxSockets: 16 })
let inFlight = 0
let postErrors = 0

function grow() {
  capacity *= 2
  const p = new Float64Array(capacity)
  p.set(postAt)
  postAt = p
  const a = new Float64Array(capacity)
  a.set(ackAt)
  ackAt = a
}

function post(count) {
  const first = nextSeq
  nextSeq += count
  while (nextSeq >= capacity) grow()
  const events = []
  for (let seq = first; seq < nextSeq; seq++) events.push(`{"$schema":"/eventplane/test/event/1.0.0","meta":{"stream":"${stream}"},"test":"${seq}"}`)
  const body = `[${events.join(',')}]`
  const now = performance.now()
  for (let seq = first; seq < nextSeq; seq++) postAt[seq] = now
  inFlight++
  const req = request({ host, port, path: '/v1/events', method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
    res.resume()
    res.on('end', () => {
      inFlight--
      if (res.statusCode !== 201) postErrors += count
      const acked = performance.now()
      for (let seq = first; seq < first + count; seq++) ackAt[seq] = acked
    })
  })
  req.on('error', () => {
    inFlight--
    postErrors += count
  })
  req.end(body)
  return { first, last: nextSeq - 1 }
}

async function step({ rate, seconds, drainMs }) {
  for (const h of [fromAck, fromPost]) h.fill(0)
  received = 0
  receivedBeforeAck = 0
  maxFromAck = 0
  postErrors = 0
  const live = clients.filter((c) => c.open && !c.closed)
  const first = nextSeq
  measuring = { first, last: Infinity }
  const cpu0 = process.cpuUsage()
  const started = performance.now()
  let produced = 0
  let skipped = 0
  await new Promise((resolve) => {
    const timer = setInterval(() => {
      const elapsed = (performance.now() - started) / 1000
      const due = Math.min(rate * seconds, Math.floor(rate * elapsed)) - produced
      if (inFlight >= 16) skipped++
      else
        for (let left = due; left > 0; ) {
          const n = Math.min(100, left)
          post(n)
          produced += n
          left -= n
        }
      if (elapsed >= seconds) {
        clearInterval(timer)
        resolve()
      }
    }, 5)
  })
  const producing = (performance.now() - started) / 1000
  measuring.last = nextSeq - 1
  const expected = produced * live.length
  const drainDeadline = performance.now() + drainMs
  while ((received < expected - postErrors * live.length || inFlight > 0) && performance.now() < drainDeadline) await new Promise((r) => setTimeout(r, 10))
  const cpu = process.cpuUsage(cpu0)
  const elapsed = (performance.now() - started) / 1000
  return {
    clients: live.length,
    closedClients: clients.filter((c) => c.closed).length,
    rate,
    produced,
    postErrors,
    producerFellBehind: skipped,
    producingSeconds: producing,
    expected,
    received,
    receivedBeforeAck,
    deliveredPerSecond: received / producing,
    fromAck: percentiles(fromAck, received),
    fromPost: percentiles(fromPost, received),
    maxFromAckMs: maxFromAck,
    loadCpuPercent: ((cpu.user + cpu.system) / 1e6 / elapsed) * 100,
  }
}

function percentiles(histogram, total) {
  const at = (q) => {
    if (total === 0) return NaN
    const target = Math.ceil(q * total)
    let seen = 0
    for (let i = 0; i < histogram.length; i++) {
      seen += histogram[i]
      if (seen >= target) return (i + 1) / 10
    }
    return NaN
  }
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999) }
}

process.on('message', async (message) => {
  try {
    if (message.cmd === 'connect') process.send({ ok: true, ...(await connectAll(message.count)) })
    else if (message.cmd === 'step') process.send({ ok: true, ...(await step(message)) })
    else if (message.cmd === 'disconnect') {
      for (const c of clients.splice(0)) c.socket.destroy()
      process.send({ ok: true })
    } else throw new Error(`unknown command ${message.cmd}`)
  } catch (error) {
    process.send({ ok: false, error: String(error?.stack ?? error) })
  }
})
process.on('disconnect', () => process.exit(0))
