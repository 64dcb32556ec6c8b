// The "bare" baseline for bench/schema-get.ts: a plain node:http server that answers every
// request with the same bytes and headers as one real response of the schema service. No
// routing, no parsing, no logging: the ceiling for a Node HTTP responder on one core.
//
// Usage: node bench/bare-server.mjs PORT BODY_FILE HEADERS_JSON
//   HEADERS_JSON: e.g. '{"content-type":"application/yaml; charset=utf-8","etag":"\"…\""}'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'

const [portArg, bodyFile, headersJson] = process.argv.slice(2)
if (portArg === undefined || bodyFile === undefined || headersJson === undefined) {
  console.error('usage: node bench/bare-server.mjs PORT BODY_FILE HEADERS_JSON')
  process.exit(2)
}
const body = readFileSync(bodyFile)
const headers = { ...JSON.parse(headersJson), 'content-length': String(body.length) }

const server = createServer((request, response) => {
  // Drain the (empty) request body so keep-alive connections stay reusable.
  request.resume()
  response.writeHead(200, headers)
  response.end(body)
})
server.listen(Number(portArg), '127.0.0.1', () => {
  console.log(`bare server listening on http://127.0.0.1:${portArg}`)
})
const stop = () => server.close(() => process.exit(0))
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
