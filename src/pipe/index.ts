/** @module pipe: processors that move events between endpoints (logs, files, intakes, streams), validating and transforming on the way. */
export { parseEndpoint, endpointDefaults, endpointExamples, type Endpoint, type Role, type StartAt } from './endpoints.ts'
export { runPipe, type Counts, type PipeOptions, type PipeResult, type Progress } from './pipeline.ts'
export { loadState, type PipeState } from './state.ts'
