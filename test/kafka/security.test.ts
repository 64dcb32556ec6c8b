/** A broker that requires SASL/PLAIN: the log and the server authenticate, and say clearly when they cannot. */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import type { KafkaBroker } from '../../scripts/kafka/broker.ts'
import { openKafkaLog } from '../../src/log/kafka.ts'
import { cli, spawnServer, tempDir } from '../helpers.ts'
import { readAll } from '../log/contract.ts'
import { testEvent } from '../streams/helpers.ts'
import { kafkaServerConfig, kafkaSkipped, privateKafka } from './broker.ts'

const user = { username: 'eventplane', password: 's3cret-pw' }

describe('Kafka with SASL/PLAIN', { skip: kafkaSkipped }, () => {
  let kafka: KafkaBroker
  before(async () => {
    kafka = await privateKafka({ partitions: 1, sasl: user })
  })
  after(() => kafka?.stop())

  test('the log authenticates with the right password and appends and reads', async () => {
    const log = await openKafkaLog({ brokers: [kafka.bootstrap], sasl: { mechanism: 'PLAIN', ...user } })
    try {
      await log.append([{ topic: 'secure.topic', value: 'hello' }])
      assert.deepEqual((await readAll(log, { topic: 'secure.topic', partition: 0, offset: 0 })).map((r) => r.value.toString()), ['hello'])
    } finally {
      await log.close()
    }
  })

  test('a wrong password, or none, fails the open with EVP_LOG_UNAVAILABLE within seconds', async () => {
    for (const sasl of [{ mechanism: 'PLAIN' as const, username: user.username, password: 'wrong' }, undefined]) {
      const started = Date.now()
      await assert.rejects(openKafkaLog({ brokers: [kafka.bootstrap], retries: 1, requestTimeoutMs: 2000, ...(sasl ? { sasl } : {}) }), (error: Error & { code?: string }) => {
        assert.equal(error.code, 'EVP_LOG_UNAVAILABLE', error.message)
        assert.match(error.message, /cannot reach Kafka/)
        return true
      })
      assert.ok(Date.now() - started < 20_000, `gave up after ${Date.now() - started} ms`)
    }
  })

  test('eventplane serve reads the password from the environment variable the config names, and refuses to start without it', async () => {
    const dir = tempDir()
    const config = kafkaServerConfig(dir, { brokers: [kafka.bootstrap], sasl: { mechanism: 'PLAIN', username: user.username, password_env: 'TEST_KAFKA_SECRET' } })
    const refused = await cli(['serve', '--config', config, '--port', '0'], { env: {} })
    assert.notEqual(refused.code, 0)
    assert.match(refused.stderr, /TEST_KAFKA_SECRET, which is not set/)
    const server = await spawnServer(['--config', config], { TEST_KAFKA_SECRET: user.password })
    try {
      const response = await fetch(`${server.url}/v1/events`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(testEvent('secure')) })
      assert.equal(response.status, 201, await response.text())
    } finally {
      server.child.kill('SIGTERM')
    }
  })
})
