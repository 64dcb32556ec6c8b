/**
 * failover: the intake and streams on a real 3-node Kafka cluster while brokers fail, per
 * scenario (a leader killed, a leader shut down, 2 of 3 brokers killed): what was
 * acknowledged, what is in Kafka, what was lost, what the consumer got twice, how answers and
 * /readyz behaved, and SSE latency on the partitions that stayed healthy. The scenarios are
 * test/kafka/failover.ts's, as test/kafka/failover.test.ts runs them briefly in `npm test`.
 * Not a throughput benchmark: the load is steady and the numbers are about correctness and time.
 */
import { startKafkaCluster } from '../scripts/kafka/broker.ts'
import { resultRows, runFailover, scenarios, type FailoverResult, type Scenario } from '../test/kafka/failover.ts'
import { inTempDir, machineNotes, parseFlags, positiveInt, saveResults, table, track, UsageError } from './lib.ts'

export const usage = `npm run bench -- failover [--scenarios LIST] [--rate N] [--batch N] [--producers N] [--warmup S] [--before S] [--outage S] [--after S] [--deadline MS]

Starts a 3-node Kafka cluster (KRaft, every node broker and controller, topics with 3
partitions, 3 replicas, min.insync.replicas 2; the nodes' JVMs at nice 10, so that a node
starting does not take the cores from the processes measured, as on machines of their own),
2 intake processes and 1 streams process, and
runs each scenario under steady load: producers send every retryable answer again as answered
(same meta.id), an SSE client follows the stream, /readyz of an intake is polled every 200 ms.
Prints a table per scenario. Needs Java 17+ and Maven (see README).

  --scenarios LIST  ${Object.keys(scenarios).join(',')} (default all)
  --rate N          new events per second (default 400)
  --batch N         events per request (default 4)
  --producers N     concurrent producers (default 8)
  --warmup S        seconds of load before the measured part, not measured (default 15):
                    servers and brokers just started are slow for a while (JIT)
  --before S        seconds of load before the fault, the baseline (default 10)
  --outage S        seconds the brokers stay down (default 20)
  --after S         seconds of load after they are back (default 15)
  --deadline MS     event_log.kafka.append_deadline_ms (default 5000, the default of the setting)`

export function prepare(args: string[]): () => Promise<number> {
  const values = parseFlags(args, {
    scenarios: { type: 'string' },
    rate: { type: 'string' },
    batch: { type: 'string' },
    producers: { type: 'string' },
    warmup: { type: 'string' },
    before: { type: 'string' },
    outage: { type: 'string' },
    after: { type: 'string' },
    deadline: { type: 'string' },
  })
  const chosen = (values.scenarios ?? Object.keys(scenarios).join(',')).split(',').map((s) => s.trim())
  for (const name of chosen) if (!(name in scenarios)) throw new UsageError(`--scenarios: unknown scenario ${JSON.stringify(name)}; known: ${Object.keys(scenarios).join(', ')}`)
  const options = {
    rate: positiveInt(values.rate, 'rate', 400),
    batch: positiveInt(values.batch, 'batch', 4),
    producers: positiveInt(values.producers, 'producers', 8),
    warmupS: positiveInt(values.warmup, 'warmup', 15),
    beforeS: positiveInt(values.before, 'before', 10),
    outageS: positiveInt(values.outage, 'outage', 20),
    afterS: positiveInt(values.after, 'after', 15),
    appendDeadlineMs: positiveInt(values.deadline, 'deadline', 5000),
  }
  return () =>
    inTempDir('failover', async (dir) => {
      console.log(machineNotes('not used: servers, load generator and 3 Kafka nodes share both cores'))
      console.log(`\nload: ${options.rate} events/s in requests of ${options.batch} from ${options.producers} producers; ${options.warmupS} s of warm-up, ${options.beforeS} s before the fault, ${options.outageS} s of it, ${options.afterS} s after; append deadline ${options.appendDeadlineMs} ms\n`)
      const say = (line: string) => console.error(`  ${line}`)
      say('starting a 3-node Kafka cluster…')
      const cluster = await startKafkaCluster({ brokers: 3, quiet: true, nice: 10 })
      const results: FailoverResult[] = []
      let failed = false
      try {
        for (const scenario of chosen as Scenario[]) {
          const result = await runFailover({ cluster, scenario, dir, ...options, say, track })
          results.push(result)
          console.log(`### ${scenario}: ${scenarios[scenario]}\n\n${table(['', 'measured', 'target'], resultRows(result), [false, true, true])}\n`)
          const missed = [
            result.lost > 0 && 'events were lost',
            result.duplicatesSeen > 0 && 'the consumer got duplicates',
            result.p99AnswerMs >= result.appendDeadlineMs + 1000 && 'p99 time to an answer is over the deadline + 1 s',
            result.sseBeforeP99Ms !== undefined && result.sseOutageP99Ms !== undefined && result.sseOutageP99Ms > 2 * Math.max(result.sseBeforeP99Ms, 1) && 'healthy partitions were more than 2× slower',
          ].filter(Boolean)
          if (missed.length > 0) {
            failed = true
            console.log(`**Missed: ${missed.join('; ')}.**\n`)
          }
        }
      } finally {
        await cluster.stop()
      }
      console.log(`results: ${saveResults('failover', { options, results })}`)
      return failed ? 1 : 0
    })
}
