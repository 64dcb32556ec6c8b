/**
 * Broker failover on a real 3-node cluster, under light load (test/kafka/failover.ts runs each
 * scenario; `npm run bench -- failover` runs them longer and heavier): no acknowledged event is
 * lost, a producer that sends every retryable answer again ends with each event streamed once,
 * answers come within the append deadline, /readyz follows the cluster's ability to take
 * writes, and streams of healthy partitions keep their latency.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { startKafkaCluster, type KafkaCluster } from '../../scripts/kafka/broker.ts'
import { tempDir } from '../helpers.ts'
import { kafkaSkipped } from './broker.ts'
import { resultRows, runFailover, type FailoverResult, type Scenario } from './failover.ts'

const appendDeadlineMs = 3000
const retryableCodes = new Set(['HTTP 503', 'HTTP 207', 'EVP_LOG_NOT_WRITTEN', 'EVP_LOG_OUTCOME_UNKNOWN'])

describe('broker failover on a 3-node cluster', { skip: kafkaSkipped, timeout: 600_000 }, () => {
  let cluster: KafkaCluster | undefined
  const dir = tempDir()
  before(async () => {
    // At normal priority (unlike the bench): with another test file loading both cores, Kafka
    // at nice 10 could not fence a killed leader for the whole outage (a CI run: 19.6 s without
    // a 201). The intake's answer times here are bounded loosely for the opposite reason.
    cluster = await startKafkaCluster({ brokers: 3, quiet: true })
  })
  after(async () => {
    await cluster?.stop()
  })

  const run = async (scenario: Scenario): Promise<FailoverResult> => {
    const result = await runFailover({ cluster: cluster!, scenario, dir, rate: 40, producers: 4, beforeS: 3, outageS: 7, afterS: 4, appendDeadlineMs })
    console.log(`${scenario}\n${resultRows(result).map((row) => `  ${row.join(' | ')}`).join('\n')}`)
    return result
  }

  const common = (r: FailoverResult) => {
    assert.ok(r.acknowledged > 100, `${r.acknowledged} events acknowledged`)
    assert.equal(r.lost, 0, 'no acknowledged event is missing from Kafka')
    assert.equal(r.notStreamed, 0, `every acknowledged event was streamed: ${r.notStreamedDetail.join('; ')}`)
    assert.equal(r.duplicatesSeen, 0, 'the consumer got each event once, though the producer sent unconfirmed ones again')
    for (const code of Object.keys(r.non201)) assert.ok(retryableCodes.has(code), `every non-201 answer is a retryable 503 or 207, not ${code}`)
    // The target is the deadline + 1 s, which `npm run bench -- failover` checks. Here the
    // servers share 2 cores with this test, another test file and 4 JVMs, two of which restart
    // at once in two-down and take the cores from the intakes (each JVM leads a scheduler
    // autogroup of its own: docs/decisions.md, "Broker failover"): answers came up to 4.6 s past
    // the deadline in a CI run. The bound here still fails the behaviour this replaced (4
    // attempts of a 10 s request timeout, 41.7 s).
    assert.ok(r.p99AnswerMs < appendDeadlineMs + 5000, `p99 time to an answer ${r.p99AnswerMs} ms < the deadline + 5 s; ${r.lateAnswers.count} over the deadline + 1 s, sent at ${r.lateAnswers.sentAt.join(', ')} ms from the fault, while /healthz took up to ${r.lateAnswers.slowestHealthzMs} ms`)
    assert.ok(r.maxAnswerMs < appendDeadlineMs + 10_000, `longest time to an answer ${r.maxAnswerMs} ms`)
  }

  test('the leader of a partition is killed: nothing lost, nothing twice, healthy partitions stream as fast as before', async () => {
    const r = await run('leader-kill')
    common(r)
    assert.ok(r.healthyPartitions.length > 0, 'some partition had its leader elsewhere')
    assert.ok(r.sseBeforeP99Ms !== undefined && r.sseOutageP99Ms !== undefined, 'latencies were measured before and during the outage')
    assert.ok(r.sseOutageP99Ms! <= 2 * Math.max(0, r.sseBeforeP99Ms!) + 250, `SSE p99 from the 201 on healthy partitions during the outage ${r.sseOutageP99Ms} ms, before ${r.sseBeforeP99Ms} ms`)
  })

  test('2 of 3 brokers are killed and come back: writes stop with clear answers, /readyz says so both ways', async () => {
    const r = await run('two-down')
    common(r)
    assert.ok((r.non201['EVP_LOG_NOT_WRITTEN'] ?? 0) + (r.non201['EVP_LOG_OUTCOME_UNKNOWN'] ?? 0) > 0, 'events were refused while no write was possible')
    assert.ok(r.readyDownMs !== undefined, 'the intake said it was not ready while no write was possible')
    assert.ok(r.readyDownMs! < 10_000, `not ready ${r.readyDownMs} ms after the fault`)
    assert.ok(r.readyUpMs !== undefined && r.readyUpMs < 15_000, `ready again ${r.readyUpMs} ms after the brokers were back`)
  })
})
