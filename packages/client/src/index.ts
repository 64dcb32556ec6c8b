/**
 * @eventplane/client: send events to an Eventplane (or EventGate) intake from browsers and
 * Node.js, with Wikimedia's Metrics Platform API. No runtime dependencies.
 */
export { MetricsClient, Instrument, webBaseSchema, type DropReason, type EventSink, type Logger, type MetricsClientOptions } from './client.ts'
export { addContext, alwaysProvided, requestedAttributes, type ContextProvider } from './context.ts'
export { attributeValue, curate, type CurationVerdict } from './curation.ts'
export { Identity, type IdentityOptions } from './identity.ts'
export { isId, randomId } from './ids.ts'
export { idInSample, parseSample, sampleUnits, sampleVerdict, type Sample, type SampleUnit, type SampleVerdict } from './sampling.ts'
export { browserStore, memoryStore, type KeyValueStore } from './storage.ts'
export { clientSettings, defaultDestination, parseStreamConfigs, streamConfigsUrl, type MetricsPlatformClientConfig, type StreamConfig, type StreamConfigs } from './stream-config.ts'
