import { execFile } from 'node:child_process'
import { existsSync, realpathSync, statSync } from 'node:fs'
import { lstat, readdir, readFile, readlink, symlink, unlink, writeFile } from 'node:fs/promises'
import { basename, dirname, join, relative, resolve, sep } from 'node:path'
import { promisify } from 'node:util'
import semver from 'semver'
import { EventplaneError } from '../core/errors.ts'
import { jsonEqual, type JsonObject } from '../core/objects.ts'
import { parseSchemaText, readLimited, resolveInFolder, semverName } from './files.ts'
import { materializeSchema, serializeSchema } from './materialize.ts'
import { indexRepository } from './repository-index.ts'
import { createSchemaSource, type SchemaSource } from './source.ts'
import type { CompatRules } from './compat.ts'
import { pinnedRules, readToolsOptions, type PinnedRules, type ToolsOptions } from './tools-options.ts'

const run = promisify(execFile)

/** A schema repository in the jsonschema-tools layout. */
export interface SchemaRepository {
  readonly name: string
  /** Folder holding `.jsonschema-tools.yaml` (or the schema folder when there is none). */
  readonly root: string
  /** Real path of the `<title>/<version>.yaml` tree. */
  readonly schemaDir: string
  readonly options: ToolsOptions
  readonly maxFileBytes: number
  /** The jsonschema-tools compatibility rule, and what decided it (its pin, the config, or the default). */
  readonly compat: PinnedRules
}

export interface OpenRepositoryOptions {
  name?: string
  maxFileBytes?: number
  /** Overrides the rule the repository pins (`schemas.repositories[].compat_rules`, `--rules`). */
  compatRules?: CompatRules | undefined
}

/**
 * Opens a repository at `path`: a folder with `.jsonschema-tools.yaml` (whose
 * `schemaBasePath` names the schema tree), a folder with a `jsonschema/` subfolder, or the
 * schema tree itself.
 */
export function openRepository(path: string, options: OpenRepositoryOptions = {}): SchemaRepository {
  const root = resolve(path)
  if (!existsSync(root) || !statSync(root).isDirectory()) {
    throw new EventplaneError('EVP_REPOSITORY_NOT_FOUND', `schema repository folder ${root} does not exist`, {
      details: { path: root },
    })
  }
  let tools = readToolsOptions(root)
  if (!existsSync(join(root, '.jsonschema-tools.yaml')) && existsSync(join(root, 'jsonschema'))) {
    tools = { ...tools, schemaBasePath: join(root, 'jsonschema'), schemaBaseUris: [join(root, 'jsonschema')] }
  }
  if (!existsSync(tools.schemaBasePath)) {
    throw new EventplaneError('EVP_REPOSITORY_NOT_FOUND', `schema folder ${tools.schemaBasePath} does not exist`, {
      details: { path: tools.schemaBasePath },
    })
  }
  return {
    name: options.name ?? basename(root),
    root,
    schemaDir: realpathSync(tools.schemaBasePath),
    options: tools,
    maxFileBytes: options.maxFileBytes ?? 4 * 1024 * 1024,
    compat: options.compatRules !== undefined ? { rules: options.compatRules, from: 'config' } : pinnedRules(root),
  }
}

/** The source that resolves `$ref`s while materializing this repository's schemas. */
export function repositorySource(repository: SchemaRepository, timeoutMs?: number): SchemaSource {
  return createSchemaSource({
    baseUris: repository.options.schemaBaseUris,
    maxBytes: repository.maxFileBytes,
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  })
}

export interface SchemaFile {
  title: string
  /** Folder of the title. */
  dir: string
  path: string
  schema: JsonObject
}

export interface VersionEntry {
  version: string
  path: string
}

/** Reads and parses one schema file, within the repository's size limit. */
export async function readSchemaFile(repository: SchemaRepository, path: string): Promise<JsonObject> {
  const text = (await readLimited(path, repository.maxFileBytes)).toString('utf8')
  return parseSchemaText(text, path)
}

