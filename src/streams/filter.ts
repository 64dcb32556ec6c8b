import { celEnv, celList, celMap, isCelError, isCelList, isCelMap, isCelUint, parse, plan, type CelEnv, type CelList, type CelValue } from '@bufbuild/cel'
import { EventplaneError } from '../core/errors.ts'
import { isPlainObject, type JsonObject } from '../core/objects.ts'

export interface FilterLimits {
  maxLength: number
  /** Most expression nodes (after macro expansion): bounds the size of a filter, not its work. */
  maxNodes: number
  /** Deepest nesting of comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`), one in another's predicate. */
  maxNesting: number
  /** Evaluation steps one event may cost a filter; past it the verdict is 'over-budget'. */
  budget: number
}

/**
 * Outcome of a filter for one event: deliver, skip, the expression failed on it, or it would
 * have cost more than the budget (the event is skipped).
 */
export type FilterVerdict = 'pass' | 'skip' | 'error' | 'over-budget'

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

/**
 * Compiles the filter of a connection once. A CEL expression that does not parse, is too long,
 * has more than `maxNodes` nodes, or nests comprehensions deeper than `maxNesting` is
 * EVP_FILTER_INVALID with the reason. Compiled expressions are shared between connections.
 * Each `test(event)` may take at most `budget` evaluation steps (see "How the work is bounded"
 * below); an event that would take more gets 'over-budget'.
 *
 * @example
 * const filter = compileFilter({ expression: 'type in ["edit", "new"]' }, { maxLength: 2000, maxNodes: 200, maxNesting: 2, budget: 100_000 })
 * filter.test({ type: 'edit' }) // 'pass'
 */
export function compileFilter(request: FilterRequest, limits: FilterLimits): EventFilter {
  const expression = request.expression?.trim() || undefined
  const matches = [...(request.matches ?? [])].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  const includeCanary = request.includeCanary === true
  let compiled: Compiled | undefined
  if (expression !== undefined) compiled = compileExpression(expression, limits)
  const readers = matches.map(([path, value]) => {
    if (!/^[A-Za-z0-9_$-]+(\.[A-Za-z0-9_$-]+)*$/.test(path)) {
      throw new EventplaneError('EVP_FILTER_INVALID', `match[${path}]: the field must be a dotted path such as meta.domain`)
    }
    const parts = path.split('.')
    return { parts, value }
  })
  const key = JSON.stringify([expression ?? null, matches, includeCanary])
  const budget = limits.budget
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
      if (compiled === undefined) return 'pass'
      return run(compiled, event, budget)
    },
  }
}

// How the work is bounded
//
// The size of an expression does not bound its work: `l.all(a, l.all(b, true))` has a dozen
// nodes and costs |l|² steps, and one node (`x in l`, `s.contains(t)`) can walk a whole list
// or string. Nesting is bounded at compile time (nestingOf), which refuses the filters that
// are hopeless whatever the event; what an expression costs on one event is counted while it
// runs, against the budget. @bufbuild/cel has no cost tracking and no way to interrupt an
// evaluation, so the count is kept in the places all the work goes through, and spend()
// throws once it passes the budget:
//
// 1. Loops. CEL's only loops are comprehensions (what all(), exists(), exists_one(), map()
//    and filter() expand into). Before planning, each comprehension's loop condition is
//    wrapped in a call to `@evp_step`, which charges, on every iteration, the steps of the
//    nodes the condition and the step evaluate (a comprehension nested there counts its
//    range, start and result; its own loop charges itself), and its range in `@evp_range`,
//    which charges the length of the list or map the evaluator copies before looping. The
//    nodes outside every loop are charged once per event.
// 2. Functions. The planner finds every function through the environment's function
//    resolver; ours (`metered`) charges each call what its arguments make it cost before the
//    standard implementation runs (the length of the strings it scans, the deep size of what
//    ==, in and < compare, the text times the program size for matches(), ...), and more when
//    it fails. List concatenation is ours: the evaluator's is lazy and nests, and walking a
//    list built by n appends then costs n² (see also appendInPlace).
// 3. Data. The evaluator converts a plain JS object into a CEL map again at every access (a
//    walk of all its keys), so an evaluation converts each field of the event it reads once,
//    all the way down, charging its size as it goes. The maps are a Map subclass that charges
//    its size to whoever walks it, which covers the evaluator's own walks of maps, such as
//    the linear search of a lookup with a number key.
//
// Everything else is a bounded amount of work per node evaluated (variables looked up
// through at most two scopes per enclosing comprehension, literals and dotted names no
// longer than the expression), and each node is evaluated once per event or once per
// iteration of the loops around it; so one test(event) takes at most the budget times the
// cost of the slowest kind of step. The costs below are set so that steps of every kind take
// about as long, within a factor of 2 or 3 (bench/filter.ts measures the worst): a step is
// about one node that succeeds; a node that may fail costs ten, as its error is an Error
// object.
//
// The throw unwinds the evaluation up to plan()'s outermost try/catch, which turns it into
// an error value, and run() answers 'over-budget'. When it comes from inside a standard
// function (a ChargedMap walked by `in`), the function's own try/catch turns it into an error
// value there, and the evaluation stops at its next charge, as spend() throws at every charge
// once over. The one piece of work charged only once done is listing the keys of an object
// (Object.keys), linear in the event like parsing it was, and done once per object.

