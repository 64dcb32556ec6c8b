import type { FromSchema } from 'json-schema-to-ts'

/** A producer or a reader of `auth`: a name, where its token is, and its streams. */
const principalSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'streams'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$', description: 'Names it in metrics and logs (never the token).' },
    token_env: { type: 'string', pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: 'The environment variable that holds its token (or token_file).' },
    token_file: { type: 'string', minLength: 1, description: 'A file that holds its tokens, one per line (several during a rotation); relative to this file.' },
    streams: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, description: 'Streams it may write (or read): names or /regex/.' },
  },
} as const

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
        roles: {
          type: 'array',
          items: { type: 'string', enum: ['all', 'intake', 'streams', 'schemas'] },
          minItems: 1,
          uniqueItems: true,
          default: ['all'],
          description:
            'What this process serves: intake (POST /v1/events), streams (/v2/stream, /v2/ui), schemas (schema repositories and the stream config API), or all. Health, metrics and the API document are always served (env EVENTPLANE_ROLES, serve --role).',
        },
        shutdown_timeout_ms: { type: 'integer', minimum: 0, maximum: 600000, default: 10000 },
        max_connections: {
          type: 'integer',
          minimum: 0,
          default: 20000,
          description: 'Open TCP connections the server holds at once (0: no limit); over it, new ones get 503 EVP_OVERLOADED and are closed.',
        },
        max_connections_per_ip: {
          type: 'integer',
          minimum: 0,
          default: 256,
          description: 'Open TCP connections from one peer address (0: no limit); peers in trust_proxy are exempt. Over it: 429 EVP_TOO_MANY_CONNECTIONS.',
        },
        headers_timeout_ms: {
          type: 'integer',
          minimum: 100,
          maximum: 600000,
          default: 10000,
          description: 'Time a client has to send the request line and headers (408 EVP_REQUEST_TIMEOUT after it).',
        },
        request_timeout_ms: {
          type: 'integer',
          minimum: 100,
          maximum: 3600000,
          default: 30000,
          description: 'Time a client has to send a whole request, body included (not the answer: streams last for hours).',
        },
        keep_alive_timeout_ms: { type: 'integer', minimum: 0, maximum: 600000, default: 5000, description: 'How long an idle keep-alive connection is kept open.' },
        metrics: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            port: {
              type: ['integer', 'null'],
              minimum: 0,
              maximum: 65535,
              default: null,
              description: 'Serve /metrics on a listener of its own on this port (and not on the main one); null: on the main listener.',
            },
            host: { type: ['string', 'null'], minLength: 1, default: null, description: 'Interface of the metrics listener; null: server.host.' },
          },
        },
        trust_proxy: {
          description:
            'Proxies whose X-Forwarded-For and X-Client-IP headers are believed: false (none), true (all), ' +
            'or a list of addresses/CIDRs such as [127.0.0.1, 10.0.0.0/8].',
          default: false,
          anyOf: [{ type: 'boolean' }, { type: 'array', items: { type: 'string', minLength: 1 } }],
        },
        cors: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            origins: {
              type: 'array',
              items: { type: 'string', minLength: 1 },
              default: ['*'],
              description: "Origins allowed to call the APIs from a browser; ['*'] for any, [] for none.",
            },
            max_age_s: { type: 'integer', minimum: 0, default: 86400, description: 'How long browsers may cache a preflight.' },
          },
        },
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
              compat_rules: {
                enum: ['1.2', '1.3'],
                description:
                  "The jsonschema-tools release whose compatibility rule applies (1.3 lets maxLength change within a major). Default: the version the repository pins in its package-lock.json or package.json, else 1.3.",
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
    intake: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        max_body_bytes: { type: 'integer', minimum: 1024, maximum: 268435456, default: 4194304 },
        max_depth: {
          type: 'integer',
          minimum: 2,
          maximum: 1000,
          default: 64,
          description: 'Deepest JSON nesting accepted in a request body.',
        },
        max_events_per_request: {
          type: 'integer',
          minimum: 1,
          maximum: 1000000,
          default: 10000,
          description: 'Most events in one request; more is 413 EVP_TOO_MANY_EVENTS, before any is processed.',
        },
        max_pending_body_bytes: {
          type: 'integer',
          minimum: 1048576,
          default: 268435456,
          description: 'Bytes of request bodies being received, over all connections; a request that would pass it gets 503 EVP_OVERLOADED.',
        },
        max_refusals_listed: {
          type: 'integer',
          minimum: 1,
          maximum: 100000,
          default: 100,
          description: 'Refused events an answer lists per group (invalid, error); the rest are counted in `omitted`.',
        },
        event_time: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'The window meta.dt (the event log timestamp) must fall in; outside it, an event is refused with EVP_EVENT_TIME_OUT_OF_RANGE.',
          properties: {
            max_future_s: {
              type: ['integer', 'null'],
              minimum: 0,
              default: 3600,
              description: "Seconds meta.dt may be ahead of the server's clock (Kafka 4 refuses more than an hour); null: no limit.",
            },
            max_past_s: { type: ['integer', 'null'], minimum: 1, default: null, description: 'Seconds meta.dt may be behind the clock; null: any time since 1970.' },
          },
        },
        max_regex_streams: {
          type: 'integer',
          minimum: 0,
          default: 1000,
          description: 'Distinct streams (and so topics) that /regex/ stream keys may make; a new one past it is refused with EVP_STREAM_LIMIT_REACHED.',
        },
        dedupe: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'Events sent again with a meta.id this process appended lately are answered accepted and not appended twice.',
          properties: {
            max_ids: { type: 'integer', minimum: 0, maximum: 10000000, default: 200000, description: 'Producer-given meta.ids remembered (about 120 bytes each); 0 turns dedupe off.' },
            window_s: { type: 'integer', minimum: 1, maximum: 86400, default: 600, description: 'How long an id is remembered (fewer when max_ids is reached first).' },
          },
        },
        beacon: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'The legacy EventLogging beacon, GET /beacon/event?<url-encoded JSON capsule>; (docs/intake.md, "Legacy beacon").',
          properties: {
            enabled: { type: 'boolean', default: true, description: 'Whether /beacon/event is served (with the intake).' },
            max_url_length: {
              type: 'integer',
              minimum: 100,
              maximum: 16000,
              default: 2000,
              description: 'Longest beacon URL (path and query) taken; longer is 414 EVP_BEACON_URL_TOO_LONG. 2,000 is what EventLogging clients send at most.',
            },
            schemas: {
              type: 'object',
              default: { EventplaneTest: '1.0.0' },
              propertyNames: { pattern: '^[A-Za-z0-9_.-]{1,63}$' },
              additionalProperties: { type: 'string', pattern: '^\\d+\\.\\d+\\.\\d+$' },
              description: 'Legacy schema name → version of its migrated schema /analytics/legacy/<lowercase name>/<version> (MediaWiki\'s EventLogging.Schemas); capsules of other schemas are counted and dropped.',
            },
          },
        },
        schema_uri_field: { type: 'string', minLength: 1, default: '$schema', description: 'Dotted path of the schema URI in an event.' },
        stream_field: { type: 'string', minLength: 1, default: 'meta.stream', description: 'Dotted path of the stream name in an event.' },
        schema_uri_query_param: {
          type: ['string', 'null'],
          default: 'schema_uri',
          description: 'Query parameter that supplies $schema to events without one (null: off).',
        },
        stream_query_param: {
          type: ['string', 'null'],
          default: 'stream',
          description: 'Query parameter that supplies the stream to events without one (null: off).',
        },
        allow_absolute_schema_uris: {
          type: 'boolean',
          default: false,
          description: 'Accept $schema URIs like https://host/path when they lie under an http(s) base URI.',
        },
        allow_unknown_streams: { type: 'boolean', default: false, description: 'Accept streams the stream config does not name.' },
        topic_prefix: {
          type: 'string',
          pattern: '^[A-Za-z0-9_.-]*$',
          default: 'datacenter1.',
          description: 'Prefix of the topics this intake writes to: the topic of a stream is prefix + stream.',
        },
        error_stream: {
          type: ['string', 'null'],
          default: 'eventplane.error.validation',
          description: 'Stream that gets an error event for every event refused as invalid (null: off).',
        },
        error_schema_uri: { type: 'string', minLength: 1, default: '/eventplane/error/1.0.0' },
        emitter_id: { type: 'string', minLength: 1, default: 'eventplane-intake' },
        error_events_per_s: {
          type: 'number',
          minimum: 0,
          default: 100,
          description: 'Error events written per second, on average (0: no limit); the rest are counted in eventplane_intake_error_events_suppressed_total.',
        },
        error_events_burst: { type: 'integer', minimum: 1, default: 1000, description: 'Error events that may be written at once before the rate applies.' },
        error_event_max_raw_bytes: {
          type: 'integer',
          minimum: 256,
          maximum: 4194304,
          default: 65536,
          description: 'raw_event of an error event is cut to this many characters.',
        },
        validator_cache_size: { type: 'integer', minimum: 1, default: 1000, description: 'Compiled schemas kept.' },
        test_events: {
          type: 'array',
          items: { type: 'object' },
          description: 'Events processed by GET /v1/_test/events, as if they had been posted (readiness checks).',
        },
      },
    },
    streams: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        allowed: {
          type: ['array', 'null'],
          items: { type: 'string', minLength: 1 },
          default: null,
          description: 'Streams served over SSE; null: every configured stream (not regex keys) and its aliases.',
        },
        event_id: {
          type: 'string',
          enum: ['both', 'offset', 'timestamp'],
          default: 'both',
          description:
            'What SSE ids hold per partition: offset and timestamp (both; a resume uses the offset), or only one of them.',
        },
        heartbeat_interval_s: { type: 'number', minimum: 0.05, maximum: 3600, default: 15, description: 'Comment sent to idle connections.' },
        retry_ms: { type: 'integer', minimum: 0, maximum: 600000, default: 2000, description: 'SSE retry: hint for reconnecting clients.' },
        max_connections_per_ip: { type: 'integer', minimum: 0, default: 10, description: '0: no limit. Over it: 429.' },
        max_streams_per_request: { type: 'integer', minimum: 1, maximum: 10000, default: 100, description: 'Distinct streams one request may name.' },
        slow_client_grace_ms: {
          type: 'integer',
          minimum: 0,
          maximum: 600000,
          default: 2000,
          description: 'A client dropped for reading too slowly has this long to take its last bytes before its socket is destroyed.',
        },
        redact_fields: {
          type: 'array',
          items: { type: 'string', pattern: '^[A-Za-z0-9_$-]+(\\.[A-Za-z0-9_$-]+)*$' },
          default: ['http.client_ip', 'http.request_headers'],
          description: 'Dotted paths removed from events before they are streamed; a stream replaces the list with consumers.eventplane_streams.redact_fields.',
        },
        expose_error_stream: { type: 'boolean', default: false, description: 'Serve the error stream (intake.error_stream) over SSE.' },
        dedupe_window: {
          type: 'integer',
          minimum: 0,
          maximum: 1000000,
          default: 10000,
          description:
            'An event whose meta.id equals that of one of this many records before it in its partition is a copy (a producer sent it again after an unconfirmed write) and is not streamed; 0 streams every record. Costs about 100 bytes per id, twice this many ids per partition being followed.',
        },
        max_buffered_bytes: {
          type: 'integer',
          minimum: 4096,
          default: 4194304,
          description: 'A client whose unsent data passes this is too slow: it gets an error event and is disconnected.',
        },
        max_filter_length: { type: 'integer', minimum: 1, maximum: 100000, default: 2000 },
        max_filter_nodes: { type: 'integer', minimum: 1, maximum: 10000, default: 200, description: 'Size bound of a CEL filter.' },
        max_filter_nesting: {
          type: 'integer',
          minimum: 0,
          maximum: 10,
          default: 2,
          description: 'Deepest nesting of CEL comprehensions (all, exists, map, filter) in a filter.',
        },
        filter_budget: {
          type: 'integer',
          minimum: 100,
          maximum: 100000000,
          default: 100000,
          description: 'Evaluation steps a filter may take on one event; over it the event is skipped and counted.',
        },
        reader_per_client: {
          type: 'boolean',
          default: false,
          description: 'One log reader per client (the KafkaSSE design) instead of one shared per partition, and no dedupe (KafkaSSE has none); kept as the baseline of bench/sse.',
        },
      },
    },
    event_log: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        backend: {
          type: 'string',
          enum: ['sqlite', 'kafka'],
          default: 'sqlite',
          description: 'sqlite: embedded, one file (one process); kafka: Apache Kafka, for several processes and machines.',
        },
        path: { type: 'string', minLength: 1, description: 'SQLite file (default: <data_dir>/events.sqlite).' },
        partitions: { type: 'integer', minimum: 1, maximum: 1024, default: 1, description: 'Partitions of a new topic.' },
        topic_partitions: {
          type: 'object',
          additionalProperties: { type: 'integer', minimum: 1, maximum: 1024 },
          default: {},
          description: 'Partitions of named topics, overriding `partitions`.',
        },
        retention: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            max_age_s: { type: ['integer', 'null'], minimum: 1, default: 604800, description: 'Delete records this long after they were appended (7 days), whatever their timestamp; null keeps them.' },
            max_bytes: { type: ['integer', 'null'], minimum: 1024, default: null, description: 'Per partition; null: no limit.' },
          },
        },
        kafka: {
          type: 'object',
          additionalProperties: false,
          default: {},
          description: 'Settings of the kafka backend (event_log.backend: kafka).',
          properties: {
            brokers: {
              type: 'array',
              items: { type: 'string', pattern: '^[^\\s:,]+:[0-9]{1,5}$' },
              minItems: 1,
              description: 'Bootstrap brokers, host:port (EVENTPLANE_KAFKA_BROKERS: comma-separated).',
            },
            client_id: { type: 'string', minLength: 1, default: 'eventplane', description: 'The client id brokers see (quotas, logs).' },
            create_topics: {
              type: 'boolean',
              default: true,
              description: 'Create a missing topic with event_log.partitions (or topic_partitions) and replication_factor; false: a missing topic is EVP_LOG_TOPIC_MISSING.',
            },
            replication_factor: {
              type: 'integer',
              minimum: -1,
              maximum: 32,
              default: -1,
              description: "Replicas of topics Eventplane creates; -1: the broker's default.replication.factor.",
            },
            topic_namespace: {
              type: 'string',
              pattern: '^[A-Za-z0-9._-]{1,200}$',
              description: 'Prepended to every topic name in Kafka (and hidden again), so several installations can share one cluster.',
            },
            sasl: {
              type: 'object',
              additionalProperties: false,
              required: ['mechanism', 'username'],
              description: 'Authenticate to the brokers with SASL (over TLS unless the network is trusted).',
              properties: {
                mechanism: { type: 'string', enum: ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512'] },
                username: { type: 'string', minLength: 1 },
                password_env: {
                  type: 'string',
                  pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
                  default: 'EVENTPLANE_KAFKA_PASSWORD',
                  description: 'The environment variable that holds the password (passwords stay out of config files).',
                },
              },
            },
            tls: {
              type: 'object',
              additionalProperties: false,
              description: "TLS to the brokers; an empty object uses the system's CAs.",
              properties: {
                ca_file: { type: 'string', minLength: 1, description: 'PEM file of the CA(s) that signed the brokers’ certificates.' },
                cert_file: { type: 'string', minLength: 1, description: 'PEM client certificate (mutual TLS).' },
                key_file: { type: 'string', minLength: 1, description: 'PEM key of the client certificate.' },
                server_name: { type: 'string', minLength: 1, description: 'Name to check the brokers’ certificates against, when it is not the host name.' },
              },
            },
            max_in_flight: {
              type: 'integer',
              minimum: 1,
              maximum: 16,
              default: 5,
              description: 'Produce requests in flight at once (each from an idempotent producer of its own); appends that arrive meanwhile are grouped.',
            },
            request_timeout_ms: { type: 'integer', minimum: 100, maximum: 300000, default: 10000, description: 'Timeout of one request to a broker.' },
            append_deadline_ms: {
              type: 'integer',
              minimum: 100,
              maximum: 120000,
              default: 5000,
              description:
                'Longest an append may take. Until then failed produce requests are retried (with fresh metadata, the same producer and sequence numbers, so Kafka does not write a record twice); then the intake answers 503 with, per event, EVP_LOG_NOT_WRITTEN or EVP_LOG_OUTCOME_UNKNOWN.',
            },
          },
        },
        sync: {
          type: 'string',
          enum: ['normal', 'full'],
          default: 'normal',
          description: 'normal: a commit survives a process crash; full: it also survives power loss (fsync per commit).',
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
    auth: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description:
        'Who may write events and read streams (docs/security.md, "Producer auth"). Off by default: anyone may post to any configured stream. ' +
        'Tokens come in `Authorization: Bearer <token>` or `X-API-Key: <token>`, and are read from the environment or from files, never from this file.',
      properties: {
        enabled: {
          type: 'boolean',
          default: false,
          description:
            'The switch. On: POST /v1/events and beacons need a producer token whose streams include every event\'s stream (401 EVP_AUTH_REQUIRED, EVP_AUTH_INVALID; 403 EVP_STREAM_FORBIDDEN), except events to public_streams.',
        },
        producers: { type: 'array', default: [], items: principalSchema, description: 'Who may write events, and to which streams.' },
        readers: { type: 'array', default: [], items: principalSchema, description: 'Tokens for GET /v2/stream when streams_public is false (producers may read their own streams too).' },
        public_streams: {
          type: 'array',
          default: [],
          items: { type: 'string', minLength: 1 },
          description: 'Streams (names or /regex/) anyone may post to without a token: for browser producers (EventLogging, the Metrics Platform, beacons), which cannot keep a secret.',
        },
        streams_public: { type: 'boolean', default: true, description: 'GET /v2/stream without a token; false: a reader or producer token whose streams include every stream asked for.' },
        schemas_public: { type: 'boolean', default: true, description: 'The schema service and the stream config API without a token; false: any reader or producer token.' },
      },
    },
    rate_limits: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description:
        'Request rates of the intake (POST /v1/events, /v1/_test/events, beacons): a token bucket per client address and one per producer; past it, 429 EVP_RATE_LIMITED with Retry-After (docs/security.md).',
      properties: {
        per_ip: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            requests_per_s: {
              type: 'number',
              minimum: 0,
              default: 1000,
              description: 'Intake requests a second from one client address (X-Forwarded-For through server.trust_proxy, an IPv6 address counting with its /64); 0: no limit.',
            },
            burst: { type: 'integer', minimum: 0, default: 0, description: 'Requests a client may send at once after a pause; 0: twice requests_per_s.' },
          },
        },
        per_producer: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            requests_per_s: { type: 'number', minimum: 0, default: 0, description: 'Intake requests a second with one producer token (auth.enabled); 0: no limit.' },
            burst: { type: 'integer', minimum: 0, default: 0, description: 'Requests a producer may send at once after a pause; 0: twice requests_per_s.' },
          },
        },
        exempt: {
          type: 'array',
          items: { type: 'string', minLength: 1 },
          default: ['127.0.0.1', '::1'],
          description: 'Client addresses and CIDRs never limited: by default this machine (local producers, and a local proxy not listed in server.trust_proxy).',
        },
      },
    },
    canary: {
      type: 'object',
      additionalProperties: false,
      default: {},
      description: 'Canary events: the first example of its latest schema sent to each stream with canary_events_enabled (eventplane canary; docs/deploy.md, "Canary events").',
      properties: {
        interval_s: {
          type: 'integer',
          minimum: 0,
          maximum: 604800,
          default: 3600,
          description: 'How often a serve process with the intake role sends them, the first time one interval after it starts; 0: never (eventplane canary still does).',
        },
        destinations: {
          type: 'object',
          default: {},
          additionalProperties: { type: 'string', pattern: '^https?://' },
          description: "destination_event_service → intake URL; streams of other destinations go to this server's own intake.",
        },
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
  { env: 'EVENTPLANE_EVENT_LOG', path: ['event_log', 'backend'], type: 'string' },
  { env: 'EVENTPLANE_ROLES', path: ['server', 'roles'], type: 'list' },
  { env: 'EVENTPLANE_KAFKA_BROKERS', path: ['event_log', 'kafka', 'brokers'], type: 'list' },
] as const
