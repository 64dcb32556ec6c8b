/** @module server: one process serving every part, built from one config. */
export { buildApp, openPlatform, type Platform, type OpenPlatformOptions } from './app.ts'
export { startServer, handleSignals, type RunningServer } from './serve.ts'
export { createMetricsRegistry } from './metrics.ts'
