// The SSE clients of the soak (soak/soak.ts), in a process of their own, in plain JavaScript:
// 1,000 connections are held on raw sockets, since an EventSource per connection would make this
// process, not the server, the limit. Each client reads `GET /v2/stream/test.event` with a
// server-side filter for one group of the soak's events: half with a CEL expression
// (`test.startsWith("g3-")`), half with `match[meta.domain]=g3.soak`. It records which events it
// got (a bit per sequence number), refuses to count one twice, notes any event outside its group,
// and reconnects with `Last-Event-ID` when the server ends its stream. Driven over IPC:
//   {cmd: 'connect', count, groups}  → {ok, connected, ms}
//   {cmd: 'sample'}                  → {ok, delivered, p99Ms, maxMs, reconnects, open} since the last sample
//   {cmd: 'verify', acked: [seq...]} → {ok, clients, complete, missing, duplicates, foreign, unacked}
//   {cmd: 'close'}                   → {ok}
import { connect } from 'node:net'

const [host, port] = [process.argv[2], Number(process.argv[3])]
const marker = '"test":"g'

/** @type {Client[]} */
const clients = []
let groups = 1

// Delivery latency (from the POST's start, which the event carries, to receipt): 1 ms buckets
// up to 60 s, reset at every sample.
const BUCKETS = 60_000
const latency = new Uint32Array(BUCKETS + 1)
let delivered = 0
let maxMs = 0
let reconnects = 0

/**
 * @typedef {{ index: number, group: number, path: string, socket: import('node:net').Socket | undefined, carry: string,
 *   open: boolean, lastId: string | undefined, seen: Uint32Array, received: number, duplicates: number, foreign: number, closing: boolean }} Client
 */

function pathOf(index, group) {
  const filter = Math.floor(index / groups) % 2 === 0
    ? `filter=${encodeURIComponent(`test.startsWith("g${group}-")`)}`
    : `${encodeURIComponent('match[meta.domain]')}=g${group}.soak`
  return `/v2/stream/test.event?${filter}`
}

function open(client) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true })
    client.socket = socket
    client.carry = ''
    client.open = false
    let head = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new Error(`client ${client.index}: no answer within 30 s`))
    }, 30_000)
    socket.on('connect', () => {
      const resume = client.lastId === undefined ? '' : `Last-Event-ID: ${client.lastId}\r\n`
      socket.write(`GET ${client.path} HTTP/1.1\r\nHost: ${host}:${port}\r\nAccept: text/event-stream\r\n${resume}\r\n`)
    })
    socket.on('error', (error) => {
      clearTimeout(timer)
      if (!client.open) reject(error)
    })
    socket.on('close', () => {
      clearTimeout(timer)
      const wasOpen = client.open
      client.open = false
      if (wasOpen && !client.closing) {
        // The server ended the stream (a slow reader is dropped, a restart): resume where it was.
        reconnects++
        setTimeout(() => open(client).catch(() => {}), 500)
      }
    })
    socket.on('data', (chunk) => {
      if (!client.open) {
        head += chunk.toString('latin1')
        const end = head.indexOf('\r\n\r\n')
        if (end === -1) return
        clearTimeout(timer)
        if (!head.startsWith('HTTP/1.1 200')) {
          socket.destroy()
          return reject(new Error(`client ${client.index}: the stream answered ${head.split('\r\n')[0]}`))
        }
        client.open = true
        resolve(client)
        const rest = head.slice(end + 4)
        if (rest) onData(client, rest)
        return
      }
      onData(client, chunk.toString('latin1'))
    })
  })
}

// The body is chunked: chunk-size lines can split an event, but never a line of the kinds read
// here in a way that matters, since a frame is only taken once its blank line has arrived and
// chunk-size lines are removed first.
function onData(client, text) {
  let buffer = client.carry + text
  // Drop chunked-encoding size lines ("\r\n1a3\r\n"): SSE lines end with "\n", sizes with "\r\n".
  buffer = buffer.replace(/\r\n[0-9a-f]+\r\n/g, '')
  let start = 0
  for (;;) {
    const end = buffer.indexOf('\n\n', start)
    if (end === -1) break
    frame(client, buffer.slice(start, end))
    start = end + 2
  }
  client.carry = buffer.slice(start)
}

