import { accessSync, constants, existsSync, statSync } from 'node:fs'
import { dirname } from 'node:path'
import type { Config } from '../config/index.ts'
import { toEventplaneError, type ErrorCode } from '../core/errors.ts'
import { loadStreamConfig, type StreamConfig } from '../streamconfig/index.ts'
import { kafkaSecurity } from '../log/index.ts'
import { createAuth } from '../auth/index.ts'
import { hasRole } from './app.ts'
import { openSchemas, resolveBaseUris, servedDuplicates } from './schemas.ts'

/** Something `serve` would refuse (`error`), or would run with but not as one expects (`warning`). */
export interface Finding {
  level: 'error' | 'warning'
  code: ErrorCode
  /** The config key to look at. */
  key: string
  message: string
}

/**
 * What `eventplane serve` would find wrong with a config that is valid against its schema,
 * found without starting anything or writing anything: schema folders that do not exist, a
 * stream config that does not load, a data folder that cannot be written, an error stream the
 * stream config lacks. `eventplane config check` reports these, so that a config that passes it
 * also starts.
 *
 * @example
 * for (const f of await preflight(config)) console.error(`${f.level}: ${f.key}: ${f.message}`)
 */
export async function preflight(config: Readonly<Config>): Promise<Finding[]> {
  const findings: Finding[] = []
  const fail = (key: string, error: unknown) => {
    const e = toEventplaneError(error)
    findings.push({ level: 'error', code: e.code, key, message: e.message })
  }

  // Tokens are read as serve reads them (from the environment and files), and never printed.
  try {
    createAuth(config.auth)
  } catch (error) {
    const e = toEventplaneError(error)
    fail(typeof e.details?.['key'] === 'string' ? (e.details['key'] as string) : 'auth', e)
  }

  let schemas: ReturnType<typeof openSchemas>['schemas'] | undefined
  try {
    const opened = openSchemas(config)
    schemas = opened.schemas
    for (const { id, repositories, what } of await servedDuplicates(opened.repositories, resolveBaseUris(config, opened.repositories))) {
      findings.push({
        level: 'warning',
        code: 'EVP_SCHEMA_ID_DUPLICATE',
        key: 'schemas.repositories',
        message: `${id} is defined differently by ${repositories.join(' and ')} ${what}; schemas.base_uris sets the order`,
      })
    }
  } catch (error) {
    fail('schemas.repositories', error)
  }

  let streams: StreamConfig | undefined
  const source = config.stream_config.source
  if (source !== undefined) {
    try {
      streams = await loadStreamConfig(source, { timeoutMs: 10_000 })
    } catch (error) {
      fail('stream_config.source', error)
    }
  }

  const usesLog = hasRole(config, 'intake') || hasRole(config, 'streams')
  if (usesLog && config.event_log.backend === 'kafka') {
    if (config.event_log.kafka.brokers === undefined) {
      findings.push({ level: 'error', code: 'EVP_CONFIG_INVALID', key: 'event_log.kafka.brokers', message: 'event_log.backend is kafka but no brokers are set: list them (host:port), or set EVENTPLANE_KAFKA_BROKERS' })
    }
    try {
      kafkaSecurity(config.event_log.kafka)
    } catch (error) {
      fail('event_log.kafka', error)
    }
  } else if (usesLog) {
    const problem = unwritable(config.event_log.path!)
    if (problem !== undefined) findings.push({ level: 'error', code: 'EVP_LOG_UNAVAILABLE', key: 'event_log.path', message: problem })
  }

  const errorStream = config.intake.error_stream
  if (hasRole(config, 'intake') && errorStream) {
    if (streams !== undefined && !config.intake.allow_unknown_streams && streams.resolve(errorStream) === undefined) {
      findings.push({
        level: 'warning',
        code: 'EVP_STREAM_NOT_ALLOWED',
        key: 'intake.error_stream',
        message: `${errorStream} is not in the stream config ${source}: refused events get no error events. Add the stream (as defaults/streams.yaml has it: schema_title: eventplane/error), or set intake.error_stream: null`,
      })
    }
    if (schemas !== undefined) {
      try {
        await schemas.get(config.intake.error_schema_uri)
      } catch (error) {
        findings.push({ level: 'warning', code: toEventplaneError(error).code, key: 'intake.error_schema_uri', message: `${config.intake.error_schema_uri}: ${toEventplaneError(error).message}: refused events get no error events` })
      }
    }
  }
  return findings
}

/** Why the SQLite file cannot be made or written at `path`, or undefined. */
function unwritable(path: string): string | undefined {
  if (existsSync(path)) {
    if (!statSync(path).isFile()) return `${path} is not a file`
    try {
      accessSync(path, constants.R_OK | constants.W_OK)
      return undefined
    } catch {
      return `${path} cannot be read and written by this user`
    }
  }
  // The folder is made at start: the nearest folder that exists must be writable.
  let folder = dirname(path)
  while (!existsSync(folder) && dirname(folder) !== folder) folder = dirname(folder)
  if (!statSync(folder).isDirectory()) return `${folder} is not a folder, so ${path} cannot be made`
  try {
    accessSync(folder, constants.W_OK)
    return undefined
  } catch {
    return `${folder} cannot be written by this user, so ${path} cannot be made`
  }
}
