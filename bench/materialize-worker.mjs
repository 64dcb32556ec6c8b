// In-process materialization for bench/materialize.ts: loads one tool once, then, for each
// {dir} the parent sends over IPC, materializes every current schema of the repository copy in
// that folder and answers with the time it took. Plain JavaScript (no tsx loader) so that both
// tools run the same way: Eventplane's compiled dist/, jsonschema-tools' CommonJS.
//
// Usage (with an IPC channel): node bench/materialize-worker.mjs eventplane
//                              node bench/materialize-worker.mjs jsonschema-tools LIB_PATH
import { createRequire } from 'node:module'
import { performance } from 'node:perf_hooks'

const [tool, libPath] = process.argv.slice(2)

async function load() {
  if (tool === 'eventplane') {
    const schemas = await import(new URL('../dist/schemas/index.js', import.meta.url).href)
    return async (dir) => {
      const started = performance.now()
      const repository = schemas.openRepository(dir)
      const files = schemas.dependencyOrder(await schemas.listCurrentSchemas(repository))
      const source = schemas.repositorySource(repository)
      const loaded = performance.now()
      let written = 0
      for (const file of files) written += (await schemas.materializeFile(repository, file, source, { force: true })).files.length
      const ended = performance.now()
      return { ms: ended - started, loadMs: loaded - started, schemas: files.length, files: written }
    }
  }
  if (tool === 'jsonschema-tools' && libPath !== undefined) {
    const tools = createRequire(import.meta.url)(libPath)
    return async (dir) => {
      // jsonschema-tools reads .jsonschema-tools.yaml and resolves schemaBasePath from the
      // working directory, as its CLI does; `true` re-reads the config for each copy.
      process.chdir(dir)
      const started = performance.now()
      const options = tools.readConfig({}, true)
      // Quiet, like Eventplane's in-process run, whatever logLevel the repository's config says
      // (the benchmark's copies say warn already).
      options.log.level = 'warn'
      const files = await tools.materializeAllSchemas(options)
      const ended = performance.now()
      return { ms: ended - started, files: files.length }
    }
  }
  throw new Error(`usage: materialize-worker.mjs eventplane | jsonschema-tools LIB_PATH (got ${tool})`)
}

if (process.send === undefined) {
  console.error('materialize-worker.mjs must be spawned with an IPC channel')
  process.exit(2)
}
const materialize = await load()
process.on('message', (message) => {
  materialize(message.dir).then(
    (result) => process.send({ type: 'result', ...result }),
    (error) => process.send({ type: 'error', message: error instanceof Error ? (error.stack ?? error.message) : String(error) }),
  )
})
process.on('disconnect', () => process.exit(0))
process.send({ type: 'ready' })
