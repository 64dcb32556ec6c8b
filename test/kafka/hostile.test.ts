/**
 * The "safe to expose" issue on Kafka: a record Kafka itself refuses fails only its own event,
 * and a batch in one partition that cannot be decoded stops only that partition of an SSE
 * client, whose other partitions keep streaming.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { Admin } from '@platformatic/kafka'
import Fastify, { type FastifyBaseLogger } from 'fastify'
import { pino } from 'pino'
import { Registry } from 'prom-client'
import { stringify } from 'yaml'
import { consoleProduce } from '../../scripts/kafka/broker.ts'
import { installErrorHandling } from '../../src/core/http.ts'
import { kafkaPartition } from '../../src/log/index.ts'
import { openKafkaLog } from '../../src/log/kafka.ts'
import { openStreamConfig } from '../../src/streamconfig/index.ts'
import { parseSse, streamRoutes } from '../../src/streams/index.ts'
import { tempDir } from '../helpers.ts'
import { testPlatform } from '../intake/helpers.ts'
import { codes, post, testEvent, tests } from '../security/setup.ts'
import { kafkaBootstrap, kafkaSkipped } from './broker.ts'

const unique = (label: string) => `${label}-${process.pid}-${Date.now()}.`

describe('hostile input on Kafka', { skip: kafkaSkipped }, () => {
  test('an event a topic made elsewhere refuses (a smaller max.message.bytes) fails alone; its neighbours are appended (the batch failed)', async () => {
    const brokers = [await kafkaBootstrap()]
    const namespace = unique('refusal')
    const admin = new Admin({ clientId: 'eventplane-test', bootstrapBrokers: brokers })
    try {
      await admin.createTopics({ topics: [`${namespace}datacenter1.test.event`], partitions: 1, replicas: 1, configs: [{ name: 'max.message.bytes', value: '3000' }] })
    } finally {
      await admin.close()
    }
    const t = await testPlatform({ event_log: { backend: 'kafka', kafka: { brokers, topic_namespace: namespace, request_timeout_ms: 5000 } } })
    try {
      const response = await post(t.app, [testEvent('small 1'), testEvent('x'.repeat(4000)), testEvent('small 2')])
      assert.equal(response.statusCode, 207, response.body)
      assert.deepEqual(codes(response.json()), ['EVP_LOG_INVALID_ARGUMENT'])
      assert.equal(response.json().invalid[0].index, 1)
      assert.deepEqual((await tests(t)).sort(), ['small 1', 'small 2'])
    } finally {
      await t.close()
    }
  })

  test('an SSE client over two partitions gets an error event for the one holding an undecodable batch, and keeps getting the other', async () => {
    const brokers = [await kafkaBootstrap()]
    const namespace = unique('undecodable')
    const topic = 'datacenter1.test.event'
    // A log that cannot read snappy (a test hook): Java's snappy batches are undecodable to it.
    const log = await openKafkaLog({ brokers, topicNamespace: namespace, defaultPartitions: 2, unsupportedCodecs: ['snappy'] })
    const dir = tempDir()
    const source = join(dir, 'streams.yaml')
    writeFileSync(source, stringify({ defaults: { topic_prefixes: ['datacenter1.'] }, streams: { 'test.event': { schema_title: 'eventplane/test/event' } } }))
    const logger = pino({ level: 'silent' })
    const streamConfig = await openStreamConfig({ source, watch: false, logger, registry: new Registry() })
    const app = Fastify({ loggerInstance: logger as FastifyBaseLogger })
    const controller = new AbortController()
    try {
      installErrorHandling(app)
      await app.register(streamRoutes, { log, streamConfig, logger })
      const url = await app.listen({ host: '127.0.0.1', port: 0 })
      assert.equal(await log.partitions(topic), 2)
      // Keys that land in partition 0, written by Kafka's Java console producer with snappy.
      const keys: string[] = []
      for (let i = 0; keys.length < 3; i++) if (kafkaPartition(`k${i}`, 2) === 0) keys.push(`k${i}`)
      const event = (test: string) => JSON.stringify(testEvent(test))
      await consoleProduce({ bootstrap: brokers[0]!, topic: `${namespace}${topic}`, compression: 'snappy', lines: keys.map((key) => `${key}\t${event(`snappy ${key}`)}`) })
      await log.append([{ topic, partition: 1, value: event('healthy before') }])

      const response = await fetch(`${url}/v2/stream/test.event?since=0`, { signal: controller.signal, headers: { accept: 'text/event-stream' } })
      assert.equal(response.status, 200)
      const seen: Array<{ event: string; data: string }> = []
      const reading = (async () => {
        for await (const message of parseSse(response.body!)) {
          seen.push({ event: message.event, data: message.data })
        }
      })().catch(() => {})
      const until = async (check: () => boolean, what: string) => {
        const deadline = Date.now() + 10_000
        while (!check()) {
          if (Date.now() > deadline) assert.fail(`${what} within 10 s; seen: ${JSON.stringify(seen).slice(0, 1000)}`)
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
      }
      await until(() => seen.some((m) => m.event === 'error') && seen.some((m) => m.data.includes('healthy before')), 'an error event and the healthy partition')
      const error = JSON.parse(seen.find((m) => m.event === 'error')!.data) as { code: string; details: { topic: string; partition: number; offset: number } }
      assert.equal(error.code, 'EVP_LOG_RECORD_UNDECODABLE')
      assert.equal(error.details.partition, 0)
      assert.equal(error.details.offset, 0)
      assert.ok(!seen.some((m) => m.data.includes('snappy k')), 'nothing of the undecodable batch')
      // The stream is still open: a record appended to the healthy partition afterwards arrives.
      await log.append([{ topic, partition: 1, value: event('healthy after') }])
      await until(() => seen.some((m) => m.data.includes('healthy after')), 'the record appended after the error')
      controller.abort()
      await reading
    } finally {
      controller.abort()
      await app.close()
      await streamConfig.close()
      await log.close()
    }
  })
})
