// The "bare" baseline for bench/intake.ts: a plain node:http server that reads the request body,
// JSON.parses it and answers 201 with an empty body (400 when it does not parse). No routing,
// no validation, no storage, no logging: the most a Node process can take in over HTTP + JSON
// on one core, which is what the intake is measured against.
//
// Usage: node bench/bare-intake.mjs PORT
import { Buffer } from 'node:buffer'
import { createServer } from 'node:http'

const portArg = process.argv[2]
if (portArg === undefined) {
  console.error('usage: node bench/bare-intake.mjs PORT')
  process.exit(2)
}

const server = createServer((request, response) => {
  const chunks = []
  request.on('data', (chunk) => chunks.push(chunk))
  request.on('end', () => {
    let parsed = true
    try {
      JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      parsed = false
    }
    response.writeHead(parsed ? 201 : 400, { 'content-length': '0' })
    response.end()
  })
})
server.listen(Number(portArg), '127.0.0.1', () => {
  console.log(`bare intake listening on http://127.0.0.1:${portArg}`)
})
const stop = () => server.close(() => process.exit(0))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
