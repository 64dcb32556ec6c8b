import { join } from 'node:path'
import { toEventplaneError } from '../core/errors.ts'
import { jsonEqual, type JsonObject } from '../core/objects.ts'
import { checkVersionSeries, type CompatProblem, type CompatRules } from './compat.ts'
import { diffSchemas } from './diff.ts'
import { lintSchema, shouldSkip, type LintFinding } from './lint.ts'
import { materializeSchema } from './materialize.ts'
import { isIgnored, schemaVersion } from './repository.ts'
import type { RepositoryIndex, TitleEntry } from './repository-index.ts'

/** A schema that could not be checked at all, and why. */
export interface BrokenSchema {
  title: string
  file: string
  code: string
  message: string
}

/** A lint finding in a file: a schema rule, or a repository rule. */
export interface FileFinding extends Omit<LintFinding, 'rule'> {
  rule: LintFinding['rule'] | 'current-is-materialized' | 'skip-entry-unused'
  file: string
}

export interface LintReport {
  /** Versions (and current files) checked. */
  checked: number
  findings: FileFinding[]
  broken: BrokenSchema[]
}

function brokenBy(title: string, file: string, error: unknown): BrokenSchema {
  const { code, message } = toEventplaneError(error)
  return { title, file, code, message }
}

/**
 * Lints the materialized versions of `titles`, and checks that each current file is
 * materialized. A schema that cannot be read or materialized (bad YAML, a `$ref` that does not
 * resolve) is reported as broken and the others are still checked, as jsonschema-tools does.
 * With `wholeRepository`, skip-list entries that match no schema are reported too.
 */
export async function lintRepository(index: RepositoryIndex, titles: readonly string[], options: { wholeRepository?: boolean } = {}): Promise<LintReport> {
  const { repository } = index
  const tools = repository.options
  const report: LintReport = { checked: 0, findings: [], broken: [] }
  const ids = new Set<string>()
  for (const title of titles) {
    const entry = index.titles.get(title)
    if (entry === undefined) continue
    for (const version of entry.versions) {
      let schema: JsonObject
      try {
        schema = await index.read(version.path)
      } catch (error) {
        report.broken.push(brokenBy(title, version.path, error))
        continue
      }
      if (typeof schema['$id'] === 'string') ids.add(schema['$id'])
      let findings: LintFinding[]
      try {
        findings = lintSchema(schema, { path: title, version: version.version, enforcedNumericBounds: tools.enforcedNumericBounds, skipSchemaTestCases: tools.skipSchemaTestCases })
      } catch (error) {
        // A schema no rule can walk (nested deeper than the stack, say): reported, the rest go on.
        report.broken.push(brokenBy(title, version.path, error))
        continue
      }
      report.checked++
      for (const finding of findings) report.findings.push({ ...finding, file: version.path })
    }
    if (entry.current === undefined) continue
    try {
      const current = await index.read(entry.current)
      if (typeof current['$id'] === 'string') ids.add(current['$id'])
      if (isIgnored(repository, current)) continue
      const problem = await currentProblem(index, entry, current)
      if (problem !== undefined) report.findings.push({ rule: 'current-is-materialized', path: '', message: problem, severity: 'error', file: entry.current })
    } catch (error) {
      report.broken.push(brokenBy(title, entry.current, error))
    }
  }
  if (options.wholeRepository === true) {
    for (const pattern of Object.keys(tools.skipSchemaTestCases)) {
      // Any rule listed is enough: an entry that matches a schema is in use.
      const rules = tools.skipSchemaTestCases[pattern] ?? []
      if ([...ids].some((id) => rules.some((rule) => shouldSkip(id, rule, { [pattern]: [rule] })))) continue
      report.findings.push({
        rule: 'skip-entry-unused',
        path: `/skipSchemaTestCases/${pattern.replaceAll('~', '~0').replaceAll('/', '~1')}`,
        message: `skipSchemaTestCases entry ${JSON.stringify(pattern)} matches no schema $id in the repository; remove it, or fix its pattern (it is tested against each $id, unanchored)`,
        severity: 'warning',
        file: join(repository.root, '.jsonschema-tools.yaml'),
      })
    }
  }
  return report
}

export type CurrentState =
  | { state: 'materialized'; version: string; path: string }
  | { state: 'not-materialized'; version: string }
  | { state: 'changed'; version: string; path: string; firstDifference: string }

