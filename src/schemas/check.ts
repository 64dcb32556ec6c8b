import { readdirSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import semver from 'semver'
import { EventplaneError } from '../core/errors.ts'
import { jsonEqual, type JsonObject } from '../core/objects.ts'
import { checkVersionSeries, type CompatProblem, type CompatRules } from './compat.ts'
import { diffSchemas } from './diff.ts'
import { parseSchemaText, readLimited, readLimitedSync, semverName } from './files.ts'
import { lintSchema, shouldSkip, type LintFinding } from './lint.ts'
import { materializeSchema } from './materialize.ts'
import { isIgnored, schemaVersion, type SchemaRepository, type VersionEntry } from './repository.ts'
import { createSchemaSource, type SchemaSource } from './source.ts'

/** A title's folder: its current file, and its materialized versions (first content type), oldest first. */
export interface TitleEntry {
  title: string
  dir: string
  current: string | undefined
  versions: VersionEntry[]
}

/**
 * A repository read for one command: one walk of the schema folder, and every file parsed at
 * most once, whether a check reads it or a `$ref` points to it. Parsed files are shared:
 * callers copy before they change one.
 */
export interface RepositoryIndex {
  readonly repository: SchemaRepository
  /** By title, sorted. */
  readonly titles: ReadonlyMap<string, TitleEntry>
  /** A file of the repository, parsed (read once). */
  read(path: string): Promise<JsonObject>
  /** Resolves `$ref`s of current files through `read` (and any remote schemaBaseUris). */
  readonly source: SchemaSource
  /** Folders listed and files read so far (tests check that nothing is read twice). */
  readonly stats: { directories: number; filesRead: number }
}

/**
 * `sync`: read with synchronous calls, for a command that does nothing else meanwhile (the CLI):
 * faster for many small files. A server leaves it off, so that its requests go on.
 */
export async function indexRepository(repository: SchemaRepository, options: { sync?: boolean } = {}): Promise<RepositoryIndex> {
  const stats = { directories: 0, filesRead: 0 }
  const { currentName, contentTypes } = repository.options
  const first = contentTypes[0] ?? 'yaml'
  const found: TitleEntry[] = []
  const walk = async (dir: string): Promise<void> => {
    stats.directories++
    const entries = options.sync === true ? readdirSync(dir, { withFileTypes: true }) : await readdir(dir, { withFileTypes: true })
    let current: string | undefined
    let isTitle = false
    const versions: VersionEntry[] = []
    for (const entry of entries) {
      const name = entry.name
      if (name === currentName) {
        current = join(dir, name)
        isTitle = true
        continue
      }
      const dot = name.lastIndexOf('.')
      if (dot === -1 || !semverName.test(name.slice(0, dot))) continue
      const ext = name.slice(dot + 1)
      if ((ext !== 'yaml' && ext !== 'json') || !contentTypes.includes(ext)) continue
      isTitle = true
      if (ext === first) versions.push({ version: name.slice(0, dot), path: join(dir, name) })
    }
    if (isTitle) {
      versions.sort((a, b) => semver.compare(a.version, b.version))
      found.push({ title: relative(repository.schemaDir, dir).split(sep).join('/'), dir, current, versions })
    }
    for (const entry of entries) {
      if (entry.isDirectory() && !entry.name.startsWith('.') && entry.name !== 'node_modules') await walk(join(dir, entry.name))
    }
  }
  await walk(repository.schemaDir)
  found.sort((a, b) => (a.title < b.title ? -1 : a.title > b.title ? 1 : 0))

  const parsed = new Map<string, Promise<JsonObject>>()
  const read = (path: string): Promise<JsonObject> => {
    let pending = parsed.get(path)
    if (pending === undefined) {
      stats.filesRead++
      if (options.sync === true) {
        try {
          pending = Promise.resolve(parseSchemaText(readLimitedSync(path, repository.maxFileBytes).toString('utf8'), path))
        } catch (error) {
          pending = Promise.reject(error as Error)
          pending.catch(() => {}) // the caller that asked gets the rejection
        }
      } else pending = readLimited(path, repository.maxFileBytes).then((bytes) => parseSchemaText(bytes.toString('utf8'), path))
      parsed.set(path, pending)
    }
    return pending
  }
  const source = createSchemaSource({ baseUris: repository.options.schemaBaseUris, maxBytes: repository.maxFileBytes, readFile: read })
  return { repository, titles: new Map(found.map((t) => [t.title, t])), read, source, stats }
}

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
  if (error instanceof EventplaneError) return { title, file, code: error.code, message: error.message }
  return { title, file, code: 'EVP_INTERNAL', message: (error as Error).message ?? String(error) }
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
