import { existsSync, statSync } from 'node:fs'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execFileSync } from 'node:child_process'
import { EventplaneError } from '../core/errors.ts'
import {
  dependencyOrder,
  gitAdd,
  gitModifiedCurrentFiles,
  listCurrentSchemas,
  listVersions,
  materializeFile,
  openRepository,
  repositorySource,
  schemaFileAt,
  type LinkMode,
  type SchemaFile,
  type SchemaRepository,
} from '../schemas/index.ts'
import { write, type Command, type CommandContext, type OptionSpec } from './command.ts'

export const repoOption: Record<string, OptionSpec> = {
  repo: {
    type: 'string',
    short: 'r',
    value: 'DIR',
    description: 'Schema repository root, holding .jsonschema-tools.yaml (default: the current folder).',
  },
}

export function repositoryFrom(context: CommandContext): SchemaRepository {
  const dir = typeof context.values['repo'] === 'string' ? resolve(context.cwd, context.values['repo']) : context.cwd
  return openRepository(dir)
}

/** The current schema files a command works on: --all, --modified [--staged], or paths. */
export async function selectCurrentFiles(repository: SchemaRepository, context: CommandContext): Promise<SchemaFile[]> {
  const { values, positionals } = context
  const modes = [values['all'] === true, values['modified'] === true, positionals.length > 0].filter(Boolean).length
  if (modes > 1) throw new EventplaneError('EVP_CLI_USAGE', 'use one of --all, --modified or paths, not several')
  if (values['modified'] === true) {
    const paths = await gitModifiedCurrentFiles(repository, values['staged'] === true || repository.options.gitStaged)
    return dependencyOrder(await Promise.all(paths.map((p) => schemaFileAt(repository, p))))
  }
  if (positionals.length > 0) {
    const files = await Promise.all(
      positionals.map((arg) => schemaFileAt(repository, currentPathFor(repository, resolve(context.cwd, arg), arg))),
    )
    return dependencyOrder(files)
  }
  if (values['all'] === true) return dependencyOrder(await listCurrentSchemas(repository))
  throw new EventplaneError('EVP_CLI_USAGE', 'say which schemas: --all, --modified, or one or more paths')
}

/** A path argument may be a current.yaml, its folder, or a title under the schema folder. */
function currentPathFor(repository: SchemaRepository, absolute: string, arg: string): string {
  const currentName = repository.options.currentName
  const candidates = [absolute, join(absolute, currentName), join(repository.schemaDir, arg, currentName)]
  for (const candidate of candidates) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate
  }
  throw new EventplaneError('EVP_SCHEMA_NOT_FOUND', `${arg}: no ${currentName} there (give a ${currentName}, its folder, or a title)`, {
    details: { path: arg },
  })
}

const selectionOptions: Record<string, OptionSpec> = {
  all: { type: 'boolean', short: 'a', description: 'Every current schema in the repository.' },
  modified: { type: 'boolean', short: 'm', description: 'Current schemas git sees as modified or new.' },
  staged: { type: 'boolean', description: 'With --modified: only changes staged for commit (default: gitStaged).' },
}

