/** @module core: error codes, problem documents, YAML parsing and small object helpers. */
export {
  errorCodes,
  EventplaneError,
  isEventplaneError,
  toEventplaneError,
  toProblem,
  type ErrorCode,
  type ErrorSpec,
  type Problem,
} from './errors.ts'
export { parseYaml, type ParsedYaml, type SourcePosition } from './yaml.ts'
export { deepFreeze, deepMerge, isPlainObject, jsonEqual, setOwn, type JsonObject } from './objects.ts'
export { sendProblem, installErrorHandling, frameworkErrors, problemContentType } from './http.ts'
