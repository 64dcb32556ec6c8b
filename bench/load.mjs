// Load generator for the HTTP benchmarks: autocannon through its API, in its own process
// (the parent pins it to a core with taskset). It runs a warm-up, then the measured run, and
// tells the parent over IPC when the measured window opens and closes, so that the parent can
// read the server's CPU time at exactly those moments.
//
// Usage (with an IPC channel): node bench/load.mjs URL CONNECTIONS WARMUP_S DURATION_S [REQUEST_JSON]
//   REQUEST_JSON (optional, default a GET): {"method":"POST","bodyFile":"/path","headers":{"content-type":"application/json"}}
//   The body file is read once, before any request, and every request sends the same bytes.
// Messages sent: {type:'warmup-done', result}, {type:'measure-start'}, {type:'measure-end', result}
import { readFileSync } from 'node:fs'
import autocannon from 'autocannon'

const [url, connectionsArg, warmupArg, durationArg, requestArg] = process.argv.slice(2)
if (url === undefined || process.send === undefined) {
  console.error('usage: node bench/load.mjs URL CONNECTIONS WARMUP_S DURATION_S [REQUEST_JSON] (spawned with an IPC channel)')
  process.exit(2)
}
const connections = Number(connectionsArg ?? 10)
const warmup = Number(warmupArg ?? 5)
const duration = Number(durationArg ?? 15)
const request = requestArg === undefined ? {} : JSON.parse(requestArg)
const requestOptions = {
  ...(request.method !== undefined ? { method: request.method } : {}),
  ...(request.headers !== undefined ? { headers: request.headers } : {}),
  ...(request.bodyFile !== undefined ? { body: readFileSync(request.bodyFile) } : {}),
}

// autocannon keeps latencies in whole milliseconds, and a fast server answers in a fraction of
// one, so the percentiles reported are taken from this histogram of the response times it
// measures (10 µs buckets up to 1 s).
const bucketMs = 0.01
const histogram = new Float64Array(100_000)
let recording = false
function record(_client, _statusCode, _bytes, responseTime) {
  if (recording) histogram[Math.min(Math.floor(responseTime / bucketMs), histogram.length - 1)]++
}
function percentile(p) {
  const total = histogram.reduce((a, b) => a + b, 0)
  let seen = 0
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i]
    if (seen >= total * p) return (i + 1) * bucketMs
  }
  return NaN
}

/** One autocannon run; resolves with its result. `onStart` fires when the clients are open. */
function run(seconds, onStart) {
  return new Promise((resolve, reject) => {
    const instance = autocannon({ url, connections, duration: seconds, pipelining: 1, ...requestOptions }, (error, result) =>
      error ? reject(error) : resolve(result),
    )
    instance.on('response', record)
    if (onStart !== undefined) instance.once('start', onStart)
  })
}

const send = (message) => new Promise((resolve) => process.send(message, () => resolve()))
const summary = (r) => ({
  requestsPerSecond: r.requests.average,
  requestsTotal: r.requests.total,
  // Upper bounds of the 10 µs buckets holding the 50th and 99th percentile, in ms.
  latencyP50: percentile(0.5),
  latencyP99: percentile(0.99),
  // autocannon's own figures, in whole ms.
  autocannonP50: r.latency.p50,
  autocannonP99: r.latency.p99,
  latencyAverage: r.latency.average,
  bytesPerSecond: r.throughput.average,
  errors: r.errors,
  timeouts: r.timeouts,
  non2xx: r.non2xx,
  // Responses with a 2xx status (for an intake: requests whose events were acknowledged).
  responses2xx: r['2xx'],
  // Responses by status code, e.g. {"201": 1234}.
  statusCodes: Object.fromEntries(Object.entries(r.statusCodeStats ?? {}).map(([code, s]) => [code, s.count])),
  duration: r.duration,
})

if (warmup > 0) await send({ type: 'warmup-done', result: summary(await run(warmup)) })
histogram.fill(0)
const measured = await run(duration, () => {
  recording = true
  void send({ type: 'measure-start' })
})
recording = false
await send({ type: 'measure-end', result: summary(measured) })
process.disconnect()
