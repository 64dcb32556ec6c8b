import type { FromSchema } from 'json-schema-to-ts'

/**
 * JSON Schema of one stream's settings, after `defaults:` are merged under it. The settings
 * that Eventplane and its clients read are typed; any other key is a custom setting and is
 * passed through untouched (EventStreamConfig allows arbitrary settings too).
 */
export const streamSettingsSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'stream settings',
  type: 'object',
  required: ['schema_title'],
  additionalProperties: true,
  properties: {
    schema_title: {
      type: 'string',
      minLength: 1,
      description: 'The `title` every event in the stream must have in its schema (any version of it).',
    },
    stream: {
      type: 'string',
      description: 'Computed: the stream name. Accepted in the file only when it equals the key.',
    },
    description: { type: 'string' },
    sample: {
      type: 'object',
      additionalProperties: false,
      required: ['rate'],
      description: 'Client-side sampling.',
      properties: {
        rate: { type: 'number', minimum: 0, maximum: 1 },
        unit: { type: 'string', enum: ['pageview', 'session', 'device'] },
      },
    },
    topic_prefixes: {
      type: ['array', 'null'],
      items: { type: 'string', pattern: '^[A-Za-z0-9_.-]*$', maxLength: 200 },
      description: 'Topics are prefix + stream for each prefix; null means the topic is the stream name.',
    },
    topics: {
      type: 'array',
      minItems: 1,
      items: { type: 'string', minLength: 1 },
      description: 'Explicit topics; when set, topic_prefixes are not used.',
    },
    message_key_fields: {
      type: 'object',
      additionalProperties: { type: 'string', pattern: '^[^.\\s]+(\\.[^.\\s]+)*$' },
      description: 'Kafka message key: key name → dotted path of the event field that gives its value.',
    },
    canary_events_enabled: { type: 'boolean' },
    destination_event_service: { type: 'string', minLength: 1 },
    producers: { type: 'object', description: 'Per-producer settings, keyed by producer name.' },
    consumers: { type: 'object', description: 'Per-consumer settings, keyed by consumer name.' },
    stream_aliases: { type: 'array', items: { type: 'string', minLength: 1 } },
  },
} as const

/** One stream's settings as written (defaults merged in), before `stream` and `topics` are computed. */
export type StreamSettings = FromSchema<typeof streamSettingsSchema>

/**
 * Settings as returned by a lookup: everything from the file plus the computed `stream`
 * (the requested name, or the key when listing) and `topics`. Frozen.
 */
export type ResolvedStreamSettings = Readonly<StreamSettings & { stream: string; topics: readonly string[] }>

/** `defaults:` has the same typed settings, none of them required. */
export const streamDefaultsSchema = {
  ...streamSettingsSchema,
  title: 'stream defaults',
  required: [],
} as const

/** The top level of a stream config file. Stream keys and settings are checked separately. */
export const streamConfigFileSchema = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'streams.yaml',
  type: 'object',
  additionalProperties: false,
  required: ['streams'],
  properties: {
    defaults: { type: 'object', description: 'Settings deep-merged under every stream.' },
    streams: { type: 'object', description: 'Stream name or /regex/ → settings.' },
  },
} as const
