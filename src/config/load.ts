import { readFileSync, statSync } from 'node:fs'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ajv, type ErrorObject } from 'ajv'
import { EventplaneError } from '../core/errors.ts'
import { parseYaml, type ParsedYaml } from '../core/yaml.ts'
import { pointerPath } from '../core/pointer.ts'
import { deepFreeze, once } from '../core/objects.ts'
import { configSchema, envOverrides, type Config } from './schema.ts'

/** The bundled config that `npm start` uses when no config is named. */
export const bundledConfigPath = fileURLToPath(new URL('../../defaults/eventplane.yaml', import.meta.url))

const maxConfigBytes = 1024 * 1024

export interface LoadedConfig {
  /** Validated, defaults filled in, relative paths made absolute, frozen. */
  readonly config: Readonly<Config>
  /** The file the config came from. */
  readonly file: string
}

export interface LoadConfigOptions {
  /** `--config` on the command line; wins over EVENTPLANE_CONFIG. */
  path?: string | undefined
  env?: NodeJS.ProcessEnv
  cwd?: string
}

/** Where the config comes from: `--config`, then EVENTPLANE_CONFIG, then the bundled defaults. */
export function configPathFrom(options: LoadConfigOptions): string {
  const env = options.env ?? process.env
  const cwd = options.cwd ?? process.cwd()
  const named = options.path ?? (env['EVENTPLANE_CONFIG'] || undefined)
  return named === undefined ? bundledConfigPath : resolve(cwd, named)
}

/**
 * Reads, validates and freezes `eventplane.yaml`. Every error names the file, the line and
 * the key, for example `eventplane.yaml:4:9: server.port must be <= 65535`.
 */
export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const env = options.env ?? process.env
  const file = configPathFrom(options)
  const text = readConfigText(file)
  const parsed = parseYaml(text, { source: file, code: 'EVP_CONFIG_PARSE' })
  const raw = parsed.value ?? {}
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new EventplaneError('EVP_CONFIG_INVALID', `${file}:1:1: the config must be a mapping of keys`, {
      details: { file, line: 1 },
    })
  }
  const data = structuredClone(raw) as Record<string, unknown>
  const fromEnv = applyEnv(data, env, file)
  validate(data, parsed, file, fromEnv)
  const config = data as unknown as Config
  resolvePaths(config, dirname(file), raw as Record<string, unknown>, options.cwd ?? process.cwd())
  return { config: deepFreeze(config), file }
}

function readConfigText(file: string): string {
  try {
    const size = statSync(file).size
    if (size > maxConfigBytes) {
      throw new EventplaneError('EVP_CONFIG_INVALID', `${file}: ${size} bytes is over the ${maxConfigBytes}-byte limit`, {
        details: { file },
      })
    }
    return readFileSync(file, 'utf8')
  } catch (error) {
    if (error instanceof EventplaneError) throw error
    const code = (error as NodeJS.ErrnoException).code
    throw new EventplaneError('EVP_CONFIG_NOT_FOUND', `cannot read config file ${file}: ${code ?? String(error)}`, {
      cause: error,
      details: { file },
    })
  }
}

/** Applies PORT, HOST, … and returns which keys they set, so errors can name the variable. */
function applyEnv(data: Record<string, unknown>, env: NodeJS.ProcessEnv, file: string): Map<string, string> {
  const applied = new Map<string, string>()
  for (const { env: name, path, type } of envOverrides) {
    const text = env[name]
    if (text === undefined || text === '') continue
    let value: string | number | string[] = text
    if (type === 'list') {
      value = text.split(',').map((item) => item.trim()).filter((item) => item !== '')
    } else if (type === 'integer') {
      if (!/^-?\d+$/.test(text.trim())) {
        throw new EventplaneError('EVP_CONFIG_INVALID', `${name}=${JSON.stringify(text)} must be an integer`, {
          details: { file, env: name },
        })
      }
      value = Number(text.trim())
    }
    let target = data
    for (const key of path.slice(0, -1)) {
      const next = target[key]
      if (typeof next !== 'object' || next === null || Array.isArray(next)) target[key] = {}
      target = target[key] as Record<string, unknown>
    }
    target[path[path.length - 1] as string] = value
    applied.set(path.join('.'), name)
  }
  return applied
}

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true })
const validateConfig = once(() => ajv.compile(configSchema))

function validate(data: Record<string, unknown>, parsed: ParsedYaml, file: string, fromEnv: Map<string, string>): void {
  const validator = validateConfig()
  if (validator(data)) return
  const problems = (validator.errors ?? []).map((error) => describe(error, parsed, file, fromEnv))
  const first = problems[0]!
  throw new EventplaneError('EVP_CONFIG_INVALID', problems.map((p) => p.message).join('\n'), {
    details: { file, line: first.line, key: first.key, problems },
  })
}

interface ConfigProblem {
  message: string
  key: string
  line: number | undefined
}

function describe(error: ErrorObject, parsed: ParsedYaml, file: string, fromEnv: Map<string, string>): ConfigProblem {
  const path = pointerPath(error.instancePath)
  const unknownKey = error.keyword === 'additionalProperties'
  if (unknownKey) path.push(String(error.params['additionalProperty']))
  const key = path.map((p) => (typeof p === 'number' ? `[${p}]` : p)).join('.').replace(/\.\[/g, '[') || '(root)'
  // A list from the environment (EVENTPLANE_ROLES=a,b) is wrong at one of its items.
  const named = path.findIndex((_, i) => fromEnv.has(path.slice(0, i + 1).join('.')))
  const envName = named === -1 ? undefined : fromEnv.get(path.slice(0, named + 1).join('.'))
  const what =
    error.keyword === 'additionalProperties'
      ? `${key} is not a known key`
      : error.keyword === 'enum'
        ? `${key} must be one of ${(error.params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`
        : `${key} ${error.message ?? 'is invalid'}`
  if (envName !== undefined) return { message: `${envName} (${key}): ${what}`, key, line: undefined }
  const at = unknownKey ? parsed.locateKey(path) : parsed.locate(path)
  const where = at === undefined ? file : `${file}:${at.line}:${at.column}`
  return { message: `${where}: ${what}`, key, line: at?.line }
}

function isUrl(value: string): boolean {
  return /^https?:\/\//i.test(value)
}

function resolvePaths(config: Config, base: string, raw: Record<string, unknown>, cwd: string): void {
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p))
  for (const repository of config.schemas.repositories) repository.path = abs(repository.path)
  if (config.schemas.base_uris) {
    config.schemas.base_uris = config.schemas.base_uris.map((uri) =>
      isUrl(uri) || uri.startsWith('repo:') || uri.startsWith('file://') ? uri : abs(uri),
    )
  }
  if (config.stream_config.source !== undefined && !isUrl(config.stream_config.source)) {
    config.stream_config.source = abs(config.stream_config.source)
  }
  // data_dir from the file is relative to the file; the default is relative to where we run.
  config.data_dir = 'data_dir' in raw ? abs(config.data_dir) : resolve(cwd, config.data_dir)
  const tls = config.event_log.kafka.tls
  if (tls !== undefined) {
    for (const key of ['ca_file', 'cert_file', 'key_file'] as const) {
      const file = tls[key]
      if (file !== undefined) tls[key] = abs(file)
    }
  }
  for (const principal of [...config.auth.producers, ...config.auth.readers]) {
    if (principal.token_file !== undefined) principal.token_file = abs(principal.token_file)
  }
  config.event_log.path = config.event_log.path === undefined ? join(config.data_dir, 'events.sqlite') : abs(config.event_log.path)
}