/** A constant, or a comprehension's variable: nodes that cannot fail. */
const CONSTANT_STEPS = 1
const VARIABLE_STEPS = 2
/**
 * Any other node the evaluator runs itself (a field, a selection, an index, &&, ||, ?:, a
 * literal): it may fail, and its error is an Error object, many times the work of a node that
 * succeeds; we cannot see which nodes fail.
 */
const NODE_STEPS = 10
/**
 * A call of a function (found through `metered`): resolving its overload among up to 14 by
 * the types of its arguments; it is charged FAILED_CALL_STEPS more when it fails.
 */
const CALL_STEPS = 4
const FAILED_CALL_STEPS = 20
/** Building one CEL list or map from event data (allocations), plus each element, plus each entry (enumerating the keys of a large object is slow). */
const CONTAINER_STEPS = 8
const ENTRY_STEPS = 5
/** Characters a linear native string operation (search, compare, copy) handles per step. */
const CHARS_PER_STEP = 8
/** size() of a string spreads it into code points. */
const SIZE_STEPS_PER_CHAR = 0.25
/** int() and uint() of a string parse a BigInt. */
const PARSE_STEPS_PER_CHAR = 2
/** matches() runs RE2 (in JavaScript): at worst each character against each instruction, after compiling the pattern. */
const REGEX_STEPS_PER_CHAR_INSTRUCTION = 1
const REGEX_COMPILE_STEPS = 500
const REGEX_COMPILE_STEPS_PER_INSTRUCTION = 50
/** timestamp(), duration() and the calendar getters build protobuf messages or Dates. */
const TIME_STEPS = 100
/** A calendar getter given an IANA time zone builds an Intl.DateTimeFormat. */
const TIME_ZONE_STEPS = 2000
/** A protobuf message (a timestamp, or a literal such as `google.protobuf.Value{...}`) is built and compared by reflection. */
const MESSAGE_STEPS = 20

/** What spend() throws: a string, as an Error would capture a stack on every throw. */
const overBudget = 'eventplane: the filter passed its evaluation budget'

/** State of the evaluation under way (evaluations are synchronous and do not nest). */
interface Evaluation {
  left: number
  over: boolean
  event: JsonObject
  /** Fields of the event read (converted) so far. */
  fields: Map<string, unknown>
  /** Deep sizes in steps of the large lists and maps measured so far. */
  sizes?: Map<object, number>
  /** Lists map() and filter() are building, with their arrays (see appendInPlace). */
  growing?: Map<CelList, CelValue[]>
}

let current: Evaluation | undefined

function spend(steps: number): void {
  const e = current
  if (e === undefined) return
  e.left -= steps
  // Throws again at every later charge, should something have caught the first throw.
  if (e.left < 0) {
    e.over = true
    throw overBudget
  }
}

interface Compiled {
  evaluate: (bindings: object) => unknown
  /** Steps of the nodes evaluated once per event (outside every loop). */
  steps: number
}

