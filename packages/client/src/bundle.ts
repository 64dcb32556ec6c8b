/** What the browser bundle (dist/eventplane.min.js, global `eventplane`) holds: everything but the Node.js producer. */
export { MetricsClient, Instrument, webBaseSchema } from './client.ts'
export { createMetricsClient, defaultContext } from './browser.ts'
export { BrowserTransport } from './transport.ts'
export { memoryStore, browserStore } from './storage.ts'
export { logEvent, capsule } from './legacy.ts'
export { curate } from './curation.ts'
export { sampleVerdict, idInSample } from './sampling.ts'
export { randomId, uuid } from './ids.ts'