export const schemaMaterializeCommand: Command = {
  path: ['schema', 'materialize'],
  summary: 'Write versioned files (<version>.yaml, latest, …) from current.yaml schemas.',
  usage: 'eventplane schema materialize [--all | --modified [--staged] | PATH…] [--repo DIR] [--dry-run]',
  help: `For each selected current.yaml: inline every $ref (against the repository's schemaBaseUris),
merge allOf, add numeric bounds, add an example when configured, then write <version>.<ext>
for each content type, the extensionless <version> entry, and move latest forward. A version
file that already holds the same value is left untouched, so re-materializing a repository
(also one made by jsonschema-tools) changes nothing.
Options come from the repository's .jsonschema-tools.yaml, as with jsonschema-tools.
PATH may be a current.yaml, its folder, or a schema title.

Exit codes: 0 done, 1 a schema failed (nothing is written for that schema), 2 usage.`,
  options: {
    ...repoOption,
    ...selectionOptions,
    'dry-run': { type: 'boolean', short: 'n', description: 'Print what would be written; write nothing.' },
    'git-add': { type: 'boolean', description: 'git add the written files (default with --modified, per shouldGitAdd).' },
    'no-git-add': { type: 'boolean', description: 'Never git add.' },
    links: {
      type: 'string',
      value: 'MODE',
      description: 'auto (symlinks where possible, else pointer files), symlink, or pointer.',
    },
    force: { type: 'boolean', short: 'f', description: 'Rewrite version files even when they already hold the same value.' },
    quiet: { type: 'boolean', short: 'q', description: 'Print only errors and the summary.' },
  },
  maxPositionals: 10000,
  async run(context) {
    const { values, stdout, stderr } = context
    const links = (values['links'] as string | undefined) ?? 'auto'
    if (!['auto', 'symlink', 'pointer'].includes(links)) {
      throw new EventplaneError('EVP_CLI_USAGE', `--links must be auto, symlink or pointer, not ${JSON.stringify(links)}`)
    }
    const repository = repositoryFrom(context)
    const files = await selectCurrentFiles(repository, context)
    const source = repositorySource(repository)
    const started = performance.now()
    const dryRun = values['dry-run'] === true
    const written: string[] = []
    let failed = 0
    let unchanged = 0
    for (const [i, file] of files.entries()) {
      try {
        const result = await materializeFile(repository, file, source, { dryRun, links: links as LinkMode, force: values['force'] === true })
        written.push(...result.files)
        if (result.files.length === 0) unchanged++
        if (values['quiet'] !== true) {
          const names = result.files.map((f) => relative(file.dir, f)).join(', ')
          const what = result.files.length === 0 ? 'unchanged' : `${dryRun ? 'would write' : 'wrote'} ${names}`
          write(stdout, `[${i + 1}/${files.length}] ${result.title} ${result.version}: ${what}${result.generatedExample ? ' (example generated)' : ''}`)
        }
        if (result.replaced) {
          write(stderr, `warning: ${result.title} ${result.version} already existed with another value and ${dryRun ? 'would be replaced' : 'was replaced'}; if that version was released, raise the version in $id instead`)
        }
      } catch (error) {
        failed++
        const code = error instanceof EventplaneError ? ` [${error.code}]` : ''
        write(stderr, `[${i + 1}/${files.length}] ${file.title}: ${(error as Error).message}${code}`)
      }
    }
    const gitAddWanted = values['no-git-add'] !== true && (values['git-add'] === true || (values['modified'] === true && repository.options.shouldGitAdd))
    if (gitAddWanted && !dryRun) await gitAdd(repository, written)
    const seconds = ((performance.now() - started) / 1000).toFixed(2)
    write(
      failed ? stderr : stdout,
      `${files.length - failed} of ${files.length} schemas ${dryRun ? 'checked (dry run)' : 'materialized'} in ${seconds} s` +
        `${unchanged ? ` (${unchanged} already up to date)` : ''}${failed ? `; ${failed} failed` : ''}${gitAddWanted && !dryRun && written.length ? '; files added to git' : ''}`,
    )
    return failed ? 1 : 0
  },
}

export const schemaNewCommand: Command = {
  path: ['schema', 'new'],
  summary: 'Start a new schema: write <title>/current.yaml with the common fields and an example.',
  usage: 'eventplane schema new TITLE [--repo DIR] [--description TEXT] [--fragment]',
  help: `Creates <schema folder>/<TITLE>/current.yaml at version 1.0.0. Event schemas include the
newest fragment/common of the repository (when it has one) through allOf, and an example whose
$schema is its $id; --fragment makes a bare fragment instead. Then edit the file and run
"eventplane schema materialize <TITLE>".`,
  options: {
    ...repoOption,
    description: { type: 'string', short: 'd', value: 'TEXT', description: 'The schema description.' },
    fragment: { type: 'boolean', description: 'A fragment to be included by other schemas (no meta, no example).' },
  },
  maxPositionals: 1,
  async run(context) {
    const title = context.positionals[0]
    if (title === undefined) throw new EventplaneError('EVP_CLI_USAGE', 'name the schema title, e.g. analytics/button/click')
    if (!/^[a-z0-9_][a-z0-9_-]*(\/[a-z0-9_][a-z0-9_-]*)*$/.test(title)) {
      throw new EventplaneError('EVP_CLI_USAGE', `title ${JSON.stringify(title)} must be lower-case path segments of [a-z0-9_-], e.g. analytics/button/click`)
    }
    const repository = repositoryFrom(context)
    const dir = join(repository.schemaDir, ...title.split('/'))
    const path = join(dir, repository.options.currentName)
    if (existsSync(path)) throw new EventplaneError('EVP_SCHEMA_EXISTS', `${path} already exists; edit it and raise the version in $id`)
    const description = (context.values['description'] as string | undefined) ?? `TODO: describe ${title}.`
    const fragment = context.values['fragment'] === true || title.startsWith('fragment/')
    const common = fragment ? undefined : (await listVersions(repository, 'fragment/common')).at(-1)?.version
    await mkdir(dir, { recursive: true })
    await writeFile(path, newSchemaText(title, description, fragment, common))
    write(context.stdout, `created ${relative(context.cwd, path)}\nnext: edit it, then run: eventplane schema materialize ${title}`)
    return 0
  },
}

