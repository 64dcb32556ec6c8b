/**
 * A real three-node Kafka cluster (scripts/kafka/broker.ts startKafkaCluster): the leader of a
 * partition crashes (kill -9), its leadership moves, acks=all writes go on and lose nothing, and
 * the node comes back into the cluster and the ISR.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { Admin, Consumer, ProduceAcks, Producer, stringSerializers, type ClusterPartitionMetadata } from '@platformatic/kafka'
import { startKafkaCluster, type KafkaCluster } from '../../scripts/kafka/broker.ts'
import { kafkaSkipped } from './broker.ts'

const topic = `cluster-failover-${process.pid}-${Date.now()}`
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Metadata as `brokers` (and nobody else) see it now, from a fresh client, so no client cache is involved. */
async function metadata(brokers: string[], topics = [topic]): Promise<{ brokers: number[]; partitions: ClusterPartitionMetadata[] }> {
  const admin = new Admin({ clientId: 'cluster-test', bootstrapBrokers: brokers, retries: 0, timeout: 3000, connectTimeout: 2000 })
  try {
    const m = await admin.metadata({ topics, forceUpdate: true })
    return { brokers: [...m.brokers.keys()].sort(), partitions: m.topics.get(topic)?.partitions ?? [] }
  } finally {
    await admin.close()
  }
}

/** Polls `check` until it returns a value (not undefined); errors count as "not yet". Resolves with the value and the wait. */
async function until<T>(what: string, ms: number, check: () => Promise<T | undefined>): Promise<{ value: T; ms: number }> {
  const started = Date.now()
  let last: unknown
  for (;;) {
    try {
      const value = await check()
      if (value !== undefined) return { value, ms: Date.now() - started }
    } catch (error) {
      last = error
    }
    if (Date.now() - started > ms) assert.fail(`${what}: not within ${ms / 1000} s${last === undefined ? '' : ` (last error: ${(last as Error).message})`}`)
    await sleep(200)
  }
}