/** Title folders relative to the schema folder: every folder that holds a current file or a version. */
export async function listTitles(repository: SchemaRepository): Promise<string[]> {
  return [...(await indexRepository(repository)).titles.keys()]
}

/** Materialized versions of a title, oldest first (first content type only). */
export async function listVersions(repository: SchemaRepository, title: string): Promise<VersionEntry[]> {
  const entry = await resolveInFolder(repository.schemaDir, title)
  if (entry === undefined || !entry.isDirectory) return []
  const contentType = repository.options.contentTypes[0] ?? 'yaml'
  const names = await readdir(entry.real)
  return names
    .filter((n) => n.endsWith(`.${contentType}`) && semverName.test(n.slice(0, -contentType.length - 1)))
    .map((n) => ({ version: n.slice(0, -contentType.length - 1), path: join(entry.real, n) }))
    .sort((a, b) => semver.compare(a.version, b.version))
}

/** Every `current.yaml` in the repository, minus `ignoreSchemas`. */
export async function listCurrentSchemas(repository: SchemaRepository): Promise<SchemaFile[]> {
  const out: SchemaFile[] = []
  for (const title of await listTitles(repository)) {
    const path = join(repository.schemaDir, ...title.split('/'), repository.options.currentName)
    if (!existsSync(path)) continue
    const schema = await readSchemaFile(repository, path)
    if (isIgnored(repository, schema)) continue
    out.push({ title, dir: dirname(path), path, schema })
  }
  return out
}

export function isIgnored(repository: SchemaRepository, schema: JsonObject): boolean {
  const id = typeof schema['$id'] === 'string' ? schema['$id'] : ''
  return repository.options.ignoreSchemas.some((pattern) => new RegExp(pattern).test(id))
}

/** The semver in a schema's version field (`$id: /eventplane/test/event/1.2.0` → `1.2.0`), as jsonschema-tools reads it. */
export function schemaVersion(schema: JsonObject, field = '$id', location = 'schema'): string {
  const value = field.split('.').reduce<unknown>((v, k) => (v as JsonObject | undefined)?.[k], schema)
  const version = typeof value === 'string' ? semver.coerce(value.split('/').pop() ?? '')?.version : undefined
  if (version === undefined) {
    throw new EventplaneError(
      'EVP_SCHEMA_VERSION_INVALID',
      `${location}: ${field} ${JSON.stringify(value)} holds no semantic version (expected /<title>/<major>.<minor>.<patch>)`,
      { details: { location, field } },
    )
  }
  return version
}

export type LinkMode = 'auto' | 'symlink' | 'pointer'

export interface WriteVersionOptions {
  dryRun?: boolean
  /** How `latest` and extensionless entries are made. `auto`: symlinks where the filesystem has them. */
  links?: LinkMode
  /** Write version files even when they already hold the same value (to normalize formatting). */
  force?: boolean
}

export interface MaterializeResult {
  title: string
  version: string
  /** Files written or that would be written (dry run); entries already right are left alone. */
  files: string[]
  generatedExample: boolean
  /** The version file existed with a different value and was replaced. */
  replaced: boolean
}

/**
 * Materializes one current schema into `<version>.<ext>` for each content type, the
 * extensionless entry and the `latest` entries, as jsonschema-tools does: `latest` moves only
 * forward (it is updated when this version is at least the one it points to).
 */
