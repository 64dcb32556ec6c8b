import type { FastifyInstance, HTTPMethods } from 'fastify'
import { EventplaneError } from '../core/errors.ts'

const methods: readonly HTTPMethods[] = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH']

/**
 * 405 with `Allow` for a path that exists but not for the method asked (find-my-way answers
 * 404 for both). Call it before any route is added; call what it returns after the last one,
 * and it adds, for every path, a route for each method the path lacks. OPTIONS is left to the
 * CORS plugin.
 */
export function allowedMethods(app: FastifyInstance): () => void {
  const byUrl = new Map<string, Set<string>>()
  app.addHook('onRoute', (route) => {
    const url = route.url
    let known = byUrl.get(url)
    if (known === undefined) byUrl.set(url, (known = new Set()))
    for (const method of [route.method].flat()) known.add(method)
  })
  return () => {
    for (const [url, known] of [...byUrl]) {
      const missing = methods.filter((m) => !known.has(m))
      // The CORS plugin's `OPTIONS *` is not a path: leave the rest of `*` to the 404 handler.
      const allowed = [...known].filter((m) => m !== 'OPTIONS').sort()
      if (missing.length === 0 || allowed.length === 0) continue
      const allow = allowed.join(', ')
      app.route({
        method: missing,
        url,
        handler: async (request, reply) => {
          reply.header('allow', allow)
          throw new EventplaneError('EVP_METHOD_NOT_ALLOWED', `${request.method} is not allowed on ${url}; use ${allow}`)
        },
      })
    }
  }
}
