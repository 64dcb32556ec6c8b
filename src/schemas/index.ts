/**
 * @module schemas: the schema registry. Repositories in the jsonschema-tools layout,
 * `$ref`/`allOf` materialization, schema lookup by URI, and the HTTP schema service.
 */
export { createSchemaSource, type SchemaSource, type SchemaSourceOptions, type LoadedSchema } from './source.ts'
export { dereference, evaluatePointer, type DereferenceOptions } from './dereference.ts'
export { mergeAllOf } from './merge-allof.ts'
export {
  materializeSchema,
  enforceNumericBounds,
  serializeSchema,
  sortSchemaKeys,
  type MaterializeOptions,
  type Materialized,
  type ContentType,
} from './materialize.ts'
export { generateExample } from './example.ts'
export {
  openRepository,
  repositorySource,
  listTitles,
  listVersions,
  listCurrentSchemas,
  readSchemaFile,
  schemaFileAt,
  schemaVersion,
  materializeFile,
  dependencyOrder,
  gitModifiedCurrentFiles,
  gitAdd,
  isIgnored,
  type SchemaRepository,
  type SchemaFile,
  type VersionEntry,
  type MaterializeResult,
  type LinkMode,
} from './repository.ts'
export { readToolsOptions, pinnedRules, type ToolsOptions, type PinnedRules } from './tools-options.ts'
export { schemaRoutes, type SchemaServiceOptions } from './service.ts'
export {
  checkCompatibility,
  checkVersionSeries,
  compatRules,
  defaultCompatRules,
  type CompatRules,
  type CompatRule,
  type CompatProblem,
  type CompatResult,
  type CompatOptions,
  type SchemaVersion,
  type VersionPairResult,
} from './compat.ts'
export {
  lintSchema,
  lintRules,
  shouldSkip,
  defaultNumericBounds,
  type LintRule,
  type LintFinding,
  type LintOptions,
  type LintSeverity,
  type SkipSchemaTestCases,
} from './lint.ts'
export { diffSchemas, formatDiff, type DiffEntry, type DiffKind } from './diff.ts'
export { schemaToTypeScript, schemasToTypeScript, typeNameFromTitle, type TypegenOptions } from './typegen.ts'
export { indexRepository, type RepositoryIndex, type TitleEntry } from './repository-index.ts'
export {
  lintRepository,
  currentState,
  type CurrentState,
  compatRepository,
  type BrokenSchema,
  type FileFinding,
  type LintReport,
  type CompatRow,
  type CompatReport,
} from './check.ts'
export { findDuplicateIds, type DuplicateId } from './duplicates.ts'