function run(compiled: Compiled, event: JsonObject, budget: number): FilterVerdict {
  const e: Evaluation = { left: budget, over: false, event, fields: new Map() }
  current = e
  // CEL errors are values (of `missing.field`, `1 / 0`, ...) whose stacks no one reads, and
  // capturing a stack is most of what an error costs.
  const stackTraceLimit = Error.stackTraceLimit
  Error.stackTraceLimit = 0
  let result: unknown
  try {
    spend(compiled.steps)
    result = compiled.evaluate(eventFields)
  } catch {
    result = undefined // an exception plan() let through is a failed evaluation too
  } finally {
    current = undefined
    Error.stackTraceLimit = stackTraceLimit
  }
  if (e.over) return 'over-budget'
  if (result === true) return 'pass'
  if (result === false) return 'skip'
  return 'error' // an evaluation error, or a value that is not a boolean
}

/**
 * The variables of an evaluation: the event's top-level fields, converted and charged when
 * first read. A proxy, because the evaluator also looks up dotted names (`a.b` as one
 * variable) and the fields of an event are not known in advance; its target is an empty
 * object so that frozen events cannot trip the proxy invariants.
 */
const eventFields = new Proxy(Object.create(null) as object, {
  get(_target, name) {
    const e = current
    if (e === undefined || typeof name !== 'string' || !Object.hasOwn(e.event, name)) return undefined
    if (e.fields.has(name)) return e.fields.get(name)
    const raw = e.event[name]
    let value: unknown = raw
    if (typeof raw === 'object' && raw !== null) value = convert(raw)
    else spend(typeof raw === 'string' ? stringSteps(raw) : 1)
    e.fields.set(name, value)
    return value
  },
})

// --- Data -------------------------------------------------------------------------------

/** A map of event data: anything that walks it is charged its size first. */
class ChargedMap<K, V> extends Map<K, V> {
  override keys(): MapIterator<K> {
    spend(this.size)
    return super.keys()
  }
  override values(): MapIterator<V> {
    spend(this.size)
    return super.values()
  }
  override entries(): MapIterator<[K, V]> {
    spend(this.size)
    return super.entries()
  }
  override [Symbol.iterator](): MapIterator<[K, V]> {
    spend(this.size)
    return super[Symbol.iterator]()
  }
  override forEach(callback: (value: V, key: K, map: Map<K, V>) => void, thisArg?: unknown): void {
    spend(this.size)
    super.forEach(callback, thisArg)
  }
}

/**
 * Keys of large objects, kept when converting them went over budget: enumerating the keys
 * of an object with 100k of them costs about what parsing it did, and is the one piece of
 * work charged only once done, so it is done once per object and not once per filter.
 */
const enumerated = new WeakMap<object, string[]>()

function stringSteps(value: string): number {
  return 1 + value.length / CHARS_PER_STEP
}

/**
 * A JSON object or array as a CEL map or list, converted all the way down (the evaluator
 * would otherwise convert a plain object again at every access). Each container is charged
 * before its elements are looked at.
 */
function convert(raw: object): unknown {
  if (Array.isArray(raw)) {
    spend(CONTAINER_STEPS + raw.length)
    const items: unknown[] = new Array(raw.length)
    for (let i = 0; i < raw.length; i++) items[i] = element(raw[i])
    return celList(items as CelValue[])
  }
  if (!isPlainObject(raw)) return raw // not JSON: left to the evaluator
  let keys = enumerated.get(raw)
  if (keys === undefined) {
    keys = Object.keys(raw)
    if (keys.length > 1000) enumerated.set(raw, keys)
  }
  spend(CONTAINER_STEPS + keys.length * ENTRY_STEPS)
  const entries = new ChargedMap<string, unknown>()
  for (const key of keys) {
    if (key.length >= CHARS_PER_STEP) spend(key.length / CHARS_PER_STEP)
    entries.set(key, element(raw[key]))
  }
  return celMap(entries as Map<string, CelValue>)
}

/** An element of a list or map being converted (its slot is charged already). */
function element(raw: unknown): unknown {
  if (typeof raw === 'object' && raw !== null) return convert(raw)
  if (typeof raw === 'string' && raw.length >= CHARS_PER_STEP) spend(raw.length / CHARS_PER_STEP)
  return raw
}

