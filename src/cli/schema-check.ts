import { existsSync, statSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { EventplaneError } from '../core/errors.ts'
import { type JsonObject } from '../core/objects.ts'
import {
  checkVersionSeries,
  diffSchemas,
  formatDiff,
  verifyCurrent,
  lintSchema,
  listCurrentSchemas,
  listTitles,
  listVersions,
  materializeSchema,
  readSchemaFile,
  repositorySource,
  schemasToTypeScript,
  schemaVersion,
  shouldSkip,
  type LintFinding,
  type SchemaRepository,
  type SchemaSource,
} from '../schemas/index.ts'
import { write, type Command, type CommandContext, type OptionSpec } from './command.ts'
import { repoOption, repositoryFrom, selectCurrentFiles } from './schema.ts'

const selection: Record<string, OptionSpec> = {
  all: { type: 'boolean', short: 'a', description: 'Every title in the repository.' },
  modified: { type: 'boolean', short: 'm', description: 'Titles whose current.yaml git sees as modified or new.' },
  staged: { type: 'boolean', description: 'With --modified: only changes staged for commit.' },
  json: { type: 'boolean', description: 'Print the findings as JSON.' },
}

/** Titles to check: --all, --modified [--staged], or titles / current.yaml paths. */
async function selectTitles(repository: SchemaRepository, context: CommandContext): Promise<string[]> {
  if (context.values['all'] === true) {
    if (context.positionals.length > 0 || context.values['modified'] === true) {
      throw new EventplaneError('EVP_CLI_USAGE', 'use one of --all, --modified or titles, not several')
    }
    return listTitles(repository)
  }
  return (await selectCurrentFiles(repository, context)).map((f) => f.title)
}

/** A finding in a file: a schema rule, or the repository rule on current.yaml. */
interface Located extends Omit<LintFinding, 'rule'> {
  rule: LintFinding['rule'] | 'current-is-materialized'
  file: string
}

export const schemaLintCommand: Command = {
  path: ['schema', 'lint'],
  summary: 'Check materialized schemas against the repository rules (and the skip list).',
  usage: 'eventplane schema lint [--all | --modified [--staged] | TITLE…] [--repo DIR] [--json]',
  help: `Runs every rule of docs/schema-rules.md on each materialized version of the selected
titles: the jsonschema-tools robustness tests (valid, secure, snake_case, deterministic types,
examples valid, numeric bounds, …) and the structure rules (title matches the folder, $id is
/<title>/<version>, common fields). It also checks that current.yaml is materialized: its
version exists and equals what materializing it now gives. skipSchemaTestCases in
.jsonschema-tools.yaml skips rules per $id regex, as in jsonschema-tools.

Exit codes: 0 no errors (warnings allowed), 1 errors found, 2 usage.`,
  options: { ...repoOption, ...selection },
  maxPositionals: 10000,
  async run(context) {
    const repository = repositoryFrom(context)
    const source = repositorySource(repository)
    const tools = repository.options
    const findings: Located[] = []
    let checked = 0
    for (const title of await selectTitles(repository, context)) {
      for (const entry of await listVersions(repository, title)) {
        const schema = await readSchemaFile(repository, entry.path)
        checked++
        for (const finding of lintSchema(schema, {
          path: title,
          version: entry.version,
          enforcedNumericBounds: tools.enforcedNumericBounds,
          skipSchemaTestCases: tools.skipSchemaTestCases,
        })) {
          findings.push({ ...finding, file: entry.path })
        }
      }
      findings.push(...(await checkCurrent(repository, source, title)))
    }
    const errors = findings.filter((f) => f.severity === 'error').length
    if (context.values['json'] === true) {
      write(context.stdout, JSON.stringify({ checked, errors, findings }, null, 2))
    } else {
      for (const f of findings) write(context.stdout, `${f.file}: ${f.severity} [${f.rule}] at ${f.path || '/'}: ${f.message}`)
      write(errors ? context.stderr : context.stdout, `${checked} schema versions checked: ${errors} errors, ${findings.length - errors} warnings`)
    }
    return errors > 0 ? 1 : 0
  },
}

/** current.yaml must be materialized: its version file exists and holds what it materializes to. */
async function checkCurrent(repository: SchemaRepository, source: SchemaSource, title: string): Promise<Located[]> {
  const current = (await listCurrentSchemas(repository)).find((f) => f.title === title)
  if (current === undefined) return []
  const result = await verifyCurrent(repository, source, current)
  const finding = (message: string): Located => ({
    rule: 'current-is-materialized',
    path: '',
    message,
    severity: 'error',
    file: current.path,
  })
  if (result.state === 'not-materialized') {
    return [finding(`version ${result.version} is not materialized; run: eventplane schema materialize ${title}`)]
  }
  if (result.state === 'changed') {
    return [
      finding(
        `current.yaml changed since ${result.version} was materialized (first difference at ${result.firstDifference}); ` +
          'raise the version in $id and materialize, or revert the edit',
      ),
    ]
  }
  return []
}

export const schemaCompatCommand: Command = {
  path: ['schema', 'compat'],
  summary: 'Check that versions within a major version only add optional properties.',
  usage: 'eventplane schema compat [--all | --modified [--staged] | TITLE… | OLD NEW] [--repo DIR] [--strict] [--json]',
  help: `Wikimedia's rule: within one major version every key of the older schema must still be
there with a compatible value; required must stay identical; enum may only grow; only $id,
description and examples may change. So a minor version may only add optional properties; a
new major version may break anything. For each title, consecutive materialized versions of the
same major are compared, and so is current.yaml when it holds a version not yet materialized.
OLD NEW compares two schemas directly (files, or URIs such as /test/event/1.0.0).
Each problem says where (JSON pointer), the old and new value, and which rule it breaks.
skipSchemaTestCases entries for schema-version-compatibility are honoured.

Exit codes: 0 compatible, 1 incompatible, 2 usage.`,
  options: {
    ...repoOption,
    ...selection,
    strict: { type: 'boolean', description: 'Also refuse narrowing keywords added to existing fields.' },
  },
  maxPositionals: 10000,
  async run(context) {
    const repository = repositoryFrom(context)
    const source = repositorySource(repository)
    const strict = context.values['strict'] === true
    type Row = { title: string; from: string; to: string; problems: ReturnType<typeof checkVersionSeries>[number]['result']['problems']; skipped: boolean }
    const rows: Row[] = []
    const pair = context.positionals.length === 2 && context.positionals.every(looksLikeSchemaRef)
    if (pair) {
      const [a, b] = await Promise.all(context.positionals.map((arg) => loadSchemaArg(repository, source, arg, context.cwd)))
      const [result] = checkVersionSeries([
        { version: '1.0.0', schema: a!.schema },
        { version: '1.0.1', schema: b!.schema },
      ], { strict })
      rows.push({ title: `${a!.label} → ${b!.label}`, from: a!.label, to: b!.label, problems: result!.result.problems, skipped: false })
    } else {
      for (const title of await selectTitles(repository, context)) {
        const versions = await Promise.all(
          (await listVersions(repository, title)).map(async (v) => ({ version: v.version, schema: await readSchemaFile(repository, v.path) })),
        )
        const current = (await listCurrentSchemas(repository)).find((f) => f.title === title)
        if (current !== undefined) {
          const version = schemaVersion(current.schema, repository.options.schemaVersionField, current.path)
          if (!versions.some((v) => v.version === version)) {
            const { schema } = await materializeSchema(current.schema, { source, enforcedNumericBounds: repository.options.enforcedNumericBounds, location: current.path })
            versions.push({ version, schema })
          }
        }
        for (const result of checkVersionSeries(versions, { strict })) {
          const newer = versions.find((v) => v.version === result.to)!.schema as JsonObject
          const skipped = shouldSkip(newer['$id'], 'schema-version-compatibility', repository.options.skipSchemaTestCases)
          rows.push({ title, from: result.from, to: result.to, problems: result.result.problems, skipped })
        }
      }
    }
    const failing = rows.filter((r) => r.problems.length > 0 && !r.skipped)
    if (context.values['json'] === true) {
      write(context.stdout, JSON.stringify({ pairs: rows.length, incompatible: failing.length, results: rows }, null, 2))
    } else {
      for (const row of rows.filter((r) => r.problems.length > 0)) {
        const head = pair ? row.title : `${row.title} ${row.from} → ${row.to}`
        write(context.stdout, `${head}: ${row.skipped ? 'incompatible, skipped by skipSchemaTestCases' : 'INCOMPATIBLE'}`)
        for (const p of row.problems) {
          write(context.stdout, `  [${p.rule}] at ${p.path || '/'}: ${p.message}\n    old: ${short(p.oldValue)}\n    new: ${short(p.newValue)}`)
        }
      }
      write(failing.length ? context.stderr : context.stdout, `${rows.length} version pairs compared: ${failing.length} incompatible`)
    }
    return failing.length > 0 ? 1 : 0
  },
}

function short(value: unknown): string {
  const text = value === undefined ? '(absent)' : JSON.stringify(value)
  return text.length > 200 ? `${text.slice(0, 197)}...` : text
}

function looksLikeSchemaRef(arg: string): boolean {
  return /\.(ya?ml|json)$/.test(arg) || /\/(\d+\.\d+\.\d+|latest)$/.test(arg)
}

/** A schema named on the command line: a file path, or a URI such as /test/event/1.0.0 or test/event/latest. */
async function loadSchemaArg(repository: SchemaRepository, source: SchemaSource, arg: string, cwd: string) {
  const path = resolve(cwd, arg)
  if (existsSync(path) && statSync(path).isFile()) return { label: arg, schema: await readSchemaFile(repository, path) }
  const uri = arg.startsWith('/') ? arg : `/${arg}`
  return { label: uri, schema: (await source.get(uri)).schema }
}

export const schemaDiffCommand: Command = {
  path: ['schema', 'diff'],
  summary: 'Show what changed between two schemas (files or URIs like /test/event/1.0.0).',
  usage: 'eventplane schema diff A B [--repo DIR] [--json]',
  help: `A and B are schema files, or URIs resolved in the repository (/title/version,
title/latest). Prints each added, removed and changed value with its JSON pointer.
Exit code 0 when they are equal, 1 when they differ (like diff(1)).`,
  options: { ...repoOption, json: { type: 'boolean', description: 'Print the differences as JSON.' } },
  maxPositionals: 2,
  async run(context) {
    if (context.positionals.length !== 2) throw new EventplaneError('EVP_CLI_USAGE', 'give two schemas: A B')
    const repository = repositoryFrom(context)
    const source = repositorySource(repository)
    const [a, b] = await Promise.all(context.positionals.map((arg) => loadSchemaArg(repository, source, arg, context.cwd)))
    const entries = diffSchemas(a!.schema, b!.schema)
    if (context.values['json'] === true) write(context.stdout, JSON.stringify(entries, null, 2))
    else write(context.stdout, entries.length === 0 ? `${a!.label} and ${b!.label} are equal` : `--- ${a!.label}\n+++ ${b!.label}\n${formatDiff(entries)}`)
    return entries.length === 0 ? 0 : 1
  },
}

export const schemaTypesCommand: Command = {
  path: ['schema', 'types'],
  summary: 'Generate TypeScript declarations for schemas.',
  usage: 'eventplane schema types (--all | TITLE|URI…) [--repo DIR] [--out FILE]',
  help: `Writes one exported interface per schema (named from the title: mediawiki/revision/create
→ MediawikiRevisionCreate), with doc comments from descriptions. A TITLE means its latest
version; a URI such as /test/event/1.0.0 names one version; --all takes the latest of every
title. Output goes to stdout unless --out is given.`,
  options: {
    ...repoOption,
    all: { type: 'boolean', short: 'a', description: 'The latest version of every title.' },
    out: { type: 'string', short: 'o', value: 'FILE', description: 'Write to FILE instead of stdout.' },
  },
  maxPositionals: 10000,
  async run(context) {
    const repository = repositoryFrom(context)
    const source = repositorySource(repository)
    const args =
      context.values['all'] === true
        ? (await listTitles(repository)).filter((t) => !t.startsWith('fragment/'))
        : context.positionals
    if (args.length === 0) throw new EventplaneError('EVP_CLI_USAGE', 'name schemas (titles or URIs), or pass --all')
    const schemas = await Promise.all(
      args.map(async (arg) => {
        const uri = arg.startsWith('/') ? arg : /\/(\d+\.\d+\.\d+|latest)$/.test(arg) ? `/${arg}` : `/${arg}/latest`
        return (await source.get(uri)).schema
      }),
    )
    const text = `// Generated by "eventplane schema types"; do not edit.\n${schemasToTypeScript(schemas)}`
    if (typeof context.values['out'] === 'string') {
      await writeFile(resolve(context.cwd, context.values['out']), text)
      write(context.stdout, `wrote ${schemas.length} declarations to ${context.values['out']}`)
    } else context.stdout.write(text)
    return 0
  },
}
