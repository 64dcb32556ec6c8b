import { readFile, stat } from 'node:fs/promises'
import { isAbsolute } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv, type ErrorObject } from 'ajv'
import { EventplaneError, type ErrorCode } from '../core/errors.ts'
import { deepMerge, isPlainObject, once, setOwn, type JsonObject } from '../core/objects.ts'
import { pointerPath } from '../core/pointer.ts'
import { parseYaml, type ParsedYaml, type SourcePosition } from '../core/yaml.ts'
import { StreamConfig } from './config.ts'
import { parseStreamKey, type StreamKey } from './keys.ts'
import { streamConfigFileSchema, streamDefaultsSchema, streamSettingsSchema, type StreamSettings } from './schema.ts'

/** A stream config larger than this is refused, from a file or a URL. */
export const maxStreamConfigBytes = 16 * 1024 * 1024

export const defaultFetchTimeoutMs = 10_000

export interface ParseStreamConfigOptions {
  /** File path or URL, used in error messages and kept on the config. */
  source: string
  generation?: number
  loadedAt?: number
}

export interface ReadStreamConfigOptions {
  /** For URLs: how long one fetch may take. */
  timeoutMs?: number
  signal?: AbortSignal
}

/**
 * Reads a stream config from an absolute file path or an http(s) URL and validates it.
 * Unreadable → EVP_STREAM_CONFIG_UNAVAILABLE; invalid → EVP_STREAM_CONFIG_INVALID or
 * EVP_STREAM_KEY_INVALID, with file:line:column in the message.
 *
 * @example
 * const config = await loadStreamConfig('/etc/eventplane/streams.yaml')
 * config.lookup('test.event')?.topics // ['datacenter1.test.event']
 */
export async function loadStreamConfig(
  source: string,
  options: ReadStreamConfigOptions & Omit<ParseStreamConfigOptions, 'source'> = {},
): Promise<StreamConfig> {
  const text = await readStreamConfigText(source, options)
  return parseStreamConfig(text, { ...options, source })
}