/**
 * Deep size of a CEL value in steps: what comparing it with an equal value costs. Walks
 * lists and maps (once per evaluation), but no further than `cap`: a result over `cap` only
 * says so.
 */
function deepSteps(value: unknown, cap: number): number {
  if (typeof value === 'string') return stringSteps(value)
  if (typeof value !== 'object' || value === null) return 1
  if (value instanceof Uint8Array) return 1 + value.length / CHARS_PER_STEP
  if (!isCelList(value) && !isCelMap(value)) return isCelUint(value) ? 1 : MESSAGE_STEPS
  const known = current?.sizes?.get(value)
  if (known !== undefined) return known
  let steps = 1 + value.size
  if (steps > cap) return steps
  if (isCelList(value)) {
    for (const item of value) {
      steps += deepSteps(item, cap - steps)
      if (steps > cap) return steps
    }
  } else {
    for (const [k, v] of value) {
      steps += deepSteps(k, cap - steps) + deepSteps(v, cap - steps)
      if (steps > cap) return steps
    }
  }
  // Small ones are cheaper to walk again than to remember.
  if (value.size >= 32 && current !== undefined) (current.sizes ??= new Map()).set(value, steps)
  return steps
}

function left(): number {
  return current?.left ?? Infinity
}

/**
 * The smaller deep size of two values, walking neither much further than that: a comparison
 * stops at the first difference, so it costs no more than its smaller side.
 */
function smallerSteps(a: unknown, b: unknown): number {
  for (let cap = 64; ; cap *= 4) {
    const sa = deepSteps(a, cap)
    const sb = deepSteps(b, cap)
    if (sa <= cap || sb <= cap || cap > left()) return Math.min(sa, sb)
  }
}

// --- Functions --------------------------------------------------------------------------

const std = celEnv()
type FuncResolver = CelEnv['funcs']
type FuncGroup = NonNullable<ReturnType<FuncResolver['find']>>
type Call = (target: CelValue | undefined, args: CelValue[]) => unknown

/** Steps one call costs beyond its node, from its arguments, charged before it runs. */
function callSteps(name: string, target: CelValue | undefined, args: CelValue[]): number {
  const [a, b] = args
  switch (name) {
    case '_==_':
    case '_!=_':
    case '_<_':
    case '_<=_':
    case '_>_':
    case '_>=_':
      return smallerSteps(a, b)
    case '@in':
      // A list is searched element by element with ==; a map is one lookup (its linear
      // search for number keys is charged by ChargedMap).
      return isCelList(b) ? deepSteps(b, left()) + deepSteps(a, left()) : deepSteps(a, left())
    case 'size': {
      const value = target ?? a
      return typeof value === 'string' ? value.length * SIZE_STEPS_PER_CHAR : 0
    }
    case 'startsWith':
    case 'endsWith':
      return deepSteps(a, left())
    case 'matches': {
      const text = typeof target === 'string' ? target.length : 0
      if (typeof a !== 'string') return 1
      // Sizing the pattern is linear in it, and the charge is at least its length.
      if (a.length > left()) return a.length
      const size = regexSize(a)
      return REGEX_COMPILE_STEPS + size * (REGEX_COMPILE_STEPS_PER_INSTRUCTION + text * REGEX_STEPS_PER_CHAR_INSTRUCTION)
    }
    case 'int':
    case 'uint':
      return typeof a === 'string' ? a.length * PARSE_STEPS_PER_CHAR : 0
    default: {
      // Anything else (contains(), string + string, bytes(), timestamp(), ...) is at most
      // linear in its arguments, bar the Intl.DateTimeFormat of a calendar getter given a
      // time zone (`getHours("Europe/Paris")`).
      let steps = target === undefined ? 0 : deepSteps(target, left())
      for (const arg of args) steps += deepSteps(arg, left())
      if (name === 'timestamp' || name === 'duration' || name.startsWith('get')) steps += TIME_STEPS
      if (name.startsWith('get') && typeof a === 'string') steps += TIME_ZONE_STEPS
      return steps
    }
  }
}

