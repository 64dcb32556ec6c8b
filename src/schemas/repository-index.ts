import { readdirSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'
import semver from 'semver'
import type { JsonObject } from '../core/objects.ts'
import { parseSchemaText, readLimited, readLimitedSync, semverName } from './files.ts'
import type { SchemaRepository, VersionEntry } from './repository.ts'
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
