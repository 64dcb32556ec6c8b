/**
 * EventGate's view of a validation failure. EventGate validates with ajv 6, and clients written
 * for it parse ajv 6's error objects: `dataPath` in JavaScript notation (`.meta.dt`,
 * `.tags[0]`, `['user-agent']`) and messages worded "should …". We validate with ajv 8
 * (`instancePath`, a JSON Pointer; "must …"). These functions give each ajv 8 error the ajv 6
 * fields beside its own, so that one answer serves both kinds of client.
 */
import type { ErrorObject } from 'ajv'

/** An ajv 8 error with EventGate's (ajv 6) `dataPath` and message. */
export interface EventGateError {
  keyword: string
  /** ajv 6: JavaScript property access from the event (`.test`, `.list[0]`, `['a-b']`); '' for the event itself. */
  dataPath: string
  /** ajv 8: JSON Pointer (`/test`, `/list/0`, `/a-b`). */
  instancePath: string
  schemaPath: string
  params: Record<string, unknown>
  /** ajv 6's wording ("should be string"). */
  message: string
}

const identifier = /^[a-z$_][a-z$_0-9]*$/i

/**
 * ajv 6's dataPath for a JSON Pointer into `data`: array items as `[i]`, properties that are
 * JavaScript identifiers as `.name`, others as `['name']` with quotes and backslashes escaped.
 * `data` tells an array index from a property named with digits.
 */
export function dataPath(instancePath: string, data: unknown): string {
  if (instancePath === '') return ''
  let out = ''
  let node = data
  for (const raw of instancePath.split('/').slice(1)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~')
    if (Array.isArray(node) && /^(0|[1-9]\d*)$/.test(key)) out += `[${key}]`
    else if (identifier.test(key)) out += `.${key}`
    else out += `['${escapeQuotes(key)}']`
    node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined
  }
  return out
}

function escapeQuotes(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/'/g, "\\'").replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\f/g, '\\f').replace(/\t/g, '\\t')
}

/**
 * ajv 6's message for an ajv 8 error. Most differ only in "should" for "must"; these were
 * reworded: string lengths, anyOf, contains and propertyNames.
 */
export function ajv6Message(error: ErrorObject): string {
  const params = error.params as Record<string, unknown>
  switch (error.keyword) {
    case 'minLength':
      return `should NOT be shorter than ${params['limit']} characters`
    case 'maxLength':
      return `should NOT be longer than ${params['limit']} characters`
    case 'anyOf':
      return 'should match some schema in anyOf'
    case 'contains':
      return 'should contain a valid item'
    case 'propertyNames':
      return `property name '${params['propertyName']}' is invalid`
    default:
      return (error.message ?? error.keyword).replace(/^must\b/, 'should')
  }
}

/** Each error with EventGate's fields beside ajv 8's, in EventGate's key order. */
export function eventGateErrors(errors: readonly ErrorObject[], data: unknown): EventGateError[] {
  return errors.map((error) => ({
    keyword: error.keyword,
    dataPath: dataPath(error.instancePath, data),
    schemaPath: error.schemaPath,
    params: error.params as Record<string, unknown>,
    message: ajv6Message(error),
    instancePath: error.instancePath,
  }))
}

/** EventGate's `errorsText`: `'<dataPath>' <message>` joined with `, `. */
export function eventGateErrorsText(errors: readonly EventGateError[]): string {
  return errors.map((e) => `'${e.dataPath}' ${e.message}`).join(', ')
}