function newSchemaText(title: string, description: string, fragment: boolean, common: string | undefined): string {
  const head = `title: ${title}
description: ${JSON.stringify(description)}
$id: /${title}/1.0.0
$schema: https://json-schema.org/draft-07/schema#
type: object
`
  if (fragment) {
    return `${head}additionalProperties: false
properties:
  example_field:
    description: TODO
    type: string
    maxLength: 1024
`
  }
  const fields = `    example_field:
      description: TODO, replace with the fields of this event.
      type: string
      maxLength: 1024
`
  const body = common
    ? `allOf:
  - $ref: /fragment/common/${common}#
  - properties:
${fields.replace(/^/gm, '    ').replace(/^ {4}$/gm, '')}`
    : `required:
  - $schema
  - meta
properties:
  $schema:
    description: The URI of this event's schema, e.g. /${title}/1.0.0
    type: string
    maxLength: 1024
  meta:
    type: object
    required:
      - stream
    properties:
      stream:
        description: The stream this event belongs to.
        type: string
        minLength: 1
        maxLength: 1024
      dt:
        description: When the event was received, ISO-8601 UTC.
        type: string
        format: date-time
        maxLength: 128
      id:
        description: Unique ID of this event.
        type: string
        maxLength: 128
  dt:
    description: When the event happened, ISO-8601 UTC.
    type: string
    format: date-time
    maxLength: 128
${fields.replace(/^ {2}/gm, '')}`
  return `${head}${body}
examples:
  - $schema: { $ref: '#/$id' }
    meta:
      stream: ${title.replace(/\//g, '.')}
    dt: '2026-01-01T00:00:00Z'
    example_field: example value
`
}

export const schemaInstallHookCommand: Command = {
  path: ['schema', 'install-hook'],
  summary: 'Install a git pre-commit hook that materializes, lints and checks staged schemas.',
  usage: 'eventplane schema install-hook [--repo DIR] [--force]',
  help: `Writes .git/hooks/pre-commit in the git repository holding the schema repository. On each
commit it runs "schema materialize --modified --staged" (adding the new versions to the
commit), then "schema check" (lint and compat) on the same schemas; a failure stops the
commit. Set EVENTPLANE in the environment to change the command the hook runs.`,
  options: {
    ...repoOption,
    force: { type: 'boolean', short: 'f', description: 'Replace an existing pre-commit hook.' },
  },
  async run(context) {
    const repository = repositoryFrom(context)
    let gitDir: string
    try {
      gitDir = execFileSync('git', ['rev-parse', '--absolute-git-dir'], { cwd: repository.root, encoding: 'utf8' }).trim()
    } catch (error) {
      throw new EventplaneError('EVP_GIT_FAILED', `${repository.root} is not inside a git repository`, { cause: error })
    }
    const hook = join(gitDir, 'hooks', 'pre-commit')
    if (existsSync(hook) && context.values['force'] !== true) {
      throw new EventplaneError('EVP_SCHEMA_EXISTS', `${hook} already exists; pass --force to replace it`)
    }
    await mkdir(dirname(hook), { recursive: true })
    await writeFile(hook, hookScript(repository.root))
    await chmod(hook, 0o755)
    write(context.stdout, `installed ${hook}`)
    return 0
  },
}

function hookScript(repositoryRoot: string): string {
  const self = fileURLToPath(import.meta.url)
  const isSource = self.endsWith('.ts')
  const bin = join(dirname(self), isSource ? 'bin.ts' : 'bin.js')
  const loader = isSource ? ` --import ${quote(import.meta.resolve('tsx'))}` : ''
  return `#!/bin/sh
# Installed by "eventplane schema install-hook". Materializes staged current.yaml schemas,
# adds the new versions to this commit, then lints them and checks compatibility.
# Set EVENTPLANE (e.g. EVENTPLANE="npx eventplane") to run another eventplane.
unset GIT_DIR
if [ -n "$EVENTPLANE" ]; then
  eventplane() { $EVENTPLANE "$@"; }
else
  eventplane() { ${quote(process.execPath)}${loader} ${quote(bin)} "$@"; }
fi
repo=${quote(repositoryRoot)}
eventplane schema materialize --modified --staged --repo "$repo" || exit 1
eventplane schema check --modified --staged --repo "$repo" || exit 1
`
}

function quote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`
}
