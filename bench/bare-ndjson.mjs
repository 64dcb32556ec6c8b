// The "bare" baseline for bench/pipe.ts: reads an NDJSON file line by line (node:readline over
// fs.createReadStream) and JSON.parses each line, nothing else: the most a Node process does
// with line-delimited JSON, which `eventplane pipe` is measured against. Prints the number of
// lines that parsed to JSON objects, so the benchmark can check that it read them all.
//
// Usage: node bench/bare-ndjson.mjs FILE
import { createReadStream } from 'node:fs'
import { createInterface } from 'node:readline'

const path = process.argv[2]
if (path === undefined) {
  console.error('usage: node bench/bare-ndjson.mjs FILE')
  process.exit(2)
}

let objects = 0
for await (const line of createInterface({ input: createReadStream(path), crlfDelay: Infinity })) {
  // Counting the objects keeps the parse's result in use.
  const value = JSON.parse(line)
  if (typeof value === 'object' && value !== null) objects++
}
process.stdout.write(`${objects}\n`)