/** The raw text of a stream config source, size-limited. */
export async function readStreamConfigText(source: string, options: ReadStreamConfigOptions = {}): Promise<string> {
  if (/^https?:\/\//i.test(source)) return fetchText(source, options)
  const file = source.startsWith('file:') ? fileURLToPath(source) : source
  if (!isAbsolute(file)) {
    const what = `stream config source ${JSON.stringify(source)} must be an absolute path or an http(s) URL`
    throw new EventplaneError('EVP_CONFIG_INVALID', what, { details: { source } })
  }
  try {
    const { size } = await stat(file)
    if (size > maxStreamConfigBytes) throw tooLarge(file, size)
    return await readFile(file, 'utf8')
  } catch (error) {
    if (error instanceof EventplaneError) throw error
    const code = (error as NodeJS.ErrnoException).code
    throw new EventplaneError('EVP_STREAM_CONFIG_UNAVAILABLE', `cannot read stream config ${file}: ${code ?? String(error)}`, {
      cause: error,
      details: { source: file },
    })
  }
}

async function fetchText(url: string, options: ReadStreamConfigOptions): Promise<string> {
  const timeoutMs = options.timeoutMs ?? defaultFetchTimeoutMs
  const timeout = AbortSignal.timeout(timeoutMs)
  const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout
  const unavailable = (why: string, cause?: unknown) =>
    new EventplaneError('EVP_STREAM_CONFIG_UNAVAILABLE', `cannot fetch stream config ${url}: ${why}`, {
      cause,
      details: { source: url },
    })
  try {
    const response = await fetch(url, {
      signal,
      redirect: 'follow',
      headers: { accept: 'application/yaml, application/json;q=0.9, */*;q=0.1' },
    })
    if (!response.ok) {
      await response.body?.cancel()
      throw unavailable(`HTTP ${response.status}`)
    }
    const declared = Number(response.headers.get('content-length') ?? NaN)
    if (declared > maxStreamConfigBytes) {
      await response.body?.cancel()
      throw tooLarge(url, declared)
    }
    const chunks: Uint8Array[] = []
    let size = 0
    for await (const chunk of response.body ?? []) {
      size += chunk.byteLength
      if (size > maxStreamConfigBytes) throw tooLarge(url, size)
      chunks.push(chunk)
    }
    return Buffer.concat(chunks).toString('utf8')
  } catch (error) {
    if (error instanceof EventplaneError) throw error
    if (timeout.aborted) throw unavailable(`timed out after ${timeoutMs} ms`, error)
    throw unavailable((error as Error).message, error)
  }
}

function tooLarge(source: string, size: number): EventplaneError {
  return new EventplaneError('EVP_STREAM_CONFIG_INVALID', `${source}: ${size} bytes is over the ${maxStreamConfigBytes}-byte limit`, {
    details: { source, limit: maxStreamConfigBytes },
  })
}

const ajv = new Ajv({ allErrors: true, strict: true, allowUnionTypes: true })
// Compiled on first use: the CLI loads this module for commands that never parse a stream config.
const validators = once(() => ({
  file: ajv.compile<JsonObject>(streamConfigFileSchema),
  defaults: ajv.compile<JsonObject>(streamDefaultsSchema),
  settings: ajv.compile<StreamSettings>(streamSettingsSchema),
}))

interface Problem {
  code: ErrorCode
  message: string
  line: number | undefined
  column: number | undefined
  /** The stream key, or undefined for the top level and `defaults:`. */
  stream: string | undefined
  /** Dotted setting path inside the stream or `defaults:`. */
  setting: string | undefined
  /** A stream's problem whose value came from `defaults:`. */
  fromDefaults?: boolean
}

/**
 * Parses and validates stream config text (YAML 1.2 or JSON):
 *
 * ```yaml
 * defaults: { topic_prefixes: [datacenter1.] }
 * streams:
 *   test.event: { schema_title: eventplane/test/event }
 *   /^mediawiki\.job\..+/: { schema_title: mediawiki/job }
 * ```
 *
 * Every problem is reported, the first one's code is thrown; each message names the source,
 * line, column, stream key and setting.
 */
export function parseStreamConfig(text: string, options: ParseStreamConfigOptions): StreamConfig {
  const { source } = options
  const bytes = Buffer.byteLength(text)
  if (bytes > maxStreamConfigBytes) throw tooLarge(source, bytes)
  const parsed = parseYaml(text, { source, code: 'EVP_STREAM_CONFIG_INVALID' })
  const doc = parsed.value
  if (!isPlainObject(doc)) {
    const at = parsed.locate([]) ?? { line: 1, column: 1 }
    throw new EventplaneError(
      'EVP_STREAM_CONFIG_INVALID',
      `${source}:${at.line}:${at.column}: a stream config must be a mapping with a streams: key, not ${describeType(doc)}`,
      { details: { source, line: at.line, column: at.column } },
    )
  }
  const locator = new Locator(parsed, source)
  const { file: validateFile, defaults: validateDefaults, settings: validateSettings } = validators()
  if (!validateFile(doc)) {
    fail(source, (validateFile.errors ?? []).map((error) => locator.fromAjv(error, [], undefined)))
  }
  const defaults = doc['defaults'] as JsonObject | undefined
  const streams = doc['streams'] as JsonObject
  const problems: Problem[] = []
  const defaultsInvalid = defaults !== undefined && !validateDefaults(defaults)
  if (defaultsInvalid) {
    problems.push(...(validateDefaults.errors ?? []).map((error) => locator.fromAjv(error, ['defaults'], undefined)))
  }
  if (defaults !== undefined && Object.hasOwn(defaults, 'stream')) {
    const what = 'defaults: stream is computed from each key and cannot have a default'
    problems.push(locator.at('EVP_STREAM_CONFIG_INVALID', parsed.locate(['defaults', 'stream']), undefined, 'stream', what))
  }
  const entries: Array<{ key: StreamKey; settings: StreamSettings }> = []
  for (const [name, raw] of Object.entries(streams)) {
    const key = parseStreamKey(name)
    if ('problem' in key) {
      const what = `stream key ${JSON.stringify(name)} ${key.problem}`
      problems.push(locator.at('EVP_STREAM_KEY_INVALID', locator.keyPosition(['streams', name]), name, undefined, what))
      continue
    }
    const settings = merge(defaults, raw)
    if (!validateSettings(settings)) {
      for (const error of validateSettings.errors ?? []) {
        const problem = locator.forStream(error, name, raw, defaults)
        // A bad default is reported once, for defaults:, not again for every stream.
        if (!(problem.fromDefaults && defaultsInvalid)) problems.push(problem)
      }
      continue
    }
    if (isPlainObject(raw) && Object.hasOwn(raw, 'stream') && raw['stream'] !== name) {
      const at = parsed.locate(['streams', name, 'stream'])
      const what = `stream ${JSON.stringify(name)}: stream is computed from the key and may only repeat it`
      problems.push(locator.at('EVP_STREAM_CONFIG_INVALID', at, name, 'stream', what))
      continue
    }
    entries.push({ key, settings })
  }
  if (problems.length > 0) fail(source, problems)
  return new StreamConfig({ ...options, entries })
}

const maxProblemsInMessage = 20
const maxProblemsInDetails = 100

function fail(source: string, problems: Problem[]): never {
  // Key problems come first: settings are only meaningful once their keys are.
  const isKey = (p: Problem) => p.code === 'EVP_STREAM_KEY_INVALID'
  const ordered = [...problems.filter(isKey), ...problems.filter((p) => !isKey(p))]
  const first = ordered[0]!
  const shown = ordered.slice(0, maxProblemsInMessage).map((p) => p.message)
  if (ordered.length > maxProblemsInMessage) shown.push(`… and ${ordered.length - maxProblemsInMessage} more problems`)
  throw new EventplaneError(first.code, shown.join('\n'), {
    details: {
      source,
      line: first.line,
      column: first.column,
      stream: first.stream,
      setting: first.setting,
      problems: ordered
        .slice(0, maxProblemsInDetails)
        .map(({ message, line, column, stream, setting, code }) => ({ code, message, line, column, stream, setting })),
    },
  })
}

/** Turns validation errors into messages that point at the right line of the file. */
class Locator {
  readonly #parsed: ParsedYaml
  readonly #source: string

  constructor(parsed: ParsedYaml, source: string) {
    this.#parsed = parsed
    this.#source = source
  }

  at(code: ErrorCode, at: SourcePosition | undefined, stream: string | undefined, setting: string | undefined, what: string): Problem {
    const where = at === undefined ? this.#source : `${this.#source}:${at.line}:${at.column}`
    return { code, message: `${where}: ${what}`, line: at?.line, column: at?.column, stream, setting }
  }

  /** An error about the top level or `defaults:`; `base` is where the validated value sits. */
  fromAjv(error: ErrorObject, base: string[], stream: string | undefined): Problem {
    const parent = instancePath(error)
    const setting = settingName(error, parent)
    const at =
      error.keyword === 'required'
        ? this.keyPosition([...base, ...parent])
        : this.#parsed.locate([...base, ...parent, ...extra(error)])
    const scope = base.length === 0 ? '' : `${base[0]}: `
    return this.at('EVP_STREAM_CONFIG_INVALID', at, stream, setting, `${scope}${describe(error, setting)}`)
  }

  /**
   * An error about a stream's merged settings. The value at fault came from the stream's own
   * settings when it has that path, else from `defaults:`; a missing setting points at the key
   * of the mapping it is missing from.
   */
  forStream(error: ErrorObject, name: string, raw: unknown, defaults: JsonObject | undefined): Problem {
    const parent = instancePath(error)
    const setting = settingName(error, parent)
    const required = error.keyword === 'required'
    const path = required ? parent : [...parent, ...extra(error)]
    const find = required ? this.keyPosition.bind(this) : this.#parsed.locate.bind(this.#parsed)
    const fromDefaults = path.length > 0 && !hasPath(raw, path) && hasPath(defaults, path)
    let at: SourcePosition | undefined
    if (path.length > 0 && hasPath(raw, path)) at = find(['streams', name, ...path])
    else if (fromDefaults) at = find(['defaults', ...path])
    else at = required || path.length > 0 ? this.keyPosition(['streams', name]) : this.#parsed.locate(['streams', name])
    const scope = `stream ${JSON.stringify(name)}${fromDefaults ? ' (from defaults)' : ''}: `
    return { ...this.at('EVP_STREAM_CONFIG_INVALID', at, name, setting, `${scope}${describe(error, setting)}`), fromDefaults }
  }

  keyPosition(path: ReadonlyArray<string | number>): SourcePosition | undefined {
    return this.#parsed.locateKey(path)
  }
}

function instancePath(error: ErrorObject): Array<string | number> {
  return pointerPath(error.instancePath)
}

/** The property an error is about when ajv reports it on the parent object. */
function extra(error: ErrorObject): string[] {
  if (error.keyword === 'additionalProperties') return [String(error.params['additionalProperty'])]
  return []
}

function settingName(error: ErrorObject, path: ReadonlyArray<string | number>): string | undefined {
  const full = [...path]
  if (error.keyword === 'required') full.push(String(error.params['missingProperty']))
  if (error.keyword === 'additionalProperties') full.push(String(error.params['additionalProperty']))
  if (full.length === 0) return undefined
  return full.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replace(/\.\[/g, '[')
}

function describe(error: ErrorObject, setting: string | undefined): string {
  const name = setting ?? 'settings'
  switch (error.keyword) {
    case 'required':
      return `${name} is required`
    case 'additionalProperties':
      return `${name} is not a known key`
    case 'type':
      return `${name} must be ${[error.params['type']].flat().map((t) => typeWords[String(t)] ?? String(t)).join(' or ')}`
    case 'enum':
      return `${name} must be one of ${(error.params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`
    default:
      return `${name} ${error.message ?? 'is invalid'}`
  }
}

const typeWords: Record<string, string> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  number: 'a number',
  integer: 'an integer',
  boolean: 'a boolean (true or false)',
  null: 'null',
}

/**
 * `defaults:` deep-merged under a stream's settings, with the stream's own keys first so that
 * listings read like the file.
 */
function merge(defaults: JsonObject | undefined, raw: unknown): unknown {
  if (defaults === undefined || !isPlainObject(raw)) return defaults === undefined ? structuredClone(raw) : deepMerge(defaults, raw)
  const merged = deepMerge(defaults, raw) as JsonObject
  const out: JsonObject = {}
  for (const key of [...Object.keys(raw), ...Object.keys(merged)]) {
    if (!Object.hasOwn(out, key)) setOwn(out, key, merged[key])
  }
  return out
}

function hasPath(value: unknown, path: ReadonlyArray<string | number>): boolean {
  let at: unknown = value
  for (const part of path) {
    if (typeof at !== 'object' || at === null || !Object.hasOwn(at, part)) return false
    at = (at as Record<string | number, unknown>)[part]
  }
  return true
}

function describeType(value: unknown): string {
  if (value === null || value === undefined) return 'an empty document'
  if (Array.isArray(value)) return 'a list'
  return `a ${typeof value}`
}
