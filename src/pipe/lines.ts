import { isUtf8 } from 'node:buffer'

/** One line of a line-delimited input, with where it ends (so a reader can resume after it). */
export interface Line {
  /** The line without its line end (LF or CRLF); undefined when it cannot be an event (`problem` says why). */
  text: string | undefined
  problem?: string
  /** 1-based line number in the input. */
  number: number
  /** Byte offset just past the line and its line end: where reading resumes after it. */
  end: number
  /** Its length in bytes, for an over-long line (the text is not kept). */
  bytes: number
}

/**
 * Splits chunks of bytes into lines without decoding more than each line once, keeping byte
 * offsets exact (a resumed read seeks to them). A line longer than `maxLineBytes` is passed on
 * without its text and skipped to its end, so one huge line cannot take the memory. A last
 * line without a line end is a line too (files often lack the final newline).
 */
export async function* splitLines(
  chunks: AsyncIterable<Buffer>,
  options: { startOffset: number; startLine: number; maxLineBytes: number },
): AsyncGenerator<Line[]> {
  let offset = options.startOffset
  let number = options.startLine
  let pending: Buffer[] = []
  let pendingBytes = 0
  let overLong = false
  for await (const chunk of chunks) {
    const lines: Line[] = []
    // One check of the whole chunk spares one per line; a chunk that fails (bad bytes, or a
    // character cut at its end) has its lines checked one by one.
    const valid = isUtf8(chunk)
    let start = 0
    for (;;) {
      const nl = chunk.indexOf(10, start)
      if (nl === -1) break
      const lineBytes = pendingBytes + (nl - start)
      offset += nl + 1 - start
      number++
      if (overLong || lineBytes > options.maxLineBytes) {
        lines.push({ text: undefined, problem: `${lineBytes} bytes, over max_line_bytes ${options.maxLineBytes}`, number, end: offset, bytes: lineBytes })
      } else {
        const first = number === 1 && options.startOffset === 0
        lines.push(
          pendingBytes === 0 && valid && !first
            ? text(chunk.toString('utf8', start, nl), number, offset, nl - start)
            : decode(pendingBytes === 0 ? chunk.subarray(start, nl) : Buffer.concat([...pending, chunk.subarray(start, nl)]), number, offset, first),
        )
      }
      pending = []
      pendingBytes = 0
      overLong = false
      start = nl + 1
    }
    if (start < chunk.length) {
      const tail = chunk.length - start
      offset += tail
      pendingBytes += tail
      if (pendingBytes > options.maxLineBytes) {
        overLong = true
        pending = []
      } else pending.push(chunk.subarray(start))
    }
    if (lines.length > 0) yield lines
  }
  if (pendingBytes > 0) {
    number++
    yield [
      overLong
        ? { text: undefined, problem: `${pendingBytes} bytes, over max_line_bytes ${options.maxLineBytes}`, number, end: offset, bytes: pendingBytes }
        : decode(Buffer.concat(pending), number, offset, number === 1 && options.startOffset === 0),
    ]
  }
}

/**
 * A line's text: bytes that are not UTF-8 make no event (as the intake refuses such a body),
 * rather than one with U+FFFD in it; a byte order mark at the start of the input is dropped.
 */
function decode(bytes: Buffer, number: number, end: number, first: boolean): Line {
  if (!isUtf8(bytes)) return { text: undefined, problem: 'not valid UTF-8', number, end, bytes: bytes.length }
  const line = text(bytes.toString('utf8'), number, end, bytes.length)
  if (first && line.text!.charCodeAt(0) === 0xfeff) line.text = line.text!.slice(1)
  return line
}

/** A decoded line, without a CR before its LF. */
function text(decoded: string, number: number, end: number, bytes: number): Line {
  return { text: decoded.charCodeAt(decoded.length - 1) === 13 ? decoded.slice(0, -1) : decoded, number, end, bytes }
}
