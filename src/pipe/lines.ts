/** One line of a line-delimited input, with where it ends (so a reader can resume after it). */
export interface Line {
  /** The line without its line end (LF or CRLF); undefined when it was longer than the limit. */
  text: string | undefined
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
    let start = 0
    for (;;) {
      const nl = chunk.indexOf(10, start)
      if (nl === -1) break
      const lineBytes = pendingBytes + (nl - start)
      offset += nl + 1 - start
      number++
      if (overLong || lineBytes > options.maxLineBytes) {
        lines.push({ text: undefined, number, end: offset, bytes: lineBytes })
      } else {
        let text = pendingBytes === 0 ? chunk.toString('utf8', start, nl) : Buffer.concat([...pending, chunk.subarray(start, nl)]).toString('utf8')
        if (text.endsWith('\r')) text = text.slice(0, -1)
        lines.push({ text, number, end: offset, bytes: lineBytes })
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
    let text = overLong ? undefined : Buffer.concat(pending).toString('utf8')
    if (text?.endsWith('\r')) text = text.slice(0, -1)
    yield [{ text, number, end: offset, bytes: pendingBytes }]
  }
}
