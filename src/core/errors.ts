import { withoutPaths } from './paths.ts'

/**
 * The closed list of Eventplane error codes. Every code has an HTTP status, a `canRetry` flag
 * (true when the same request may succeed later without being changed) and a one-line title.
 * Codes are part of the public contract: tests assert them, clients branch on them, and
 * docs/errors.md documents each one (a test keeps the two in step). Never reuse a retired code.
 */
export const errorCodes = {
  // Configuration (eventplane.yaml, .jsonschema-tools.yaml)
  EVP_CONFIG_NOT_FOUND: { status: 500, canRetry: false, title: 'Configuration file not found' },
  EVP_CONFIG_PARSE: { status: 500, canRetry: false, title: 'Configuration file is not valid YAML' },
  EVP_CONFIG_INVALID: { status: 500, canRetry: false, title: 'Configuration does not match its schema' },

  // Command line
  EVP_CLI_USAGE: { status: 400, canRetry: false, title: 'Invalid command-line arguments' },

  // HTTP boundary
  EVP_NOT_FOUND: { status: 404, canRetry: false, title: 'No such resource' },
  EVP_METHOD_NOT_ALLOWED: { status: 405, canRetry: false, title: 'Method not allowed' },
  EVP_BAD_REQUEST: { status: 400, canRetry: false, title: 'Invalid request' },
  EVP_NOT_ACCEPTABLE: { status: 406, canRetry: false, title: 'No acceptable representation' },
  EVP_HEADERS_TOO_LARGE: { status: 431, canRetry: false, title: 'Request headers are larger than the limit' },
  EVP_REQUEST_TIMEOUT: { status: 408, canRetry: true, title: 'The request did not arrive in time' },
  EVP_OVERLOADED: { status: 503, canRetry: true, title: 'The server is at a resource limit' },
  EVP_INTERNAL: { status: 500, canRetry: true, title: 'Internal error' },
  EVP_AUTH_REQUIRED: { status: 401, canRetry: false, title: 'A token is required' },
  EVP_AUTH_INVALID: { status: 401, canRetry: false, title: 'The token is not valid' },
  EVP_STREAM_FORBIDDEN: { status: 403, canRetry: false, title: 'The token does not allow this stream' },
  EVP_RATE_LIMITED: { status: 429, canRetry: true, title: 'Too many requests' },
  EVP_LISTEN_FAILED: { status: 500, canRetry: false, title: 'The server cannot listen on its address' },

  // Schema repository and schema resolution
  EVP_PATH_INVALID: { status: 400, canRetry: false, title: 'Path is not allowed' },
  EVP_SCHEMA_NOT_FOUND: { status: 404, canRetry: false, title: 'Schema not found' },
  EVP_REPOSITORY_NOT_FOUND: { status: 404, canRetry: false, title: 'Schema repository not found' },
  EVP_SCHEMA_ID_DUPLICATE: { status: 500, canRetry: false, title: 'Schema repositories define one $id differently' },
  EVP_SCHEMA_PARSE: { status: 500, canRetry: false, title: 'Schema file is not valid YAML or JSON' },
  EVP_SCHEMA_FILE_TOO_LARGE: { status: 500, canRetry: false, title: 'Schema file is larger than the limit' },
  EVP_SCHEMA_INVALID: { status: 500, canRetry: false, title: 'Schema is not a valid JSONSchema document' },
  EVP_SCHEMA_VERSION_INVALID: { status: 500, canRetry: false, title: 'Schema version is missing or not semver' },
  EVP_SCHEMA_REF_NOT_FOUND: { status: 500, canRetry: false, title: '$ref points to a schema that does not exist' },
  EVP_SCHEMA_REF_CYCLE: { status: 500, canRetry: false, title: '$ref chain is cyclic' },
  EVP_SCHEMA_REF_INVALID: { status: 500, canRetry: false, title: '$ref is not a supported reference' },
  EVP_SCHEMA_MERGE_CONFLICT: { status: 500, canRetry: false, title: 'allOf members cannot be merged' },
  EVP_SCHEMA_REMOTE_UNAVAILABLE: { status: 502, canRetry: true, title: 'Remote schema service failed' },
  EVP_SCHEMA_REMOTE_TIMEOUT: { status: 504, canRetry: true, title: 'Remote schema service timed out' },
  EVP_SCHEMA_LINT_FAILED: { status: 422, canRetry: false, title: 'Schema breaks repository rules' },
  EVP_SCHEMA_INCOMPATIBLE: { status: 422, canRetry: false, title: 'Schema version is not compatible' },
  EVP_SCHEMA_EXISTS: { status: 409, canRetry: false, title: 'Schema already exists' },
  EVP_GIT_FAILED: { status: 500, canRetry: false, title: 'A git command failed' },

  // Stream config
  EVP_STREAM_CONFIG_INVALID: { status: 500, canRetry: false, title: 'Stream config is invalid' },
  EVP_STREAM_KEY_INVALID: { status: 500, canRetry: false, title: 'Stream key is not a valid name or /regex/' },
  EVP_STREAM_CONFIG_UNAVAILABLE: { status: 503, canRetry: true, title: 'Stream config could not be loaded' },
  EVP_STREAM_NOT_FOUND: { status: 404, canRetry: false, title: 'No such stream' },

  // Intake: the request body
  EVP_BODY_EMPTY: { status: 400, canRetry: false, title: 'Request body is empty' },
  EVP_BODY_INVALID_JSON: { status: 400, canRetry: false, title: 'Request body is not valid JSON' },
  EVP_BODY_INVALID_UTF8: { status: 400, canRetry: false, title: 'Request body is not valid UTF-8' },
  EVP_BODY_TOO_LARGE: { status: 413, canRetry: false, title: 'Request body is larger than the limit' },
  EVP_BODY_TOO_DEEP: { status: 400, canRetry: false, title: 'Request body is nested too deeply' },
  EVP_UNSUPPORTED_MEDIA_TYPE: { status: 415, canRetry: false, title: 'Content type is not supported' },
  EVP_TOO_MANY_EVENTS: { status: 413, canRetry: false, title: 'Request carries more events than the limit' },
  EVP_BEACON_URL_TOO_LONG: { status: 414, canRetry: false, title: 'Beacon URL is longer than the limit' },

  // Intake: one event (these appear as `context.code` of an item of a 207/400/500 answer)
  EVP_EVENT_NOT_OBJECT: { status: 400, canRetry: false, title: 'Event is not a JSON object' },
  EVP_EVENT_INVALID: { status: 400, canRetry: false, title: 'Event does not validate against its schema' },
  EVP_EVENT_SCHEMA_MISSING: { status: 400, canRetry: false, title: 'Event names no schema' },
  EVP_EVENT_STREAM_MISSING: { status: 400, canRetry: false, title: 'Event names no stream' },
  EVP_EVENT_KEY_MISSING: { status: 400, canRetry: false, title: 'Event lacks a message key field of its stream' },
  EVP_SCHEMA_URI_NOT_ALLOWED: { status: 400, canRetry: false, title: 'Schema URI is not allowed' },
  EVP_STREAM_NOT_ALLOWED: { status: 400, canRetry: false, title: 'Stream is not configured' },
  EVP_SCHEMA_NOT_ALLOWED_FOR_STREAM: { status: 400, canRetry: false, title: "Schema is not the stream's schema" },
  EVP_STREAM_INTERNAL: { status: 400, canRetry: false, title: 'Stream takes events from Eventplane only' },
  EVP_STREAM_NAME_INVALID: { status: 400, canRetry: false, title: 'Stream name cannot name a topic' },
  EVP_STREAM_LIMIT_REACHED: { status: 400, canRetry: false, title: 'Too many streams made through regex keys' },
  EVP_EVENT_TIME_OUT_OF_RANGE: { status: 400, canRetry: false, title: 'Event time is outside the accepted window' },
  EVP_EVENT_TOO_LARGE: { status: 400, canRetry: false, title: 'Event is larger than the event log takes' },

  // Streams (Server-Sent Events)
  EVP_STREAM_UNKNOWN: { status: 400, canRetry: false, title: 'Stream is not served' },
  EVP_SINCE_INVALID: { status: 400, canRetry: false, title: 'since is not a time' },
  EVP_LAST_INVALID: { status: 400, canRetry: false, title: 'last is not a count of events' },
  EVP_LAST_EVENT_ID_INVALID: { status: 400, canRetry: false, title: 'Last-Event-ID is not a list of positions' },
  EVP_TOPIC_NOT_AVAILABLE: { status: 404, canRetry: false, title: 'Last-Event-ID names a topic outside the streams asked for' },
  EVP_FILTER_INVALID: { status: 400, canRetry: false, title: 'Filter is invalid or too complex' },
  EVP_TOO_MANY_CONNECTIONS: { status: 429, canRetry: true, title: 'Too many connections from this client' },
  EVP_CLIENT_TOO_SLOW: { status: 503, canRetry: true, title: 'Client reads too slowly' },

  // Event log
  EVP_LOG_UNAVAILABLE: { status: 503, canRetry: true, title: 'Event log is unavailable' },
  EVP_LOG_CLOSED: { status: 503, canRetry: true, title: 'Event log is closed' },
  EVP_LOG_NOT_WRITTEN: { status: 503, canRetry: true, title: 'Records were not written' },
  EVP_LOG_FULL: { status: 503, canRetry: true, title: "The event log's disk is full" },
  EVP_LOG_OUTCOME_UNKNOWN: { status: 503, canRetry: true, title: 'Records may or may not have been written' },
  EVP_LOG_INVALID_ARGUMENT: { status: 400, canRetry: false, title: 'Invalid topic, partition or offset' },
  EVP_LOG_TOPIC_MISSING: { status: 500, canRetry: false, title: 'Topic does not exist in the event log' },
  EVP_LOG_RECORD_UNDECODABLE: { status: 502, canRetry: false, title: 'Records in the event log cannot be decoded' },

  // Processors (eventplane pipe)
  EVP_PIPE_URI_INVALID: { status: 400, canRetry: false, title: 'Pipe endpoint URI is not valid' },
  EVP_PIPE_STATE_INVALID: { status: 500, canRetry: false, title: 'Pipe state file cannot be used' },
  EVP_PIPE_LINE_MALFORMED: { status: 400, canRetry: false, title: 'Input line is not a JSON event' },
  EVP_PIPE_SOURCE_FAILED: { status: 502, canRetry: true, title: 'Pipe source failed' },
  EVP_PIPE_DESTINATION_FAILED: { status: 502, canRetry: true, title: 'Pipe destination failed after retries' },
} as const satisfies Record<string, ErrorSpec>

