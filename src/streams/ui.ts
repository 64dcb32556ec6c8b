import type { FastifyInstance } from 'fastify'
import { staticRoutes } from '../core/static.ts'

/**
 * `GET /v2/ui`: the live viewer (web/streams/), a static page that follows streams with an
 * EventSource. Read once at start; answered with an ETag so browsers revalidate cheaply.
 */
export function viewerRoutes(app: FastifyInstance): void {
  staticRoutes(app, new URL('../../web/streams/', import.meta.url), {
    '/v2/ui': { file: 'viewer.html', type: 'text/html; charset=utf-8' },
    '/v2/ui/viewer.js': { file: 'viewer.js', type: 'text/javascript; charset=utf-8' },
    '/v2/ui/viewer.css': { file: 'viewer.css', type: 'text/css; charset=utf-8' },
  })
}
