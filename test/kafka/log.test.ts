/** What only the Kafka event log has: topics that must exist, namespaces, an unreachable cluster. */
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { describe, test } from 'node:test'
import { kafkaPartition } from '../../src/log/index.ts'
import { openKafkaLog } from '../../src/log/kafka.ts'
import { readAll, rejectsWith } from '../log/contract.ts'
import { kafkaBootstrap, kafkaSkipped } from './broker.ts'

async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

const unique = (label: string) => `${label}-${process.pid}-${Date.now()}`

describe('the Kafka event log', { skip: kafkaSkipped }, () => {
  test('with create_topics false a missing topic is EVP_LOG_TOPIC_MISSING, and an existing one works', async () => {
    const brokers = [await kafkaBootstrap()]
    const ns = `${unique('strict')}.`
    const creating = await openKafkaLog({ brokers, topicNamespace: ns, defaultPartitions: 2 })
    const strict = await openKafkaLog({ brokers, topicNamespace: ns, createTopics: false })
    try {
      await rejectsWith(() => strict.append([{ topic: 'missing', value: 'x' }]), 'EVP_LOG_TOPIC_MISSING', 'append to a missing topic')
      await rejectsWith(() => strict.partitions('missing'), 'EVP_LOG_TOPIC_MISSING', 'partitions of a missing topic')
      assert.deepEqual(await creating.topics(), [], 'nothing was created')
      assert.equal(await creating.partitions('present'), 2)
      const [position] = await strict.append([{ topic: 'present', partition: 1, value: 'y' }])
      assert.deepEqual(position, { topic: 'present', partition: 1, offset: 0 })
    } finally {
      await Promise.all([creating.close(), strict.close()])
    }
  })

  test('a topic namespace hides other namespaces and gives back names without it', async () => {
    const brokers = [await kafkaBootstrap()]
    const [a, b] = [`${unique('ns-a')}.`, `${unique('ns-b')}.`]
    const logA = await openKafkaLog({ brokers, topicNamespace: a })
    const logB = await openKafkaLog({ brokers, topicNamespace: b })
    const plain = await openKafkaLog({ brokers })
    try {
      await logA.append([{ topic: 'shared.name', value: 'from a' }])
      await logB.append([{ topic: 'shared.name', value: 'from b' }, { topic: 'shared.name', value: 'again b' }])
      assert.deepEqual(await logA.topics(), ['shared.name'])
      assert.deepEqual((await readAll(logA, { topic: 'shared.name', partition: 0, offset: 0 })).map((r) => [r.topic, r.value.toString()]), [['shared.name', 'from a']])
      assert.equal(await logB.latest('shared.name', 0), 2)
      const all = await plain.topics()
      assert.ok(all.includes(`${a}shared.name`) && all.includes(`${b}shared.name`), 'in Kafka the names carry their namespace')
      await rejectsWith(() => logA.partitions(`x${'y'.repeat(248 - a.length)}z`), 'EVP_LOG_INVALID_ARGUMENT', 'a name too long with its namespace')
    } finally {
      await Promise.all([logA.close(), logB.close(), plain.close()])
    }
  })

  test('partitions added to a topic are noticed (after metadataMaxAgeMs), and keys then map over the new count', async () => {
    const { Admin } = await import('@platformatic/kafka')
    const brokers = [await kafkaBootstrap()]
    const ns = `${unique('grow')}.`
    const log = await openKafkaLog({ brokers, topicNamespace: ns, defaultPartitions: 1, metadataMaxAgeMs: 200 })
    const admin = new Admin({ clientId: 'test', bootstrapBrokers: brokers })
    try {
      const keys = Array.from({ length: 20 }, (_, i) => `key-${i}`)
      const before = await log.append(keys.map((key) => ({ topic: 'grows', key, value: key })))
      assert.ok(before.every((p) => p.partition === 0))
      // No assignments (null on the wire): the controller places the new partitions.
      await admin.createPartitions({ topics: [{ name: `${ns}grows`, count: 4, assignments: null as unknown as [] }] })
      await until(async () => (await log.partitions('grows')) === 4)
      const after = await log.append(keys.map((key) => ({ topic: 'grows', key, value: key })))
      assert.deepEqual(
        after.map((p) => p.partition),
        keys.map((key) => kafkaPartition(key, 4)),
      )
      assert.ok(new Set(after.map((p) => p.partition)).size > 1)
    } finally {
      await Promise.all([log.close(), admin.close()])
    }
  })

  test('a cluster that does not answer fails the open with EVP_LOG_UNAVAILABLE naming the address', async () => {
    // A port that accepts nothing: bound, then closed.
    const server = createServer()
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    const port = (server.address() as { port: number }).port
    await new Promise((resolve) => server.close(resolve))
    const started = Date.now()
    await assert.rejects(openKafkaLog({ brokers: [`127.0.0.1:${port}`], retries: 1, requestTimeoutMs: 1000 }), (error: Error & { code?: string }) => {
      assert.equal(error.code, 'EVP_LOG_UNAVAILABLE')
      assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`))
      return true
    })
    assert.ok(Date.now() - started < 15_000, 'it gives up within seconds')
  })

  test('brokers that are not host:port are refused as configuration', async () => {
    await assert.rejects(openKafkaLog({ brokers: ['kafka1'] }), (error: Error & { code?: string }) => error.code === 'EVP_CONFIG_INVALID' && /host:port/.test(error.message))
    await assert.rejects(openKafkaLog({ brokers: [] }), (error: Error & { code?: string }) => error.code === 'EVP_CONFIG_INVALID')
  })
})

describe('eventplane log tail on Kafka', { skip: kafkaSkipped }, () => {
  test('reads a topic of the Kafka log the config names, and names the topics when one is missing', async () => {
    const { writeFileSync } = await import('node:fs')
    const { join } = await import('node:path')
    const { cli, tempDir } = await import('../helpers.ts')
    const brokers = [await kafkaBootstrap()]
    const namespace = `${unique('cli')}.`
    const log = await openKafkaLog({ brokers, topicNamespace: namespace })
    try {
      await log.append([{ topic: 'dc1.cli.event', value: '{"n":1}' }, { topic: 'dc1.cli.event', value: '{"n":2}' }])
    } finally {
      await log.close()
    }
    const dir = tempDir()
    const config = join(dir, 'eventplane.yaml')
    writeFileSync(config, `data_dir: ${join(dir, 'data')}\nevent_log:\n  backend: kafka\n  kafka:\n    brokers: [${brokers[0]}]\n    topic_namespace: ${namespace}\n`)
    const tail = await cli(['log', 'tail', 'dc1.cli.event', '--from-beginning', '--no-follow', '--config', config])
    assert.equal(tail.code, 0, tail.stderr)
    assert.deepEqual(tail.stdout.trim().split('\n'), ['{"n":1}', '{"n":2}'])
    assert.match(tail.stderr, new RegExp(`^reading dc1\\.cli\\.event \\(\\d+ partitions?\\) from Kafka at ${brokers[0]} \\(config: .*eventplane\\.yaml\\)$`, 'm'))
    const missing = await cli(['log', 'tail', 'dc1.other', '--no-follow', '--config', config])
    assert.notEqual(missing.code, 0)
    assert.match(missing.stderr, /no topic dc1\.other .*dc1\.cli\.event/)
  })
})
