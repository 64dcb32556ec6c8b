/**
 * producer: events/s that @eventplane/client's Producer gets into a local intake, against a raw
 * `fetch` loop posting the same batches with the same concurrency, alternating in the same run
 * against the same server. What it measures is the producer's own cost (batching, per-event
 * results, meta.ids), which the target says must stay under 10 %.
 */
import { randomUUID } from 'node:crypto'
import { Producer } from '../packages/client/src/producer.ts'
import { cpuSeconds, fixed, freePort, inTempDir, machineNotes, median, parseFlags, positiveInt, saveResults, serveArgs, serverEnv, spawnPinned, table, thousands, track, waitUntilAnswering, writeBundledConfig } from './lib.ts'

export const usage = `npm run bench -- producer [--rounds N] [--events N] [--batch N] [--in-flight N]

Starts eventplane serve (the embedded log, event_log.sync normal) on core 0 and, from this
process, sends --events events (default 500,000) of eventplane/test/event in batches of --batch (1,000)
with --in-flight (4) requests at once: once through a raw fetch loop, once through
@eventplane/client's Producer, alternating for --rounds (5) pairs. Prints events/s of each and
the ratio Producer/raw (target ≥ 0.9).`

export function prepare(args: string[]): () => Promise<number> {
  const values = parseFlags(args, { rounds: { type: 'string' }, events: { type: 'string' }, batch: { type: 'string' }, 'in-flight': { type: 'string' } })
  const rounds = positiveInt(values.rounds, 'rounds', 5)
  const total = positiveInt(values.events, 'events', 500_000)
  const batch = positiveInt(values.batch, 'batch', 1000)
  const inFlight = positiveInt(values['in-flight'], 'in-flight', 4)
  return () =>
    inTempDir('producer', async (dir) => {
      console.log(machineNotes('server on core 0; the raw loop and the Producer in this process, on core 1'))
      console.log(`\n${thousands(total)} events per run in batches of ${batch}, ${inFlight} requests at once, ${rounds} rounds\n`)
      const { configFile } = writeBundledConfig(dir)
      const port = await freePort()
      const server = track(spawnPinned(0, process.execPath, [...serveArgs(), '--config', configFile, '--port', String(port)], { env: serverEnv(), stdio: 'ignore' }))
      const url = `http://127.0.0.1:${port}`
      await waitUntilAnswering(server, `${url}/healthz`, 'eventplane serve')
      const event = (i: number) => ({ $schema: '/eventplane/test/event/1.0.0', meta: { stream: 'test.event' }, test: `producer bench ${i}` })

      interface Run { rate: number; clientCpu: number; serverCpu: number }
      /** events/s and CPU seconds of this process and of the server during `work`. */
      async function measure(work: () => Promise<void>): Promise<Run> {
        const cpu = process.cpuUsage()
        const serverCpu = cpuSeconds(server.pid!)
        const started = performance.now()
        await work()
        const seconds = (performance.now() - started) / 1000
        const used = process.cpuUsage(cpu)
        return { rate: total / seconds, clientCpu: (used.user + used.system) / 1e6, serverCpu: cpuSeconds(server.pid!) - serverCpu }
      }

      async function raw(): Promise<Run> {
        let next = 0
        let failures = 0
        const worker = async () => {
          while (next < total) {
            const from = next
            next = Math.min(total, next + batch)
            const events = []
            for (let i = from; i < next; i++) events.push({ ...event(i), meta: { stream: 'test.event', id: randomUUID() } })
            const response = await fetch(`${url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(events) })
            await response.arrayBuffer()
            if (response.status !== 201) failures++
          }
        }
        const run = await measure(async () => {
          await Promise.all(Array.from({ length: inFlight }, worker))
        })
        if (failures > 0) throw new Error(`the raw loop got ${failures} answers that were not 201`)
        return run
      }

      async function producer(): Promise<Run> {
        const p = new Producer({ url, maxBatchEvents: batch, maxInFlight: inFlight, lingerMs: 0 })
        let accepted = 0
        const run = await measure(async () => {
          const sends = []
          for (let from = 0; from < total; from += batch) {
            const events = []
            for (let i = from; i < Math.min(total, from + batch); i++) events.push(event(i))
            sends.push(p.send(events))
          }
          const results = await Promise.all(sends)
          await p.close()
          accepted = results.reduce((n, r) => n + r.accepted.length, 0)
        })
        if (accepted !== total) throw new Error(`the producer got ${accepted} of ${total} events accepted: ${JSON.stringify(p.stats)}`)
        return run
      }

      await raw() // warm-up, both paths
      await producer()
      const rows: string[][] = []
      const ratios: number[] = []
      const measured: Array<{ raw: Run; producer: Run }> = []
      const perK = (cpu: number) => fixed((cpu * 1000) / (total / 1000), 2)
      for (let round = 1; round <= rounds; round++) {
        // Alternating which goes first, so neither always meets a fresher server.
        const first = round % 2 === 1 ? await raw() : await producer()
        const second = round % 2 === 1 ? await producer() : await raw()
        const r = round % 2 === 1 ? { raw: first, producer: second } : { raw: second, producer: first }
        measured.push(r)
        ratios.push(r.producer.rate / r.raw.rate)
        rows.push([
          String(round),
          thousands(Math.round(r.raw.rate)),
          thousands(Math.round(r.producer.rate)),
          (r.producer.rate / r.raw.rate).toFixed(3),
          `${perK(r.raw.clientCpu)} / ${perK(r.producer.clientCpu)}`,
          `${perK(r.raw.serverCpu)} / ${perK(r.producer.serverCpu)}`,
        ])
      }
      console.log(table(['round', 'raw fetch events/s', 'Producer events/s', 'ratio', 'client CPU ms/1k raw / Producer', 'server CPU ms/1k raw / Producer'], rows))
      const ratio = median(ratios)
      console.log(`\nmedian ratio Producer/raw ${ratio.toFixed(3)}; target ≥ 0.9: ${ratio >= 0.9 ? 'met' : 'NOT MET'}`)
      console.log(`results: ${saveResults('producer', { total, batch, inFlight, rounds: measured })}`)
      return ratio >= 0.9 ? 0 : 1
    })
}
