/**
 * @eventplane/client: send events to an Eventplane (or EventGate) intake from browsers and
 * Node.js, with Wikimedia's Metrics Platform API. No runtime dependencies.
 */
export { MetricsClient, Instrument, webBaseSchema, type DropReason, type EventSink, type Logger, type MetricsClientOptions } from './client.ts'
export { addContext, alwaysProvided, requestedAttributes, type ContextProvider } from './context.ts'
export { attributeValue, curate, type CurationVerdict } from './curation.ts'
export { Identity, type IdentityOptions } from './identity.ts'
export { isId, randomId, uuid } from './ids.ts'
export { backoff, ensureId, postBatch, retryAfter, type BatchOutcome, type Event, type Refusal } from './intake.ts'
export { capsule, logEvent, type LegacyOptions } from './legacy.ts'
export { Producer, type ProducerOptions, type SendResult } from './producer.ts'
export { idInSample, parseSample, sampleUnits, sampleVerdict, type Sample, type SampleUnit, type SampleVerdict } from './sampling.ts'
export { browserStore, memoryStore, type KeyValueStore } from './storage.ts'
export { clientSettings, defaultDestination, parseStreamConfigs, streamConfigsUrl, type MetricsPlatformClientConfig, type StreamConfig, type StreamConfigs } from './stream-config.ts'
export { BrowserTransport, type BrowserTransportOptions, type TransportDropReason } from './transport.ts'
export { createMetricsClient, defaultContext, type BrowserClientOptions } from './browser.ts'
