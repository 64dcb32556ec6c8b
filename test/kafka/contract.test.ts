import { openKafkaLog } from '../../src/log/kafka.ts'
import { contractPartitions, eventLogContract } from '../log/contract.ts'
import { kafkaBootstrap, kafkaSkipped } from './broker.ts'

if (kafkaSkipped === undefined) {
  const open = async () => openKafkaLog({ brokers: [await kafkaBootstrap()], defaultPartitions: contractPartitions, clientId: 'eventplane-contract' })
  eventLogContract('kafka', async () => ({
    log: await open(),
    reopen: open,
    cleanup: async () => {},
  }))
} else {
  const { test } = await import('node:test')
  test('EventLog contract: kafka', (t) => t.skip(kafkaSkipped))
}
