import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { FastifyInstance, FastifyReply } from 'fastify'

/** Pages may load from and connect to this server only: nothing from other hosts, no inline code. */
export const pageSecurityPolicy =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

export interface StaticFile {
  body: Buffer
  type: string
  etag: string
}

/** A file of web/, read once, with its strong ETag. */
export function staticFile(folder: URL, file: string, type: string): StaticFile {
  const body = readFileSync(new URL(file, folder))
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` }
}

/** Answers with a static file: ETag revalidation, and for pages the strict policy above. */
export function sendStatic(reply: FastifyReply, ifNoneMatch: string | undefined, file: StaticFile): FastifyReply {
  reply.header('etag', file.etag).header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').header('vary', 'Accept')
  if (file.type.startsWith('text/html')) reply.header('content-security-policy', pageSecurityPolicy).header('referrer-policy', 'same-origin')
  if (ifNoneMatch === file.etag) return reply.code(304).send()
  return reply.type(file.type).send(file.body)
}

/** GET routes for static files of one folder of web/: path → file. */
export function staticRoutes(app: FastifyInstance, folder: URL, files: Record<string, { file: string; type: string }>): void {
  for (const [path, { file, type }] of Object.entries(files)) {
    const loaded = staticFile(folder, file, type)
    app.get(path, async (request, reply) => sendStatic(reply, request.headers['if-none-match'], loaded))
  }
}
