import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { test } from 'node:test'
import { clusterId, main } from '../../scripts/kafka/broker.ts'
import { kafkaSkipped, privateKafka } from './broker.ts'

const accepts = (hostPort: string) =>
  new Promise<boolean>((resolve) => {
    const [host, port] = hostPort.split(':')
    const socket = connect(Number(port), host!)
    socket.once('connect', () => (socket.destroy(), resolve(true)))
    socket.once('error', () => resolve(false))
  })

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

test('scripts/kafka/broker.ts starts a real broker on a free loopback port, and stop removes it and its folder', { skip: kafkaSkipped }, async () => {
  const kafka = await privateKafka()
  assert.match(kafka.bootstrap, /^127\.0\.0\.1:\d+$/)
  assert.ok(await accepts(kafka.bootstrap), 'the broker accepts connections once startKafka resolves')
  const cmdline = readFileSync(`/proc/${kafka.pid}/cmdline`, 'utf8').split('\0')
  assert.ok(cmdline.includes('kafka.Kafka'), `pid ${kafka.pid} is the Kafka broker`)
  const config = cmdline[cmdline.length - 2]!
  assert.ok(existsSync(config), 'its server.properties is in a temp folder')
  assert.match(readFileSync(config, 'utf8'), /process\.roles=broker,controller/)
  await kafka.stop()
  assert.equal(alive(kafka.pid), false, 'stop ends the JVM')
  assert.equal(existsSync(config), false, 'stop removes the temp folder')
  assert.equal(await accepts(kafka.bootstrap), false, 'nothing listens there any more')
  await kafka.stop()
})

test('cluster ids look like Kafka\'s (22 characters of base64url, never a leading dash)', () => {
  for (let i = 0; i < 200; i++) assert.match(clusterId(), /^[A-Za-z0-9_][A-Za-z0-9_-]{21}$/)
})

test('the broker CLI refuses bad arguments with exit 2 and a usage', async () => {
  const errors: string[] = []
  const write = process.stderr.write.bind(process.stderr)
  process.stderr.write = ((chunk: string) => (errors.push(String(chunk)), true)) as typeof process.stderr.write
  try {
    assert.equal(await main(['start', '--partitions', 'zero']), 2)
    assert.equal(await main(['launch']), 2)
    assert.equal(await main(['fetch', '--quiet']), 2)
  } finally {
    process.stderr.write = write
  }
  assert.match(errors.join(''), /--partitions must be a positive integer/)
  assert.match(errors.join(''), /unknown command "launch"/)
  assert.match(errors.join(''), /Usage: npm run kafka -- <command>/)
})