export interface ErrorSpec {
  readonly status: number
  readonly canRetry: boolean
  readonly title: string
}

export type ErrorCode = keyof typeof errorCodes

export interface EventplaneErrorOptions {
  cause?: unknown
  /** Machine-readable facts about the failure (file, line, path, limit, …). */
  details?: Record<string, unknown>
}

/**
 * An error with a stable code from {@link errorCodes}.
 *
 * @example
 * throw new EventplaneError('EVP_SCHEMA_NOT_FOUND', 'No schema /eventplane/test/event/9.0.0 in repository primary')
 */
export class EventplaneError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly canRetry: boolean
  readonly details: Record<string, unknown> | undefined

  constructor(code: ErrorCode, message: string, options: EventplaneErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'EventplaneError'
    this.code = code
    this.statusCode = errorCodes[code].status
    this.canRetry = errorCodes[code].canRetry
    this.details = options.details
  }
}

/** Whether a string (say, the `code` of a problem from a server) is one of our codes. */
export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(errorCodes, value)
}

export function isEventplaneError(value: unknown): value is EventplaneError {
  return value instanceof EventplaneError
}

/** Wraps anything thrown into an EventplaneError, keeping ours as they are. */
export function toEventplaneError(value: unknown, code: ErrorCode = 'EVP_INTERNAL'): EventplaneError {
  if (value instanceof EventplaneError) return value
  const message = value instanceof Error ? value.message : String(value)
  return new EventplaneError(code, message, { cause: value })
}

/** RFC 9457 problem details, the body of every error response. */
export interface Problem {
  type: string
  title: string
  status: number
  code: ErrorCode
  detail: string
  canRetry: boolean
  details?: Record<string, unknown>
}

/** The problem document of an error; folders of the installation are hidden (see core/paths.ts). */
export function toProblem(error: EventplaneError): Problem {
  const problem: Problem = {
    type: `urn:eventplane:error:${error.code}`,
    title: errorCodes[error.code].title,
    status: error.statusCode,
    code: error.code,
    detail: withoutPaths(error.message),
    canRetry: error.canRetry,
  }
  if (error.details !== undefined) problem.details = JSON.parse(withoutPaths(JSON.stringify(error.details))) as Record<string, unknown>
  return problem
}