function frame(client, text) {
  const now = Date.now()
  const id = /(?:^|\n)id: ([^\n]*)/.exec(text)
  if (id) client.lastId = id[1]
  const m = text.indexOf(marker)
  if (m === -1) return
  // "test":"g<group>-<seq>-<epoch ms>"
  const rest = text.slice(m + marker.length, text.indexOf('"', m + marker.length))
  const [group, seq, postedAt] = rest.split('-').map(Number)
  if (group !== client.group) {
    client.foreign++
    return
  }
  const word = seq >>> 5
  if (word >= client.seen.length) {
    const grown = new Uint32Array(Math.max(word + 1, client.seen.length * 2))
    grown.set(client.seen)
    client.seen = grown
  }
  const bit = 1 << (seq & 31)
  if (client.seen[word] & bit) {
    client.duplicates++
    return
  }
  client.seen[word] |= bit
  client.received++
  delivered++
  const ms = Math.max(0, now - postedAt)
  if (ms > maxMs) maxMs = ms
  latency[Math.min(BUCKETS, ms)]++
}

async function connectAll(count) {
  const started = Date.now()
  const wave = 100
  for (let first = 0; first < count; first += wave) {
    const batch = []
    for (let index = first; index < Math.min(count, first + wave); index++) {
      const group = index % groups
      const client = { index, group, path: pathOf(index, group), socket: undefined, carry: '', open: false, lastId: undefined, seen: new Uint32Array(1024), received: 0, duplicates: 0, foreign: 0, closing: false }
      clients.push(client)
      batch.push(open(client))
    }
    await Promise.all(batch)
  }
  return { connected: clients.filter((c) => c.open).length, ms: Date.now() - started }
}

function sample() {
  let seen = 0
  let p99Ms = 0
  const target = Math.ceil(delivered * 0.99)
  for (let i = 0; i <= BUCKETS && delivered > 0; i++) {
    seen += latency[i]
    if (seen >= target) {
      p99Ms = i
      break
    }
  }
  const result = { delivered, p99Ms, maxMs, reconnects, open: clients.filter((c) => c.open).length }
  latency.fill(0)
  delivered = 0
  maxMs = 0
  return result
}

function verify(acked) {
  const byGroup = Array.from({ length: groups }, () => [])
  for (const seq of acked) byGroup[seq % groups].push(seq)
  let complete = 0
  let missing = 0
  let duplicates = 0
  let foreign = 0
  let unacked = 0
  for (const client of clients) {
    const expected = byGroup[client.group]
    let has = 0
    for (const seq of expected) if ((client.seen[seq >>> 5] ?? 0) & (1 << (seq & 31))) has++
    missing += expected.length - has
    unacked += client.received - has
    duplicates += client.duplicates
    foreign += client.foreign
    if (has === expected.length && client.duplicates === 0 && client.foreign === 0) complete++
  }
  return { clients: clients.length, complete, missing, duplicates, foreign, unacked }
}

process.on('message', async (message) => {
  try {
    if (message.cmd === 'connect') {
      groups = message.groups
      process.send({ ok: true, ...(await connectAll(message.count)) })
    } else if (message.cmd === 'sample') process.send({ ok: true, ...sample() })
    else if (message.cmd === 'verify') process.send({ ok: true, ...verify(message.acked) })
    else if (message.cmd === 'close') {
      for (const client of clients) {
        client.closing = true
        client.socket?.destroy()
      }
      process.send({ ok: true })
    } else throw new Error(`unknown command ${message.cmd}`)
  } catch (error) {
    process.send({ ok: false, error: String(error?.stack ?? error) })
  }
})
process.on('disconnect', () => process.exit(0))
