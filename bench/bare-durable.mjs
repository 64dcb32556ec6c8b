// The "bare-durable" baseline for bench/intake.ts: bench/bare-intake.mjs plus what makes an
// intake durable, and nothing else. Each request's body is read and JSON.parsed (400 if it does
// not parse), then its raw bytes are appended to one file, and the 201 goes out only once they
// are written. Appends are group-committed as the SQLite event log does (src/log/sqlite.ts):
// bodies queued in one turn of the event loop and the next are written by one writev(2), at
// once when the queue reaches 16 MiB or 20,000 appends.
//
// Durability is that of event_log.sync: normal, the default: write(2) has returned, so the bytes
// are in the kernel's page cache and survive a crash of the process (kill -9), not necessarily a
// power loss. Each body is framed by its length (uint32 LE), so the file can be read back.
//
// Usage: node bench/bare-durable.mjs PORT FILE
import { Buffer } from 'node:buffer'
import { closeSync, openSync, writevSync } from 'node:fs'
import { createServer } from 'node:http'

const [portArg, file] = process.argv.slice(2)
if (portArg === undefined || file === undefined) {
  console.error('usage: node bench/bare-durable.mjs PORT FILE')
  process.exit(2)
}

const maxGroupBytes = 16 << 20
const maxGroupAppends = 20_000
const fd = openSync(file, 'a')
/** Buffers to write (a length, a body, …) and the responses that wait for them. */
let buffers = []
let waiting = []
let queuedBytes = 0
let scheduled = false

function flush() {
  scheduled = false
  const writing = buffers
  const answering = waiting
  buffers = []
  waiting = []
  queuedBytes = 0
  // writev takes at most IOV_MAX (1024) buffers per call; Node splits larger lists itself.
  let left = writing.reduce((sum, b) => sum + b.length, 0)
  let from = writing
  while (left > 0) {
    const written = writevSync(fd, from)
    left -= written
    if (left > 0) from = rest(from, written)
  }
  for (const response of answering) {
    response.writeHead(201, { 'content-length': '0' })
    response.end()
  }
}

/** The buffers after the first `written` bytes (a short write). */
function rest(list, written) {
  const out = []
  for (const b of list) {
    if (written >= b.length) written -= b.length
    else {
      out.push(written > 0 ? b.subarray(written) : b)
      written = 0
    }
  }
  return out
}

function append(body, response) {
  const length = Buffer.allocUnsafe(4)
  length.writeUInt32LE(body.length, 0)
  buffers.push(length, body)
  waiting.push(response)
  queuedBytes += 4 + body.length
  if (queuedBytes >= maxGroupBytes || waiting.length >= maxGroupAppends) flush()
  else if (!scheduled) {
    scheduled = true
    setImmediate(() => setImmediate(flush))
  }
}

const server = createServer((request, response) => {
  const chunks = []
  request.on('data', (chunk) => chunks.push(chunk))
  request.on('end', () => {
    const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks)
    try {
      JSON.parse(body.toString('utf8'))
    } catch {
      response.writeHead(400, { 'content-length': '0' })
      response.end()
      return
    }
    append(body, response)
  })
})
server.listen(Number(portArg), '127.0.0.1', () => {
  console.log(`bare durable intake listening on http://127.0.0.1:${portArg}, appending to ${file}`)
})
const stop = () =>
  server.close(() => {
    if (buffers.length > 0) flush()
    closeSync(fd)
    process.exit(0)
  })
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
