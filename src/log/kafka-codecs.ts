/**
 * Decompression of Kafka record batches, for every codec Kafka has and in every framing its
 * producers write: Java's snappy (snappy-java's stream framing) as well as librdkafka's raw
 * snappy, and zstd on Node versions whose node:zlib has none (before 22.15). The log only reads
 * compressed batches; it produces uncompressed ones.
 */
import { compressionsAlgorithms } from '@platformatic/kafka'
import { decompress as fzstdDecompress } from 'fzstd'
import zlib from 'node:zlib'

/** A compression codec of Kafka's record batches, by the value of its attribute bits 0-2. */
export const codecs = ['none', 'gzip', 'snappy', 'lz4', 'zstd'] as const
export type Codec = Exclude<(typeof codecs)[number], 'none'>

/** The codec a batch's attributes name: `none`, a codec, or `unknown codec 5` (6, 7). */
export function codecName(attributes: number): string {
  const bits = attributes & 0x07
  return codecs[bits] ?? `unknown codec ${bits}`
}

/** Uncompresses the records part of a batch whose attribute bits 0-2 are `bits` (not 0); throws when it cannot. */
export type Decompress = (bits: number, data: Buffer) => Buffer

/**
 * A decompressor for every codec but those in `unsupported`.
 *
 * `unsupported` is a test hook: a batch in such a codec fails as one in a codec nobody knows would,
 * so tests can make an undecodable batch on a real broker. Deployments leave it empty.
 *
 * @example
 * const decompress = decompressor()
 * const records = decompress(attributes & 0x07, batchBody)
 */
export function decompressor(unsupported: readonly Codec[] = []): Decompress {
  const by: Record<Codec, (data: Buffer) => Buffer> = { gzip: gunzip, snappy: unsnappy, lz4, zstd }
  for (const codec of unsupported) {
    by[codec] = () => {
      throw new Error(`${codec} is switched off in this log (unsupportedCodecs)`)
    }
  }
  return (bits, data) => {
    const codec = codecs[bits]
    if (codec === undefined || codec === 'none') throw new Error(`no such compression codec: ${bits}`)
    return by[codec](data)
  }
}

const gunzip = (data: Buffer): Buffer => zlib.gunzipSync(data)

// LZ4 frames (Kafka's Java producer has written well-formed frame headers since message format v1).
const lz4 = (data: Buffer): Buffer => asBuffer(compressionsAlgorithms.lz4.decompressSync(data))

const rawSnappy = (data: Buffer): Buffer => asBuffer(compressionsAlgorithms.snappy.decompressSync(data))

/**
 * snappy-java's stream framing, which Kafka's Java clients write (SnappyOutputStream): a header
 * of the magic `\x82SNAPPY\0`, a version and a compatible version (int32 each), then blocks of
 * [int32 big-endian length][raw snappy]. librdkafka and Node clients write raw snappy; Java's
 * consumer reads both, telling them apart by the magic, and so does this.
 */
const xerialMagic = Buffer.from('\x82SNAPPY\0', 'latin1')
const xerialHeaderBytes = 16

function unsnappy(data: Buffer): Buffer {
  if (data.length < xerialHeaderBytes || !data.subarray(0, xerialMagic.length).equals(xerialMagic)) return rawSnappy(data)
  const blocks: Buffer[] = []
  let at = xerialHeaderBytes
  while (at < data.length) {
    if (at + 4 > data.length) throw new Error(`snappy-java framing ends inside a block length at byte ${at}`)
    const length = data.readInt32BE(at)
    at += 4
    if (length < 0 || at + length > data.length) throw new Error(`snappy-java block of ${length} bytes at byte ${at} runs past the end (${data.length} bytes)`)
    blocks.push(rawSnappy(data.subarray(at, at + length)))
    at += length
  }
  return blocks.length === 1 ? blocks[0]! : Buffer.concat(blocks)
}

// node:zlib has zstd from Node 22.15 (and 23.8); before that, fzstd (pure JavaScript) decodes it.
const nativeZstd = (zlib as { zstdDecompressSync?: (data: Buffer) => Buffer }).zstdDecompressSync

function zstd(data: Buffer): Buffer {
  if (nativeZstd !== undefined) return nativeZstd(data)
  return asBuffer(fzstdDecompress(data))
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}