export async function materializeFile(
  repository: SchemaRepository,
  file: SchemaFile,
  source: SchemaSource,
  options: WriteVersionOptions = {},
): Promise<MaterializeResult> {
  const tools = repository.options
  const version = schemaVersion(file.schema, tools.schemaVersionField, file.path)
  const { schema, generatedExample } = await materializeSchema(file.schema, {
    source,
    shouldDereference: tools.shouldDereference,
    enforcedNumericBounds: tools.enforcedNumericBounds,
    shouldGenerateExample: tools.shouldGenerateExample,
    location: file.path,
  })
  const files: Array<string | undefined> = []
  let replaced = false
  const first = tools.contentTypes[0] ?? 'yaml'
  for (const contentType of tools.contentTypes) {
    const target = `${version}.${contentType}`
    // A version already written with this value is left byte for byte as it is, so
    // re-materializing a repository (even one written by jsonschema-tools) changes nothing.
    // Generated examples are not the schema's content: a published one is kept as it is.
    const path = join(file.dir, target)
    const existingText = await readFile(path, 'utf8').catch(() => undefined)
    let text = serializeSchema(schema, contentType)
    // The same bytes are the common case (and need no parsing); otherwise compare values.
    let same = existingText === text
    if (!same && existingText !== undefined) {
      const existing = parseExisting(existingText, path)
      if (generatedExample && existing !== undefined && Array.isArray(existing['examples'])) {
        text = serializeSchema({ ...schema, examples: existing['examples'] }, contentType)
        same = existingText === text || jsonEqual(existing, { ...schema, examples: existing['examples'] })
      } else {
        same = existing !== undefined && jsonEqual(existing, schema)
      }
    }
    if (!same || options.force) {
      replaced ||= existingText !== undefined && !same
      files.push(path)
      if (!options.dryRun) await writeFile(path, text)
    }
    if (tools.shouldSymlinkLatest && (await shouldMoveLatest(join(file.dir, `latest.${contentType}`), version))) {
      files.push(await link(file.dir, `latest.${contentType}`, target, options))
    }
    if (tools.shouldSymlinkExtensionless && contentType === first) {
      files.push(await link(file.dir, version, target, options))
      if (tools.shouldSymlinkLatest && (await shouldMoveLatest(join(file.dir, 'latest'), version))) {
        files.push(await link(file.dir, 'latest', target, options))
      }
    }
  }
  return { title: file.title, version, files: files.filter((f): f is string => f !== undefined), generatedExample, replaced }
}

/** A version file already there, or undefined when it cannot be read as a schema (then it is rewritten). */
function parseExisting(text: string, path: string): JsonObject | undefined {
  try {
    return parseSchemaText(text, path)
  } catch {
    return undefined
  }
}


async function shouldMoveLatest(latestPath: string, version: string): Promise<boolean> {
  const current = await linkedVersion(latestPath)
  return current === undefined || semver.gte(version, current)
}

/** The version a `latest` entry points to (symlink or pointer file), if any. */
async function linkedVersion(path: string): Promise<string | undefined> {
  try {
    const info = await lstat(path)
    const target = info.isSymbolicLink() ? await readlink(path) : info.size <= 256 ? (await readFile(path, 'utf8')).trim() : ''
    const name = basename(target).replace(/\.(ya?ml|json)$/, '')
    return semverName.test(name) ? name : undefined
  } catch {
    return undefined
  }
}

async function link(dir: string, name: string, target: string, options: WriteVersionOptions): Promise<string | undefined> {
  const path = join(dir, name)
  if (await linksTo(path, target)) return undefined
  if (options.dryRun) return path
  await unlink(path).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error
  })
  const mode = options.links ?? 'auto'
  if (mode !== 'pointer') {
    try {
      await symlink(target, path)
      return path
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (mode === 'symlink' || !['EPERM', 'ENOTSUP', 'EINVAL', 'EACCES', 'ENOSYS'].includes(code ?? '')) throw error
    }
  }
  // Filesystems without symlinks get a pointer file holding the target name, which every
  // Eventplane reader follows (and git stores the same way as a symlink's content).
  await writeFile(path, target)
  return path
}

/** Whether `path` is already a symlink or pointer file naming `target`. */
async function linksTo(path: string, target: string): Promise<boolean> {
  try {
    const info = await lstat(path)
    if (info.isSymbolicLink()) return (await readlink(path)) === target
    return info.size <= 256 && (await readFile(path, 'utf8')).trim() === target
  } catch {
    return false
  }
}

