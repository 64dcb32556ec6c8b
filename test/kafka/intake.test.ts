// The intake suites on Kafka: the same tests as test/intake/, with the event log on the test broker.
import { onKafka } from './broker.ts'

await onKafka('intake', [
  () => import('../intake/events.test.ts'),
  () => import('../intake/enrichment.test.ts'),
  () => import('../intake/bad-input.test.ts'),
  () => import('../intake/listener.test.ts'),
  () => import('../intake/durability.test.ts'),
])
