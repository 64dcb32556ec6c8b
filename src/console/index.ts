/** @module console: the web pages served at `/` for browsers (web/console/): schemas, streams, the way in. */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { prefersHtml } from '../core/http.ts'
import { sendStatic, staticFile, staticRoutes } from '../core/static.ts'

const folder = new URL('../../web/console/', import.meta.url)

/**
 * The console's script and style (`/console/…`), and `consolePage`, which answers `/` to a
 * browser: API clients asking for JSON keep the JSON index. Plain browser JavaScript with no
 * build step and nothing from other hosts; everything it shows comes from the JSON APIs.
 */
export function consoleRoutes(app: FastifyInstance): { consolePage(request: FastifyRequest, reply: FastifyReply): FastifyReply | undefined } {
  staticRoutes(app, folder, {
    '/console/console.js': { file: 'console.js', type: 'text/javascript; charset=utf-8' },
    '/console/console.css': { file: 'console.css', type: 'text/css; charset=utf-8' },
  })
  const page = staticFile(folder, 'index.html', 'text/html; charset=utf-8')
  return {
    consolePage: (request, reply) => (prefersHtml(request.headers.accept) ? sendStatic(reply, request.headers['if-none-match'], page) : undefined),
  }
}
