import { loadConfig } from '../config/index.ts'
import { configOption, type Command } from './command.ts'

export const serveCommand: Command = {
  path: ['serve'],
  summary: 'Serve the platform over HTTP (schema service, stream config API, health, metrics).',
  usage: 'eventplane serve [--config FILE] [--port N] [--host ADDR] [--role ROLE]…',
  help: `Starts the HTTP parts in one process, on 127.0.0.1:8192 unless configured otherwise.
With no config it serves the bundled schemas and stream config. Logs are JSON lines on stdout.
SIGTERM or SIGINT drain requests in flight and stop; SIGHUP reloads the stream config.

Roles (--role, repeatable; default all): intake (POST /v1/events), streams (GET /v2/stream,
/v2/ui), schemas (the schema repositories and the stream config API). Health, readiness,
metrics and /?spec are served by every role. To run intake and streams as separate processes,
put the event log on Kafka (event_log.backend: kafka; see docs/deploy.md).

Environment: PORT, HOST, EVENTPLANE_CONFIG, EVENTPLANE_DATA_DIR, EVENTPLANE_LOG_LEVEL,
EVENTPLANE_ROLES (comma-separated), EVENTPLANE_EVENT_LOG, EVENTPLANE_KAFKA_BROKERS.`,
  options: {
    ...configOption,
    port: { type: 'string', short: 'p', value: 'N', description: 'Port to listen on (overrides config and PORT).' },
    host: { type: 'string', value: 'ADDR', description: 'Address to listen on (overrides config and HOST).' },
    role: { type: 'string', value: 'ROLE', multiple: true, description: 'intake, streams, schemas or all (overrides server.roles and EVENTPLANE_ROLES).' },
  },
  async run({ values, env, cwd, stdout }) {
    const overrides: NodeJS.ProcessEnv = { ...env }
    if (typeof values['port'] === 'string') overrides['EVENTPLANE_PORT'] = values['port']
    if (typeof values['host'] === 'string') overrides['EVENTPLANE_HOST'] = values['host']
    if (Array.isArray(values['role'])) overrides['EVENTPLANE_ROLES'] = (values['role'] as string[]).join(',')
    // Loaded here, not at the top: other commands should not pay for fastify and prom-client.
    const { handleSignals, startServer } = await import('../server/index.ts')
    const { config, file } = loadConfig({ path: values['config'] as string | undefined, env: overrides, cwd })
    const server = await startServer(config)
    handleSignals(server, config.server.shutdown_timeout_ms)
    const log = config.event_log.backend === 'kafka' ? `Kafka at ${(config.event_log.kafka.brokers ?? []).join(',')}` : `SQLite file ${config.event_log.path}`
    server.platform.logger.info({ url: server.url, config: file, roles: config.server.roles, event_log: log }, 'eventplane listening')
    stdout.write(`eventplane listening on ${server.url} (roles: ${config.server.roles.join(', ')}; config: ${file}; event log: ${log})\n`)
    if (server.metricsUrl !== undefined) stdout.write(`eventplane metrics on ${server.metricsUrl}/metrics\n`)
    await new Promise<void>((resolve) => server.app.server.once('close', () => resolve()))
    return 0
  },
}
