import { realpathSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

/**
 * Folders of this installation that must not appear in answers (problem details, per-event
 * results, error events): where Eventplane is installed, runs and keeps data. Messages are
 * built with real paths, which help in the server's own log; at the boundary each of these
 * folders is replaced by a label (`<install>/defaults/schemas/…`, `repo:primary/…`).
 */
const roots = new Map<string, string>()
let patterns: Array<[RegExp, string]> = []

/** Hides a folder (and its real path, when it is a symlink) behind a label in answers. */
export function hidePath(folder: string, label: string): void {
  for (const path of new Set([folder, safeRealpath(folder)])) {
    const clean = path.replace(/\/+$/, '')
    if (clean.length > 1 && !roots.has(clean)) roots.set(clean, label)
  }
  // Longest first, so a repository inside the installation is named as the repository.
  patterns = [...roots]
    .sort(([a], [b]) => b.length - a.length)
    .map(([root, name]) => [new RegExp(`${root.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=/|$|[^\\w.-])`, 'g'), name])
}

/** `text` with every hidden folder replaced by its label. */
export function withoutPaths(text: string): string {
  if (!text.includes('/')) return text
  let out = text
  for (const [pattern, label] of patterns) out = out.replace(pattern, label)
  return out
}

function safeRealpath(path: string): string {
  try {
    return realpathSync(path)
  } catch {
    return path
  }
}

hidePath(fileURLToPath(new URL('../..', import.meta.url)), '<install>')
hidePath(process.cwd(), '<cwd>')
