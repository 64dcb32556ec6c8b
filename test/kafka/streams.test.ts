// The streams suites on Kafka: the same tests as test/streams/, with the event log on the test broker.
import { onKafka } from './broker.ts'

await onKafka('streams', [() => import('../streams/sse.test.ts'), () => import('../streams/resume-errors.test.ts'), () => import('../streams/tail.test.ts')])
