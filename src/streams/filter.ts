import { celEnv, isCelError, parse, plan } from '@bufbuild/cel'
import { EventplaneError } from '../core/errors.ts'
import { isPlainObject, type JsonObject } from '../core/objects.ts'

export interface FilterLimits {
  maxLength: number
  /** Most expression nodes (after macro expansion): the cost bound of a filter. */
  maxNodes: number
}

/** Outcome of a filter for one event: deliver, skip, or the expression failed on it. */
export type FilterVerdict = 'pass' | 'skip' | 'error'

/** Which events of a stream one client gets. Filters with the same `key` give the same verdicts. */
export interface EventFilter {
  readonly key: string
  test(event: unknown): FilterVerdict
}

export interface FilterRequest {
  /** `?filter=`: a CEL expression over the event's top-level fields, e.g. `meta.domain == "en.wikipedia.org" && !bot`. */
  expression?: string | undefined
  /** `?match[path.to.field]=value`: the field, as a string, equals the value. */
  matches?: ReadonlyArray<readonly [string, string]>
  /** `?canary=include`: keep canary events (meta.domain == "canary"), left out by default. */
  includeCanary?: boolean
}

type Planned = (bindings: JsonObject) => unknown

const env = celEnv()
const compiled = new Map<string, Planned>()

/**
 * Compiles the filter of a connection once. A CEL expression that does not parse, is too
 * long, or has more than `maxNodes` nodes (the cost bound: CEL has no loops but its list
 * macros, and the lists of an event are bounded, so the size of the expression bounds the
 * work per event) is EVP_FILTER_INVALID with the reason. Compiled expressions are shared
 * between connections.
 */
export function compileFilter(request: FilterRequest, limits: FilterLimits): EventFilter {
  const expression = request.expression?.trim() || undefined
  const matches = [...(request.matches ?? [])].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const includeCanary = request.includeCanary === true
  let planned: Planned | undefined
  if (expression !== undefined) planned = planFor(expression, limits)
  const readers = matches.map(([path, value]) => {
    if (!/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/.test(path)) {
      throw new EventplaneError('EVP_FILTER_INVALID', `match[${path}]: the field must be a dotted path such as meta.domain`)
    }
    const parts = path.split('.')
    return { parts, value }
  })
  const key = JSON.stringify([expression ?? null, matches, includeCanary])
  return {
    key,
    test(event) {
      if (!isPlainObject(event)) return 'skip'
      if (!includeCanary) {
        const meta = event['meta']
        if (isPlainObject(meta) && meta['domain'] === 'canary') return 'skip'
      }
      for (const { parts, value } of readers) {
        let node: unknown = event
        for (const part of parts) node = isPlainObject(node) ? node[part] : undefined
        if (node === undefined || node === null || typeof node === 'object' || String(node) !== value) return 'skip'
      }
      if (planned === undefined) return 'pass'
      let result: unknown
      try {
        result = planned(event)
      } catch {
        return 'error'
      }
      if (result === true) return 'pass'
      if (result === false) return 'skip'
      return 'error' // an evaluation error, or a value that is not a boolean
    },
  }
}

function planFor(expression: string, limits: FilterLimits): Planned {
  const known = compiled.get(expression)
  if (known !== undefined) return known
  if (expression.length > limits.maxLength) {
    throw new EventplaneError('EVP_FILTER_INVALID', `the filter is ${expression.length} characters long; the limit is ${limits.maxLength}`)
  }
  let parsed
  try {
    parsed = parse(expression)
  } catch (error) {
    throw new EventplaneError('EVP_FILTER_INVALID', `the filter is not a CEL expression: ${(error as Error).message}`)
  }
  const nodes = countNodes(parsed)
  if (nodes > limits.maxNodes) {
    throw new EventplaneError(
      'EVP_FILTER_INVALID',
      `the filter is too complex: ${nodes} expression nodes, over the limit of ${limits.maxNodes} (list macros such as all() and exists() expand into several)`,
    )
  }
  const evaluate = plan(env, parsed) as (bindings: JsonObject) => unknown
  const planned: Planned = (bindings) => {
    const value = evaluate(bindings)
    return isCelError(value) ? undefined : value
  }
  if (compiled.size >= 1000) compiled.clear()
  compiled.set(expression, planned)
  return planned
}

/** Expression nodes of a parsed CEL AST (protobuf messages typed `cel.expr.Expr`). */
function countNodes(value: unknown): number {
  let count = 0
  const stack: unknown[] = [value]
  while (stack.length > 0) {
    const node = stack.pop()
    if (Array.isArray(node)) {
      for (const item of node) stack.push(item)
    } else if (typeof node === 'object' && node !== null) {
      if ((node as { $typeName?: string }).$typeName === 'cel.expr.Expr') count++
      for (const child of Object.values(node)) if (typeof child === 'object' && child !== null) stack.push(child)
    }
  }
  return count
}