/**
 * An upper bound of the size of the program RE2 compiles a pattern to: every character at
 * most one instruction, and a counted repetition (`x{2,50}`, `(ab){3}`) copies the atom or
 * group before it, up to 1000 times, nested ones multiplying.
 */
function regexSize(pattern: string): number {
  const repeat = /\{(\d+)(?:,(\d*))?\}/y
  const groups: number[][] = [[]]
  for (let i = 0; i < pattern.length; i++) {
    const atoms = groups[groups.length - 1]!
    const ch = pattern[i]
    if (ch === '\\') {
      i++
      atoms.push(2)
    } else if (ch === '[') {
      // A class is one instruction; `]` right after `[` or `[^` is a member, not its end.
      let j = i + 1
      if (pattern[j] === '^') j++
      if (pattern[j] === ']') j++
      while (j < pattern.length && pattern[j] !== ']') j += pattern[j] === '\\' ? 2 : 1
      atoms.push(j - i + 1)
      i = j
    } else if (ch === '(') {
      groups.push([])
    } else if (ch === ')' && groups.length > 1) {
      groups.pop()
      groups[groups.length - 1]!.push(atoms.reduce((sum, n) => sum + n, 1))
    } else if (ch === '{' && atoms.length > 0) {
      repeat.lastIndex = i
      const m = repeat.exec(pattern)
      if (m === null) {
        atoms.push(1)
        continue
      }
      const times = Math.min(1000, Math.max(Number(m[1]), Number(m[2] || m[1]))) + 1
      atoms.push(Math.min(1e12, atoms.pop()! * times))
      i += m[0].length - 1
    } else {
      atoms.push(1)
    }
  }
  while (groups.length > 1) {
    const atoms = groups.pop()!
    groups[groups.length - 1]!.push(atoms.reduce((sum, n) => sum + n, 1))
  }
  return groups[0]!.reduce((sum, n) => sum + n, 1)
}

/** Concatenates two lists into one flat list (the evaluator's concatenations are lazy and nest, and walking nested ones costs their depth per element). */
function concat(a: CelList, b: CelList): CelList {
  spend(a.size + b.size)
  return celList([...a, ...b])
}

const own: Record<string, Call> = {
  '@evp_step': (_target, [condition, steps]) => {
    spend(Number(steps))
    return condition
  },
  '@evp_has': (_target, [name]) => typeof name === 'string' && current !== undefined && Object.hasOwn(current.event, name),
  '@evp_range': (_target, [range]) => {
    if (isCelList(range) || isCelMap(range)) spend(range.size)
    return range
  },
  '@evp_append': (_target, [list, item]) => {
    if (!isCelList(list) || current === undefined) return undefined
    const growing = (current.growing ??= new Map())
    const items = growing.get(list)
    if (items !== undefined) {
      items.push(item!)
      return list
    }
    spend(list.size)
    const started = [...list, item!]
    const fresh = celList(started)
    growing.set(fresh, started)
    return fresh
  },
}

function meteredGroup(name: string, group: FuncGroup | undefined): FuncGroup | undefined {
  const ours = own[name]
  if (ours !== undefined) {
    return {
      name,
      [Symbol.iterator]: () => [][Symbol.iterator](),
      call: (_id, target, args) => ours(target, args) as CelValue | undefined,
    }
  }
  if (group === undefined) return undefined
  return {
    name,
    [Symbol.iterator]: () => group[Symbol.iterator](),
    call(id, target, args) {
      if (name === '_+_' && target === undefined && isCelList(args[0]) && isCelList(args[1])) return concat(args[0], args[1])
      spend(callSteps(name, target, args))
      const result = group.call(id, target, args)
      if (result === undefined || isCelError(result)) spend(FAILED_CALL_STEPS)
      return result
    },
  }
}

const groups = new Map<string, FuncGroup | undefined>()

/**
 * The standard functions, each charged before it runs. plan() reads only `funcs`, `registry`
 * and `namespace` of an environment, and the planner only calls `find` of `funcs`; the
 * library has no other hook into evaluation.
 */
