// The console and its live tail on Kafka: the same Chromium suites as test/console/ and
// test/streams/, with the event log on the test broker (screenshots end in -kafka.png).
import { onKafka } from './broker.ts'

await onKafka('console', [() => import('../console/console.browser.test.ts'), () => import('../streams/viewer.browser.test.ts')])
