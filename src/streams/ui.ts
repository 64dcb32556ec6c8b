import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'

const files = {
  '/v2/ui': { file: 'viewer.html', type: 'text/html; charset=utf-8' },
  '/v2/ui/viewer.js': { file: 'viewer.js', type: 'text/javascript; charset=utf-8' },
  '/v2/ui/viewer.css': { file: 'viewer.css', type: 'text/css; charset=utf-8' },
} as const

/** The page may load and connect to this server only: nothing from other hosts. */
const contentSecurityPolicy =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

/**
 * `GET /v2/ui`: the live viewer (web/streams/), a static page that follows streams with an
 * EventSource. Read once at start; answered with an ETag so browsers revalidate cheaply.
 */
export function viewerRoutes(app: FastifyInstance): void {
  const folder = new URL('../../web/streams/', import.meta.url)
  for (const [path, { file, type }] of Object.entries(files)) {
    const body = readFileSync(new URL(file, folder))
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"`
    app.get(path, async (request, reply) => {
      reply.header('etag', etag).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff')
      if (type.startsWith('text/html')) reply.header('content-security-policy', contentSecurityPolicy).header('referrer-policy', 'same-origin')
      if (request.headers['if-none-match'] === etag) return reply.code(304).send()
      return reply.type(type).send(body)
    })
  }
}
