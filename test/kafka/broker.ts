/**
 * The Kafka broker the Kafka suites run against. `npm test` (scripts/test.mjs) starts one real
 * broker for the whole run and passes its address in EVENTPLANE_TEST_KAFKA; a Kafka test file
 * run on its own starts its own (stopped when the file's process ends). Without Java, outside
 * CI, scripts/test.mjs sets EVENTPLANE_TEST_KAFKA=skip and these suites skip, saying why.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { after } from 'node:test'
import { stringify } from 'yaml'
import { startKafka, type KafkaBroker } from '../../scripts/kafka/broker.ts'
import { bundledSchemas } from '../helpers.ts'

export const kafkaSkipped = process.env['EVENTPLANE_TEST_KAFKA'] === 'skip'
  ? 'Kafka suites skipped: no Java on this machine (apt-get install openjdk-17-jre-headless maven, then npm test)'
  : undefined

let own: Promise<KafkaBroker> | undefined
// Registered here, at the file's top level, so it runs once the whole test file is done: an
// after() registered inside the first test that asks for the broker would stop it after that
// test, and every later test of the file would find no broker.
after(async () => (await own)?.stop())

/** host:port of a broker whose new topics get 3 partitions unless told otherwise. */
export async function kafkaBootstrap(): Promise<string> {
  const shared = process.env['EVENTPLANE_TEST_KAFKA']
  if (shared !== undefined && shared !== '' && shared !== 'skip') return shared
  own ??= startKafka({ partitions: 3, quiet: true })
  return (await own).bootstrap
}

/** A broker of this test's own, for tests that stop and start it. */
export function privateKafka(
  options: { partitions?: number; logDir?: string; ports?: KafkaBroker['ports']; sasl?: { username: string; password: string }; advertisedPort?: number } = {},
): Promise<KafkaBroker> {
  return startKafka({ partitions: options.partitions ?? 3, quiet: true, ...options })
}

/** Runs suites written for the embedded log again on the test broker (or one skipping test saying why). */
export async function onKafka(name: string, suites: Array<() => Promise<unknown>>): Promise<void> {
  if (kafkaSkipped !== undefined) {
    const { test } = await import('node:test')
    test(`${name} on Kafka`, (t) => t.skip(kafkaSkipped))
    return
  }
  process.env['EVENTPLANE_TEST_BACKEND'] = 'kafka'
  for (const suite of suites) await suite()
}

/**
 * An eventplane.yaml in `dir` for a server on Kafka: the bundled schemas, test.event under the
 * datacenter1. prefix, and these event_log.kafka settings. Returns the file's path.
 */
export function kafkaServerConfig(dir: string, kafka: Record<string, unknown>, logLevel = 'warn'): string {
  const streams = join(dir, 'streams.yaml')
  writeFileSync(streams, stringify({ defaults: { topic_prefixes: ['datacenter1.'] }, streams: { 'test.event': { schema_title: 'eventplane/test/event' } } }))
  const config = join(dir, 'eventplane.yaml')
  writeFileSync(
    config,
    stringify({
      schemas: { repositories: [{ name: 'eventplane', path: bundledSchemas }] },
      stream_config: { source: streams, watch: false },
      data_dir: join(dir, 'data'),
      event_log: { backend: 'kafka', kafka },
      log: { level: logLevel },
    }),
  )
  return config
}
