/** @module config: the one config file, `eventplane.yaml`, for every service. */
export { configSchema, envOverrides, type Config } from './schema.ts'
export { loadConfig, configPathFrom, bundledConfigPath, type LoadedConfig, type LoadConfigOptions } from './load.ts'
