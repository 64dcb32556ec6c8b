import { existsSync, statSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { EventplaneError } from '../core/errors.ts'
import {
  checkVersionSeries,
  compatRepository,
  diffSchemas,
  formatDiff,
  indexRepository,
  lintRepository,
  listTitles,
  readSchemaFile,
  repositorySource,
  schemasToTypeScript,
  type BrokenSchema,
  type CompatReport,
  type LintReport,
  type CompatRules,
  type RepositoryIndex,
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
async function selectTitles(index: RepositoryIndex, context: CommandContext): Promise<string[]> {
  if (context.values['all'] === true) {
    if (context.positionals.length > 0 || context.values['modified'] === true) {
      throw new EventplaneError('EVP_CLI_USAGE', 'use one of --all, --modified or titles, not several')
    }
    return [...index.titles.keys()]
  }
  return (await selectCurrentFiles(index.repository, context)).map((f) => f.title)
}

/** Each schema that could not be checked, on stderr. */
function reportBroken(context: CommandContext, broken: readonly BrokenSchema[]): void {
  for (const b of broken) write(context.stderr, `${b.file}: could not be checked: ${b.code}: ${b.message}`)
}

const exitCodes = `Exit codes: 0 every schema checked, no errors (warnings allowed); 1 errors found; 3 some
schemas could not be checked at all (unreadable, a $ref that does not resolve: each is listed
and the others are checked); 2 usage.`

export const schemaLintCommand: Command = {
  path: ['schema', 'lint'],
  summary: 'Check materialized schemas against the repository rules (and the skip list).',
  usage: 'eventplane schema lint [--all | --modified [--staged] | TITLE…] [--repo DIR] [--json]',
  help: `Runs every rule of docs/schema-rules.md on each materialized version of the selected
titles: the jsonschema-tools robustness tests (valid, secure, snake_case, deterministic types,
examples valid, numeric bounds, …) and the structure rules (title matches the folder, $id is
/<title>/<version>, common fields). It also checks that current.yaml is materialized: its
version exists and equals what materializing it now gives. skipSchemaTestCases in
.jsonschema-tools.yaml skips rules per $id regex, as in jsonschema-tools; with --all, an entry
that matches no schema is a warning (skip-entry-unused).

The repository is read once: one walk of its folder, each file parsed once.

${exitCodes}`,
  options: { ...repoOption, ...selection },
  maxPositionals: 10000,
  async run(context) {
    const index = await indexRepository(repositoryFrom(context), { sync: true })
    const titles = await selectTitles(index, context)
    const lint = await lintRepository(index, titles, { wholeRepository: context.values['all'] === true })
    const out = lintOutput(lint, titles.length)
    if (context.values['json'] === true) write(context.stdout, JSON.stringify(out.json, null, 2))
    else printLint(context, lint, out)
    return out.code
  },
}

/** A lint report's summary, JSON and exit code (3 some schemas could not be checked, 1 errors, 0). */
function lintOutput(report: LintReport, titles: number) {
  const errors = report.findings.filter((f) => f.severity === 'error').length
  const warnings = report.findings.length - errors
  return {
    failed: errors > 0 || report.broken.length > 0,
    code: report.broken.length > 0 ? 3 : errors > 0 ? 1 : 0,
    summary: `${report.checked} schema versions of ${titles} titles checked: ${errors} errors, ${warnings} warnings${report.broken.length > 0 ? `; ${report.broken.length} could not be checked` : ''}`,
    json: { checked: report.checked, titles, errors, warnings, broken: report.broken, findings: report.findings },
  }
}

function printLint(context: CommandContext, report: LintReport, out: ReturnType<typeof lintOutput>): void {
  for (const f of report.findings) write(context.stdout, `${f.file}: ${f.severity} [${f.rule}] at ${f.path || '/'}: ${f.message}`)
  reportBroken(context, report.broken)
  write(out.failed ? context.stderr : context.stdout, out.summary)
}

/** A compat report's summary, JSON and exit code (3 some schemas could not be checked, 1 incompatible, 0). */
function compatOutput(report: CompatReport, rules: CompatRules, ruleFrom: string, strict: boolean) {
  const failing = report.rows.filter((r) => r.problems.length > 0 && !r.skipped)
  const broken = report.broken.length
  return {
    failed: failing.length > 0 || broken > 0,
    code: broken > 0 ? 3 : failing.length > 0 ? 1 : 0,
    summary: `${report.rows.length} version pairs compared by the jsonschema-tools ${rules} rule (${ruleFrom})${strict ? ', strict' : ''}: ${failing.length} incompatible${broken > 0 ? `; ${broken} ${broken === 1 ? 'schema' : 'schemas'} could not be checked` : ''}`,
    json: { rules, rules_from: ruleFrom, strict, pairs: report.rows.length, incompatible: failing.length, broken: report.broken, results: report.rows },
  }
}

function printCompat(context: CommandContext, report: CompatReport, out: ReturnType<typeof compatOutput>, pair = false): void {
  for (const row of report.rows.filter((r) => r.problems.length > 0)) {
    const head = pair ? row.title : `${row.title} ${row.from} → ${row.to}`
    write(context.stdout, `${head}: ${row.skipped ? 'incompatible, skipped by skipSchemaTestCases' : 'INCOMPATIBLE'}`)
    for (const p of row.problems) {
      write(context.stdout, `  [${p.rule}] at ${p.path || '/'}: ${p.message}\n    old: ${short(p.oldValue)}\n    new: ${short(p.newValue)}`)
    }
  }
  reportBroken(context, report.broken)
  write(out.failed ? context.stderr : context.stdout, out.summary)
}

/** --rules (checked), else the repository's pin, and what decided it; and --strict. */
function compatSettings(context: CommandContext, repository: SchemaRepository): { rules: CompatRules; from: string; strict: boolean } {
  const given = context.values['rules']
  if (given !== undefined && given !== '1.2' && given !== '1.3') throw new EventplaneError('EVP_CLI_USAGE', `--rules ${JSON.stringify(given)}: give 1.2 or 1.3 (the jsonschema-tools release whose rule to follow)`)
  const strict = context.values['strict'] === true
  return given !== undefined ? { rules: given, from: '--rules', strict } : { ...repository.compat, strict }
}

const compatOptions: Record<string, OptionSpec> = {
  rules: { type: 'string', value: '1.2|1.3', description: "jsonschema-tools release whose rule to follow (default: the repository's pin, else 1.3)." },
  strict: { type: 'boolean', description: 'Also refuse narrowing keywords added to existing fields, and (1.3) a smaller maxLength.' },
}

export const schemaCompatCommand: Command = {
  path: ['schema', 'compat'],
  summary: 'Check that versions within a major version only add optional properties.',
  usage: 'eventplane schema compat [--all | --modified [--staged] | TITLE… | OLD NEW] [--repo DIR] [--rules 1.2|1.3] [--strict] [--json]',
  help: `Wikimedia's rule: within one major version every key of the older schema must still be
there with a compatible value; required must stay identical; enum may only grow; only $id,
description and examples may change, and since jsonschema-tools 1.3 maxLength too. So a minor
version may only add optional properties; a new major version may break anything. For each
title, consecutive materialized versions of the same major are compared, and so is
current.yaml when it holds a version not yet materialized. OLD NEW compares two schemas
directly (files, or URIs such as /eventplane/test/event/1.0.0).
Each problem says where (JSON pointer), the old and new value, and which rule it breaks.
skipSchemaTestCases entries for schema-version-compatibility are honoured.

Which release's rule: the @wikimedia/jsonschema-tools version the repository pins (its
package-lock.json, else the lowest its package.json allows), else 1.3; --rules overrides.
--strict also refuses narrowing keywords added to existing fields and, with the 1.3 rule, a
smaller maxLength.

The repository is read once: one walk of its folder, each file parsed once.

${exitCodes.replace('no errors (warnings allowed); 1 errors found', 'all compatible; 1 some incompatible')}`,
  options: { ...repoOption, ...selection, ...compatOptions },
  maxPositionals: 10000,
  async run(context) {
    const repository = repositoryFrom(context)
    const { rules, from, strict } = compatSettings(context, repository)
    let report: CompatReport
    const pair = context.positionals.length === 2 && context.positionals.every(looksLikeSchemaRef)
    if (pair) {
      const source = repositorySource(repository)
      const [a, b] = await Promise.all(context.positionals.map((arg) => loadSchemaArg(repository, source, arg, context.cwd)))
      const [result] = checkVersionSeries([
        { version: '1.0.0', schema: a!.schema },
        { version: '1.0.1', schema: b!.schema },
      ], { strict, rules })
      report = { rows: [{ title: `${a!.label} → ${b!.label}`, from: a!.label, to: b!.label, problems: result!.result.problems, skipped: false }], broken: [] }
    } else {
      const index = await indexRepository(repository, { sync: true })
      report = await compatRepository(index, await selectTitles(index, context), { strict, rules })
    }
    const out = compatOutput(report, rules, from, strict)
    if (context.values['json'] === true) write(context.stdout, JSON.stringify(out.json, null, 2))
    else printCompat(context, report, out, pair)
    return out.code
  },
}

export const schemaCheckCommand: Command = {
  path: ['schema', 'check'],
  summary: 'lint and compat in one run: what a schema repository checks in CI and before a commit.',
  usage: 'eventplane schema check [--all | --modified [--staged] | TITLE…] [--repo DIR] [--rules 1.2|1.3] [--strict] [--json]',
  help: `Runs "eventplane schema lint" and "eventplane schema compat" on the same titles, reading the
repository once: what jsonschema-tools' repository tests (tests.all()) check, in one command.
See their --help for the rules; docs/schema-rules.md has them all.

Exit codes: 0 no lint errors and every pair compatible; 1 lint errors or an incompatible pair;
3 some schemas could not be checked at all (each is listed; the others are checked); 2 usage.`,
  options: { ...repoOption, ...selection, ...compatOptions },
  maxPositionals: 10000,
  async run(context) {
    const repository = repositoryFrom(context)
    const { rules, from, strict } = compatSettings(context, repository)
    const index = await indexRepository(repository, { sync: true })
    const titles = await selectTitles(index, context)
    const lint = await lintRepository(index, titles, { wholeRepository: context.values['all'] === true })
    const compat = await compatRepository(index, titles, { strict, rules })
    // A schema that lint could not read, compat could not either: listed once.
    const seen = new Set(lint.broken.map((b) => b.file))
    const compatOnly = { ...compat, broken: compat.broken.filter((b) => !seen.has(b.file)) }
    const lintOut = lintOutput(lint, titles.length)
    const compatOut = compatOutput(compatOnly, rules, from, strict)
    if (context.values['json'] === true) write(context.stdout, JSON.stringify({ lint: lintOut.json, compat: compatOut.json }, null, 2))
    else {
      printLint(context, lint, lintOut)
      printCompat(context, compatOnly, compatOut)
    }
    return Math.max(lintOut.code, compatOut.code) // 3 (not all checked) over 1 (problems) over 0
  },
}

function short(value: unknown): string {
  const text = value === undefined ? '(absent)' : JSON.stringify(value)
  return text.length > 200 ? `${text.slice(0, 197)}...` : text
}

function looksLikeSchemaRef(arg: string): boolean {
  return /\.(ya?ml|json)$/.test(arg) || /\/(\d+\.\d+\.\d+|latest)$/.test(arg)
}

/** A schema named on the command line: a file path, or a URI such as /eventplane/test/event/1.0.0 or eventplane/test/event/latest. */
async function loadSchemaArg(repository: SchemaRepository, source: SchemaSource, arg: string, cwd: string) {
  const path = resolve(cwd, arg)
  if (existsSync(path) && statSync(path).isFile()) return { label: arg, schema: await readSchemaFile(repository, path) }
  const uri = arg.startsWith('/') ? arg : `/${arg}`
  return { label: uri, schema: (await source.get(uri)).schema }
}

export const schemaDiffCommand: Command = {
  path: ['schema', 'diff'],
  summary: 'Show what changed between two schemas (files or URIs like /eventplane/test/event/1.0.0).',
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
version; a URI such as /eventplane/test/event/1.0.0 names one version; --all takes the latest of every
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
