import type { FromSchema } from 'json-schema-to-ts'

/**
 * JSON Schema of `eventplane.yaml`. The config type below is derived from it, and defaults
 * live here, so the file, the validation and the TypeScript type cannot drift apart.
 * Relative paths in a config file are resolved against the folder of that file.
 */
export const configSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'eventplane.yaml',
  type: 'object',
  additionalProperties: false,
  properties: {
    server: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        host: { type: 'string', minLength: 1, default: '127.0.0.1', description: 'Interface to listen on (env HOST).' },
        port: { type: 'integer', minimum: 0, maximum: 65535, default: 8192, description: 'TCP port (env PORT).' },
        shutdown_timeout_ms: { type: 'integer', minimum: 0, maximum: 600000, default: 10000 },
      },
    },
    data_dir: {
      type: 'string',
      minLength: 1,
      default: './data',
      description: 'Where embedded data lives (env EVENTPLANE_DATA_DIR).',
    },
    log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        level: {
          type: 'string',
          enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
          default: 'info',
          description: 'pino log level (env EVENTPLANE_LOG_LEVEL).',
        },
      },
    },
    schemas: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        repositories: {
          type: 'array',
          default: [],
          description: 'Schema repositories served at /repositories/{name} and used to resolve $schema URIs.',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['name', 'path'],
            properties: {
              name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' },
              path: {
                type: 'string',
                minLength: 1,
                description: 'Repository root (with .jsonschema-tools.yaml) or the schema folder itself.',
              },
            },
          },
        },
        base_uris: {
          type: 'array',
          items: { type: 'string', minLength: 1 },
          description:
            'Ordered base URIs for schema lookups: repo:<name>, a local folder, or an http(s) schema service. ' +
            'Default: every repository, in order.',
        },
        remote_timeout_ms: { type: 'integer', minimum: 1, maximum: 120000, default: 5000 },
        max_file_bytes: { type: 'integer', minimum: 1024, maximum: 268435456, default: 4194304 },
        cache_max_age_s: {
          type: 'integer',
          minimum: 0,
          default: 31536000,
          description: 'Cache-Control max-age for versioned (immutable) schema files.',
        },
      },
    },
    stream_config: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        source: {
          type: 'string',
          minLength: 1,
          description: 'Stream config YAML: a local file or an http(s) URL.',
        },
        watch: { type: 'boolean', default: true, description: 'Reload a local file when it changes.' },
        refresh_interval_s: {
          type: 'integer',
          minimum: 1,
          default: 60,
          description: 'How often a remote stream config is fetched again.',
        },
        cache_max_age_s: { type: 'integer', minimum: 0, default: 600 },
      },
    },
  },
} as const

export type Config = FromSchema<typeof configSchema>

/** Environment variables that override config keys, documented in docs/config.md. */
export const envOverrides = [
  { env: 'PORT', path: ['server', 'port'], type: 'integer' },
  { env: 'HOST', path: ['server', 'host'], type: 'string' },
  { env: 'EVENTPLANE_PORT', path: ['server', 'port'], type: 'integer' },
  { env: 'EVENTPLANE_HOST', path: ['server', 'host'], type: 'string' },
  { env: 'EVENTPLANE_DATA_DIR', path: ['data_dir'], type: 'string' },
  { env: 'EVENTPLANE_LOG_LEVEL', path: ['log', 'level'], type: 'string' },
  { env: 'EVENTPLANE_STREAM_CONFIG', path: ['stream_config', 'source'], type: 'string' },
] as const
