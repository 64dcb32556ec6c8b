import { loadConfig } from '../config/index.ts'
import { configOption, type Command } from './command.ts'

export const serveCommand: Command = {
  path: ['serve'],
  summary: 'Serve the platform over HTTP (schema service, stream config API, health, metrics).',
  usage: 'eventplane serve [--config FILE] [--port N] [--host ADDR]',
  help: `Starts every HTTP part in one process, on 127.0.0.1:8192 unless configured otherwise.
With no config it serves the bundled schemas and stream config. Logs are JSON lines on stdout.
SIGTERM or SIGINT drain requests in flight and stop; SIGHUP reloads the stream config.

Environment: PORT, HOST, EVENTPLANE_CONFIG, EVENTPLANE_DATA_DIR, EVENTPLANE_LOG_LEVEL.`,
  options: {
    ...configOption,
    port: { type: 'string', short: 'p', value: 'N', description: 'Port to listen on (overrides config and PORT).' },
    host: { type: 'string', value: 'ADDR', description: 'Address to listen on (overrides config and HOST).' },
  },
  async run({ values, env, cwd, stdout }) {
    const overrides: NodeJS.ProcessEnv = { ...env }
    if (typeof values['port'] === 'string') overrides['EVENTPLANE_PORT'] = values['port']
    if (typeof values['host'] === 'string') overrides['EVENTPLANE_HOST'] = values['host']
    // Loaded here, not at the top: other commands should not pay for fastify and prom-client.
    const { handleSignals, startServer } = await import('../server/index.ts')
    const { config, file } = loadConfig({ path: values['config'] as string | undefined, env: overrides, cwd })
    const server = await startServer(config)
    handleSignals(server, config.server.shutdown_timeout_ms)
    server.platform.logger.info({ url: server.url, config: file }, 'eventplane listening')
    stdout.write(`eventplane listening on ${server.url} (config: ${file})\n`)
    await new Promise<void>((resolve) => server.app.server.once('close', () => resolve()))
    return 0
  },
}