/** `current.yaml` files that git sees as modified (or staged, or new), as absolute paths. */
export async function gitModifiedCurrentFiles(repository: SchemaRepository, staged: boolean): Promise<string[]> {
  const cwd = repository.schemaDir
  const git = async (...args: string[]) => {
    try {
      return (await run('git', args, { cwd, maxBuffer: 64 * 1024 * 1024 })).stdout
    } catch (error) {
      throw new EventplaneError('EVP_GIT_FAILED', `git ${args.join(' ')} failed in ${cwd}: ${(error as Error).message.trim()}`, {
        cause: error,
      })
    }
  }
  const top = (await git('rev-parse', '--show-toplevel')).trim()
  const listed = [
    ...(await git('diff', ...(staged ? ['--cached'] : []), '--name-only', '--diff-filter=ACM', '--', '.')).split('\n'),
    // New schemas are untracked until added; jsonschema-tools misses them, we do not.
    ...(staged ? [] : (await git('ls-files', '--others', '--exclude-standard', '--full-name', '--', '.')).split('\n')),
  ]
  const currentName = repository.options.currentName
  return [...new Set(listed.filter((f) => f !== '' && basename(f) === currentName).map((f) => resolve(top, f)))].sort()
}

export async function gitAdd(repository: SchemaRepository, files: string[]): Promise<void> {
  if (files.length === 0) return
  try {
    await run('git', ['add', '--', ...files], { cwd: repository.schemaDir })
  } catch (error) {
    throw new EventplaneError('EVP_GIT_FAILED', `git add failed: ${(error as Error).message.trim()}`, { cause: error })
  }
}

/** Reads the current schema at an absolute path inside the repository, as a SchemaFile. */
export async function schemaFileAt(repository: SchemaRepository, path: string): Promise<SchemaFile> {
  const absolute = resolve(path)
  const dir = dirname(absolute)
  const real = realpathSync(dir)
  if (real !== repository.schemaDir && !real.startsWith(repository.schemaDir + sep)) {
    throw new EventplaneError('EVP_PATH_INVALID', `${path} is not inside the schema folder ${repository.schemaDir}`, {
      details: { path },
    })
  }
  const schema = await readSchemaFile(repository, absolute)
  return { title: relative(repository.schemaDir, real).split(sep).join('/'), dir, path: absolute, schema }
}

/**
 * Orders schemas so that the ones others `$ref` come first (a fragment and a schema using
 * its new version can be materialized in one run). Ties, and cycles, fall back to the
 * jsonschema-tools heuristic: "common" titles first, then shallower paths.
 */
export function dependencyOrder(files: SchemaFile[]): SchemaFile[] {
  const heuristic = [...files].sort((a, b) => {
    const ac = a.title.includes('common') ? 0 : 1
    const bc = b.title.includes('common') ? 0 : 1
    return ac - bc || a.title.split('/').length - b.title.split('/').length || (a.title < b.title ? -1 : 1)
  })
  const byTitle = new Map(heuristic.map((f) => [f.title, f]))
  const ordered: SchemaFile[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (file: SchemaFile) => {
    if (state.get(file.title) !== undefined) return
    state.set(file.title, 'visiting')
    for (const title of referencedTitles(file.schema)) {
      const dependency = byTitle.get(title)
      if (dependency !== undefined && dependency !== file) visit(dependency)
    }
    state.set(file.title, 'done')
    ordered.push(file)
  }
  heuristic.forEach(visit)
  return ordered
}

/** Titles a schema `$ref`s: `/fragment/eventplane/common/1.0.0#` → `fragment/eventplane/common`. */
function referencedTitles(value: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(value)) value.forEach((v) => referencedTitles(v, out))
  else if (typeof value === 'object' && value !== null) {
    for (const [key, child] of Object.entries(value)) {
      if (key === '$ref' && typeof child === 'string' && child.startsWith('/')) {
        const path = child.split('#')[0]!.split('/').filter(Boolean)
        if (path.length > 1) out.add(path.slice(0, -1).join('/'))
      } else referencedTitles(child, out)
    }
  }
  return out
}
