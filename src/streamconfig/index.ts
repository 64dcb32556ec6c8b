/** @module streamconfig: stream name or /regex/ → settings, from a YAML file or a URL, and its HTTP API. */
export { StreamConfig, type StreamEntry, type StreamResolution } from './config.ts'
export { matchesConstraints, parseMwConstraints, maxConstraintDepth, type Constraints } from './constraints.ts'
export { isValidStreamName, type StreamKey } from './keys.ts'
export {
  loadStreamConfig,
  parseStreamConfig,
  maxStreamConfigBytes,
  type ParseStreamConfigOptions,
  type ReadStreamConfigOptions,
} from './load.ts'
export { streamConfigRoutes, maxStreamsPerRequest, type StreamConfigRoutesOptions } from './routes.ts'
export { streamSettingsSchema, type ResolvedStreamSettings, type StreamSettings } from './schema.ts'
export {
  openStreamConfig,
  type OpenStreamConfigOptions,
  type ReloadResult,
  type StreamConfigSource,
} from './source.ts'
