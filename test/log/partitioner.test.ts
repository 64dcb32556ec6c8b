import assert from 'node:assert/strict'
import { test } from 'node:test'
import { kafkaPartition, murmur2, toPositive } from '../../src/log/index.ts'

// From Kafka's own test, UtilsTest.testMurmur2
// (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
const kafkaVectors: Array<[string, number]> = [
  ['21', -973932308],
  ['foobar', -790332482],
  ['a-little-bit-long-string', -985981536],
  ['a-little-bit-longer-string', -1486304829],
  ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
  ['abc', 479470107],
]

test("murmur2 gives Kafka's values for Kafka's test vectors", () => {
  for (const [input, expected] of kafkaVectors) assert.equal(murmur2(Buffer.from(input)), expected, input)
})

test('murmur2 covers every tail length and takes plain Uint8Arrays', () => {
  // Lengths 1 to 5 exercise the 0-3 byte tails; values from Java's Utils.murmur2, as pinned
  // by other Kafka-compatible clients.
  const pinned: Array<[string, number]> = [
    ['1', -1993445489],
    ['12', 126087238],
    ['123', -267702483],
    ['1234', -1614185708],
    ['12345', -1188365604],
  ]
  for (const [input, expected] of pinned) assert.equal(murmur2(new TextEncoder().encode(input)), expected, input)
})

test('kafkaPartition is toPositive(murmur2(utf8 key)) % partitions', () => {
  assert.equal(toPositive(-1), 0x7fffffff)
  assert.equal(toPositive(-2147483648), 0, 'unlike Math.abs')
  for (const [input, hash] of kafkaVectors) {
    for (const partitions of [1, 3, 7, 100]) {
      assert.equal(kafkaPartition(input, partitions), (hash & 0x7fffffff) % partitions)
      assert.equal(kafkaPartition(Buffer.from(input), partitions), kafkaPartition(input, partitions))
    }
  }
  assert.equal(kafkaPartition('ü', 1000), kafkaPartition(Buffer.from([0xc3, 0xbc]), 1000), 'strings hash as UTF-8')
})