describe('a three-node Kafka cluster fails over when a leader is killed, and heals', { skip: kafkaSkipped, timeout: 240_000 }, () => {
  let cluster: KafkaCluster
  let producer: Producer<string, string, string, string>
  let written = 0
  let killed = 0
  let startSeconds = 0

  /** Writes `count` records to partition 0 with acks=all, as the event log does: after a failure, it asks again where the partition is. Resolves with the wait. */
  const write = async (count: number) => {
    const messages = Array.from({ length: count }, (_, i) => ({ topic, partition: 0, key: `k${written + i}`, value: `v${written + i}` }))
    const { value: result, ms } = await until(`an acks=all write of ${count} records to partition 0`, 15_000, async () => {
      try {
        return await producer.send({ messages })
      } catch (error) {
        producer.clearMetadata()
        throw error
      }
    })
    assert.equal(result.offsets?.length, 1, `acks=all answered with one offset for partition 0: ${JSON.stringify(result, (_, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`)
    written += count
    return ms
  }

  before(async () => {
    const started = Date.now()
    cluster = await startKafkaCluster({ brokers: 3, quiet: true })
    startSeconds = (Date.now() - started) / 1000
    producer = new Producer({ clientId: 'cluster-test', bootstrapBrokers: cluster.brokers, acks: ProduceAcks.ALL, idempotent: true, serializers: stringSerializers, retries: 2, retryDelay: 250 })
  })

  after(async () => {
    await producer?.close().catch(() => {})
    await cluster?.stop()
  })

  test('startKafkaCluster resolves with three nodes that each list all three brokers', async (t) => {
    t.diagnostic(`cluster of 3 ready in ${startSeconds.toFixed(1)} s`)
    assert.equal(cluster.nodes.length, 3, 'three nodes')
    assert.deepEqual(cluster.nodes.map((n) => n.id), [1, 2, 3], 'node ids 1 to 3')
    assert.equal(cluster.bootstrap, cluster.brokers.join(','), 'bootstrap is the brokers, comma-separated')
    for (const node of cluster.nodes) {
      assert.ok(node.running && node.pid !== undefined, `node ${node.id} runs`)
      assert.deepEqual((await metadata([node.bootstrap], [])).brokers, [1, 2, 3], `node ${node.id} lists every broker`)
    }
  })

  test('a topic of 3 partitions with 3 replicas takes acks=all writes', async () => {
    const admin = new Admin({ clientId: 'cluster-test', bootstrapBrokers: cluster.brokers })
    try {
      await admin.createTopics({ topics: [topic], partitions: 3, replicas: 3 })
    } finally {
      await admin.close()
    }
    const { value: partitions } = await until('every partition has a leader and 3 in-sync replicas', 15_000, async () => {
      const { partitions } = await metadata(cluster.brokers)
      return partitions.length === 3 && partitions.every((p) => p.leader > 0 && p.isr.length === 3) ? partitions : undefined
    })
    assert.deepEqual([...partitions[0]!.replicas].sort(), [1, 2, 3], 'partition 0 is on every node')
    await write(10)
  })

  test('kill -9 of the leader of partition 0 moves its leadership to another node within 15 s, and acks=all writes go on', async (t) => {
    killed = (await metadata(cluster.brokers)).partitions[0]!.leader
    const node = cluster.node(killed)
    const pid = node.pid!
    await node.kill('SIGKILL')
    assert.equal(node.running, false, 'the node no longer runs')
    assert.throws(() => process.kill(pid, 0), 'its JVM is gone')
    const survivors = cluster.nodes.filter((n) => n.id !== killed).map((n) => n.bootstrap)
    const moved = await until('another node leads partition 0', 15_000, async () => {
      const p0 = (await metadata(survivors)).partitions[0]
      return p0 !== undefined && p0.leader > 0 && p0.leader !== killed ? p0 : undefined
    })
    t.diagnostic(`leadership of partition 0 moved from node ${killed} to node ${moved.value.leader} in ${(moved.ms / 1000).toFixed(1)} s`)
    assert.ok(!moved.value.isr.includes(killed), `node ${killed} left the ISR (${moved.value.isr})`)
    const waited = await write(10)
    t.diagnostic(`the next acks=all write took ${(waited / 1000).toFixed(1)} s`)

    const consumer = new Consumer({ clientId: 'cluster-test', groupId: `cluster-test-${process.pid}`, bootstrapBrokers: survivors })
    try {
      const end = (await consumer.listOffsets({ topics: [topic], partitions: { [topic]: [0] } })).get(topic)![0]
      assert.ok(end !== undefined && end >= BigInt(written), `no acknowledged record was lost with the leader: ${written} acknowledged, partition 0 ends at ${end}`)
    } finally {
      await consumer.close()
    }
  })

  test('the killed node starts again, every node lists it, and it is back in the ISR of partition 0', async (t) => {
    const node = cluster.node(killed)
    const started = Date.now()
    await node.start()
    t.diagnostic(`node ${killed} served again after ${((Date.now() - started) / 1000).toFixed(1)} s`)
    assert.ok(node.running, 'it runs')
    for (const each of cluster.nodes) assert.deepEqual((await metadata([each.bootstrap])).brokers, [1, 2, 3], `node ${each.id} lists every broker`)
    const back = await until(`node ${killed} rejoins the ISR of partition 0`, 20_000, async () => {
      const p0 = (await metadata(cluster.brokers)).partitions[0]
      return p0?.isr.includes(killed) ? p0 : undefined
    })
    t.diagnostic(`back in the ISR ${(back.ms / 1000).toFixed(1)} s after start() resolved`)
    assert.equal(back.value.isr.length, 3, 'all three replicas are in sync')
    await write(5)
  })

  test('stop kills every node', async () => {
    const pids = cluster.nodes.map((n) => n.pid!)
    await cluster.stop()
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), `JVM ${pid} is gone`)
    assert.ok(cluster.nodes.every((n) => !n.running), 'no node runs')
  })
})
