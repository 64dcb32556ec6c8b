/**
 * For browser tests of the SDK: the bundle as the package builds it (esbuild, IIFE, global
 * `eventplane`), and a site of its own origin serving pages and the bundle, as a wiki serves
 * its pages from another origin than the intake.
 */
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { build } from 'esbuild'
import { repoRoot } from '../helpers.ts'

/** packages/client/src/bundle.ts, bundled and minified for browsers. */
export async function bundleScript(): Promise<string> {
  const bundle = await build({ entryPoints: [join(repoRoot, 'packages/client/src/bundle.ts')], bundle: true, minify: true, format: 'iife', globalName: 'eventplane', target: ['es2020'], write: false })
  return bundle.outputFiles[0]!.text
}

export interface Site {
  url: string
  server: Server
  close(): void
}

/** Serves `files` (path → content type and body) on a loopback port of its own. */
export async function serveSite(files: Map<string, { type: string; body: string }>): Promise<Site> {
  const server = createServer((request, response) => {
    const file = files.get(request.url ?? '')
    if (file === undefined) return response.writeHead(404).end()
    response.writeHead(200, { 'content-type': file.type }).end(file.body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    server,
    close() {
      server.closeAllConnections()
      server.close()
    },
  }
}