/**
 * Whether a title's current file is published: its version is materialized and materializing it
 * now gives the same JSON value as that file. When current.yaml has no examples, the file's
 * (generated, and in jsonschema-tools random) examples are left out of the comparison.
 */
export async function currentState(index: RepositoryIndex, entry: TitleEntry, current: JsonObject): Promise<CurrentState> {
  const { repository } = index
  const version = schemaVersion(current, repository.options.schemaVersionField, entry.current)
  const published = entry.versions.find((v) => v.version === version)
  if (published === undefined) return { state: 'not-materialized', version }
  const { schema } = await materializeSchema(current, {
    source: index.source,
    shouldDereference: repository.options.shouldDereference,
    enforcedNumericBounds: repository.options.enforcedNumericBounds,
    shouldGenerateExample: false,
    location: entry.current,
  })
  const file = { ...(await index.read(published.path)) }
  if (current['examples'] === undefined) {
    delete schema['examples']
    delete file['examples']
  }
  if (jsonEqual(schema, file)) return { state: 'materialized', version, path: published.path }
  return { state: 'changed', version, path: published.path, firstDifference: diffSchemas(file, schema)[0]?.path || '/' }
}

/** Why a current file is not published, as a lint message, or undefined. */
async function currentProblem(index: RepositoryIndex, entry: TitleEntry, current: JsonObject): Promise<string | undefined> {
  const result = await currentState(index, entry, current)
  if (result.state === 'not-materialized') return `version ${result.version} is not materialized; run: eventplane schema materialize ${entry.title}`
  if (result.state === 'changed') {
    return (
      `current.yaml changed since ${result.version} was materialized (first difference at ${result.firstDifference}); ` +
      'raise the version in $id and materialize, or revert the edit'
    )
  }
  return undefined
}

export interface CompatRow {
  title: string
  from: string
  to: string
  problems: CompatProblem[]
  /** skipSchemaTestCases lists schema-version-compatibility for the newer $id. */
  skipped: boolean
}

export interface CompatReport {
  rows: CompatRow[]
  broken: BrokenSchema[]
}

/**
 * Compares consecutive versions of each title within a major (and current.yaml, when it holds
 * a version not materialized yet), by the repository's jsonschema-tools rule unless `rules`
 * says otherwise. A title with a file that cannot be read or materialized is reported as
 * broken; the others are still compared.
 */
export async function compatRepository(index: RepositoryIndex, titles: readonly string[], options: { strict?: boolean; rules?: CompatRules } = {}): Promise<CompatReport> {
  const { repository } = index
  const rules = options.rules ?? repository.compat.rules
  const report: CompatReport = { rows: [], broken: [] }
  for (const title of titles) {
    const entry = index.titles.get(title)
    if (entry === undefined) continue
    const versions: Array<{ version: string; schema: JsonObject }> = []
    let unreadable = false
    for (const version of entry.versions) {
      try {
        versions.push({ version: version.version, schema: await index.read(version.path) })
      } catch (error) {
        report.broken.push(brokenBy(title, version.path, error))
        unreadable = true
      }
    }
    if (unreadable) continue
    if (entry.current !== undefined) {
      try {
        const current = await index.read(entry.current)
        if (!isIgnored(repository, current)) {
          const version = schemaVersion(current, repository.options.schemaVersionField, entry.current)
          if (!versions.some((v) => v.version === version)) {
            const { schema } = await materializeSchema(current, { source: index.source, enforcedNumericBounds: repository.options.enforcedNumericBounds, location: entry.current })
            versions.push({ version, schema })
          }
        }
      } catch (error) {
        // The materialized versions are still compared.
        report.broken.push(brokenBy(title, entry.current, error))
      }
    }
    let results: ReturnType<typeof checkVersionSeries>
    try {
      results = checkVersionSeries(versions, { strict: options.strict === true, rules })
    } catch (error) {
      report.broken.push(brokenBy(title, entry.dir, error))
      continue
    }
    for (const result of results) {
      const newer = versions.find((v) => v.version === result.to)!.schema
      const skipped = shouldSkip(newer['$id'], 'schema-version-compatibility', repository.options.skipSchemaTestCases)
      report.rows.push({ title, from: result.from, to: result.to, problems: result.result.problems, skipped })
    }
  }
  return report
}
