/** @module console: the web pages served at `/` for browsers (web/console/): schemas, streams, intake, the live tail. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { prefersHtml } from '../core/http.ts'
import { sendStatic, staticFile, staticRoutes } from '../core/static.ts'

const folder = new URL('../../web/console/', import.meta.url)

/**
 * The console's script and style (`/console/…`), and `consolePage`, which answers `/` to a
 * browser: API clients asking for JSON keep the JSON index. Plain browser JavaScript with no
 * build step and nothing from other hosts; everything it shows comes from the JSON APIs.
 */
export function consoleRoutes(app: FastifyInstance, options: { streams: boolean }): { consolePage(request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined } {
  const script = 'text/javascript; charset=utf-8'
  staticRoutes(app, folder, {
    '/console/console.js': { file: 'console.js', type: script },
    '/console/dom.js': { file: 'dom.js', type: script },
    '/console/tail.js': { file: 'tail.js', type: script },
    '/console/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
  })
  const page = staticFile(folder, 'index.html', 'text/html; charset=utf-8')
  // The live tail's old address (EventStreams' viewer lives at /v2/ui): the console opens its
  // tail there, keeping `#streams=…` links.
  if (options.streams) app.get('/v2/ui', async (request, reply) => sendStatic(reply, request.headers['if-none-match'], page))
  return {
    consolePage: (request, reply) => (prefersHtml(request.headers.accept) ? sendStatic(reply, request.headers['if-none-match'], page) : undefined),
  }
}