const metered = {
  find(name: string): FuncGroup | undefined {
    if (!groups.has(name)) groups.set(name, meteredGroup(name, std.funcs.find(name)))
    return groups.get(name)
  },
  [Symbol.iterator]: () => std.funcs[Symbol.iterator](),
} as unknown as FuncResolver

const env = { namespace: std.namespace, registry: std.registry, funcs: metered, variables: std.variables } as unknown as CelEnv

// --- Compilation ------------------------------------------------------------------------

type Expr = ReturnType<typeof parse>['expr']
type Comprehension = Extract<Expr['exprKind'], { case: 'comprehensionExpr' }>['value']

const cache = new Map<string, Compiled>()

function compileExpression(expression: string, limits: FilterLimits): Compiled {
  // Keyed by the limits too: servers (and tests) in one process may have different ones.
  const cacheKey = `${limits.maxLength}\0${limits.maxNodes}\0${limits.maxNesting}\0${expression}`
  const known = cache.get(cacheKey)
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
  const nesting = nestingOf(parsed.expr)
  if (nesting > limits.maxNesting) {
    throw new EventplaneError(
      'EVP_FILTER_INVALID',
      `the filter nests comprehensions (all, exists, exists_one, map, filter) ${nesting} deep, one in the predicate of another; the limit is ${limits.maxNesting}`,
    )
  }
  const steps = instrument(parsed.expr, new Set())
  let evaluate
  try {
    evaluate = plan(env, parsed.expr) as (bindings: object) => unknown
  } catch (error) {
    throw new EventplaneError('EVP_FILTER_INVALID', `the filter is not a valid CEL expression: ${(error as Error).message}`)
  }
  const compiled: Compiled = { evaluate, steps }
  if (cache.size >= 1000) cache.clear()
  cache.set(cacheKey, compiled)
  return compiled
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

function children(expr: Expr): Expr[] {
  const kind = expr.exprKind
  switch (kind.case) {
    case 'selectExpr':
      return kind.value.operand === undefined ? [] : [kind.value.operand]
    case 'callExpr':
      return kind.value.target === undefined ? kind.value.args : [kind.value.target, ...kind.value.args]
    case 'listExpr':
      return kind.value.elements
    case 'structExpr':
      return kind.value.entries.flatMap((entry) => [...(entry.keyKind.case === 'mapKey' ? [entry.keyKind.value] : []), ...(entry.value === undefined ? [] : [entry.value])])
    default:
      return []
  }
}

/**
 * How deeply comprehensions nest. A comprehension counts as nested in another when it is in
 * the other's loop condition or loop step, which run once per element: their work multiplies.
 * One in the other's range, start or result (`a.map(x, x).all(y, ...)`) runs once per run of
 * the other, so their work adds up, and it does not count.
 */
function nestingOf(expr: Expr): number {
  const kind = expr.exprKind
  if (kind.case !== 'comprehensionExpr') return Math.max(0, ...children(expr).map(nestingOf))
  const c = kind.value
  const once = Math.max(0, ...[c.iterRange, c.accuInit, c.result].map((e) => (e === undefined ? 0 : nestingOf(e))))
  const loop = Math.max(0, ...[c.loopCondition, c.loopStep].map((e) => (e === undefined ? 0 : nestingOf(e))))
  return Math.max(once, 1 + loop)
}

/**
 * Rewrites an expression for metering (see "How the work is bounded") and returns the steps
 * of the nodes that run once per evaluation of `expr`. Also turns `has(field)`, which CEL
 * only defines for a selection (`has(a.b)`), into a test of whether the event has that
 * top-level field, unless `field` is a comprehension's variable (`bound`).
 */
function instrument(expr: Expr, bound: ReadonlySet<string>): number {
  const kind = expr.exprKind
  if (kind.case === 'callExpr' && kind.value.function === 'has' && kind.value.target === undefined && kind.value.args.length === 1) {
    const arg = kind.value.args[0]!.exprKind
    if (arg.case === 'identExpr' && !bound.has(arg.value.name)) {
      expr.exprKind = call('@evp_has', [constant({ case: 'stringValue', value: arg.value.name })]).exprKind
      return CALL_STEPS + CONSTANT_STEPS
    }
  }
  if (kind.case !== 'comprehensionExpr') {
    let steps = NODE_STEPS
    if (kind.case === 'constExpr') steps = CONSTANT_STEPS
    else if (kind.case === 'identExpr' && bound.has(kind.value.name)) steps = VARIABLE_STEPS
    else if (kind.case === 'callExpr' && /^(@|__)not_strictly_false(__)?$/.test(kind.value.function)) steps = VARIABLE_STEPS // yields a bool, never fails
    else if (kind.case === 'callExpr' && !plannedInline.has(kind.value.function)) steps = CALL_STEPS
    else if (kind.case === 'structExpr' && kind.value.messageName !== '') steps += MESSAGE_STEPS
    for (const child of children(expr)) steps += instrument(child, bound)
    return steps
  }
  const c = kind.value
  if (c.iterRange === undefined || c.accuInit === undefined || c.loopCondition === undefined || c.loopStep === undefined || c.result === undefined) {
    return NODE_STEPS // the planner refuses it
  }
  appendInPlace(c)
  const inLoop = new Set([...bound, c.iterVar, c.iterVar2, c.accuVar])
  const inResult = new Set([...bound, c.accuVar])
  const once = NODE_STEPS + instrument(c.iterRange, bound) + instrument(c.accuInit, bound) + instrument(c.result, inResult) + CALL_STEPS
  const perIteration = instrument(c.loopCondition, inLoop) + instrument(c.loopStep, inLoop) + CALL_STEPS
  c.iterRange = call('@evp_range', [c.iterRange])
  c.loopCondition = call('@evp_step', [c.loopCondition, constant({ case: 'int64Value', value: BigInt(perIteration) })])
  return once
}

/** Calls the planner evaluates itself, not through the function resolver (so not charged when they fail). */
const plannedInline = new Set(['_[_]', '_[?_]', '_?._', '_?_:_', '_&&_', '_||_'])

type ConstantKind = Extract<Expr['exprKind'], { case: 'constExpr' }>['value']['constantKind']

function constant(value: ConstantKind): Expr {
  return { $typeName: 'cel.expr.Expr', id: 0n, exprKind: { case: 'constExpr', value: { $typeName: 'cel.expr.Constant', constantKind: value } } }
}

function call(name: string, args: Expr[]): Expr {
  return { $typeName: 'cel.expr.Expr', id: 0n, exprKind: { case: 'callExpr', value: { $typeName: 'cel.expr.Expr.Call', function: name, args } } }
}

/**
 * map() and filter() build their result with `@result + [item]` once per element; the
 * evaluator's list concatenation is lazy and nests, so walking a list of n built that way
 * costs n² (and concatenating copies would too). Where the step only ever extends its own
 * accumulator (`acc + [x]`, or `cond ? acc + [x] : acc`), which starts as `[]` and which the
 * expression cannot name (`@result`), the step appends in place instead: no one else holds
 * the list before the comprehension returns it.
 */
function appendInPlace(c: Comprehension): void {
  const init = c.accuInit?.exprKind
  if (init?.case !== 'listExpr' || init.value.elements.length > 0 || !c.accuVar.startsWith('@')) return
  const isAccumulator = (e: Expr | undefined) => e?.exprKind.case === 'identExpr' && e.exprKind.value.name === c.accuVar
  const rewrite = (e: Expr | undefined): Expr | undefined => {
    if (e === undefined || isAccumulator(e)) return e
    if (e.exprKind.case !== 'callExpr' || e.exprKind.value.target !== undefined) return undefined
    const { function: name, args } = e.exprKind.value
    if (name === '_+_' && args.length === 2 && isAccumulator(args[0])) {
      const item = args[1]!.exprKind
      if (item.case !== 'listExpr' || item.value.elements.length !== 1 || item.value.optionalIndices.length > 0) return undefined
      return call('@evp_append', [args[0]!, item.value.elements[0]!])
    }
    if (name === '_?_:_' && args.length === 3) {
      const yes = rewrite(args[1])
      const no = rewrite(args[2])
      if (yes === undefined || no === undefined) return undefined
      return call('_?_:_', [args[0]!, yes, no])
    }
    return undefined
  }
  const step = rewrite(c.loopStep)
  if (step !== undefined) c.loopStep = step
}
