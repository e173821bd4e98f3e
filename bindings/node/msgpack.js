'use strict'
// Plain msgpack of JS values: what publishObj/requestObj/msg.obj() use. The
// encoding is the value itself (no envelope, no extension types), so the
// Python binding's `publish_obj`/`Message.obj()` and any msgpack library read
// it. Supported: null/undefined (nil), booleans, numbers (integers as ints,
// others as float64), bigint (int64/uint64), strings, Uint8Array/Buffer
// (bin), arrays, Map and plain objects (map). Decoding checks every length
// against the bytes present and limits nesting; 64-bit integers outside the
// safe range decode as bigint.

const MAX_DEPTH = 256

function fail (msg) {
  const e = new TypeError(msg)
  e.code = 'INVALID_ARGUMENT'
  return e
}

class Writer {
  constructor () {
    this.buf = Buffer.allocUnsafe(256)
    this.n = 0
  }

  room (k) {
    if (this.n + k > this.buf.length) {
      const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k))
      this.buf.copy(b, 0, 0, this.n)
      this.buf = b
    }
  }

  u8 (v) { this.room(1); this.buf[this.n++] = v }
  u8u8 (a, b) { this.room(2); this.buf[this.n++] = a; this.buf[this.n++] = b }
  u16 (t, v) { this.room(3); this.buf[this.n] = t; this.buf.writeUInt16BE(v, this.n + 1); this.n += 3 }
  u32 (t, v) { this.room(5); this.buf[this.n] = t; this.buf.writeUInt32BE(v, this.n + 1); this.n += 5 }
  bytes (b) { this.room(b.length); this.buf.set(b, this.n); this.n += b.length }
}

function encInt (w, v) {
  if (v >= 0) {
    if (v < 128) w.u8(v)
    else if (v < 256) w.u8u8(0xcc, v)
    else if (v < 65536) w.u16(0xcd, v)
    else if (v < 4294967296) w.u32(0xce, v)
    else { w.room(9); w.buf[w.n] = 0xcf; w.buf.writeBigUInt64BE(BigInt(v), w.n + 1); w.n += 9 }
  } else {
    if (v >= -32) w.u8(v & 0xff)
    else if (v >= -128) { w.room(2); w.buf[w.n] = 0xd0; w.buf.writeInt8(v, w.n + 1); w.n += 2 } else if (v >= -32768) { w.room(3); w.buf[w.n] = 0xd1; w.buf.writeInt16BE(v, w.n + 1); w.n += 3 } else if (v >= -2147483648) { w.room(5); w.buf[w.n] = 0xd2; w.buf.writeInt32BE(v, w.n + 1); w.n += 5 } else { w.room(9); w.buf[w.n] = 0xd3; w.buf.writeBigInt64BE(BigInt(v), w.n + 1); w.n += 9 }
  }
}

function encLen (w, n, fix, fixMax, t16, t32) {
  if (fix !== null && n <= fixMax) w.u8(fix | n)
  else if (t16 === 0xd9 && n < 256) w.u8u8(0xd9, n)
  else if (t16 === 0xc4 && n < 256) w.u8u8(0xc4, n)
  else if (n < 65536) w.u16(t16 === 0xd9 ? 0xda : t16 === 0xc4 ? 0xc5 : t16, n)
  else w.u32(t32, n)
}

function enc (w, v, depth) {
  if (depth > MAX_DEPTH) throw fail(`msgpack encode: nesting deeper than ${MAX_DEPTH}`)
  if (v === null || v === undefined) return w.u8(0xc0)
  switch (typeof v) {
    case 'boolean': return w.u8(v ? 0xc3 : 0xc2)
    case 'number':
      if (Number.isSafeInteger(v)) return encInt(w, v)
      w.room(9); w.buf[w.n] = 0xcb; w.buf.writeDoubleBE(v, w.n + 1); w.n += 9
      return
    case 'bigint':
      if (v >= 0n && v < 18446744073709551616n) { w.room(9); w.buf[w.n] = 0xcf; w.buf.writeBigUInt64BE(v, w.n + 1); w.n += 9; return }
      if (v < 0n && v >= -9223372036854775808n) { w.room(9); w.buf[w.n] = 0xd3; w.buf.writeBigInt64BE(v, w.n + 1); w.n += 9; return }
      throw fail('msgpack encode: bigint out of 64-bit range')
    case 'string': {
      const b = Buffer.from(v, 'utf8')
      encLen(w, b.length, 0xa0, 31, 0xd9, 0xdb)
      return w.bytes(b)
    }
  }
  if (v instanceof Uint8Array) {
    encLen(w, v.length, null, 0, 0xc4, 0xc6)
    return w.bytes(v)
  }
  if (Array.isArray(v)) {
    encLen(w, v.length, 0x90, 15, 0xdc, 0xdd)
    for (const x of v) enc(w, x, depth + 1)
    return
  }
  if (v instanceof Map) {
    encLen(w, v.size, 0x80, 15, 0xde, 0xdf)
    for (const [k, x] of v) { enc(w, k, depth + 1); enc(w, x, depth + 1) }
    return
  }
  if (typeof v === 'object' && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined)
    encLen(w, keys.length, 0x80, 15, 0xde, 0xdf)
    for (const k of keys) { enc(w, k, depth + 1); enc(w, v[k], depth + 1) }
    return
  }
  throw fail(`msgpack encode: unsupported value of type ${v && v.constructor ? v.constructor.name : typeof v}`)
}

/** Encodes a value as msgpack into a Buffer. */
function pack (value) {
  const w = new Writer()
  enc(w, value, 0)
  return w.buf.subarray(0, w.n)
}

class Reader {
  constructor (b) {
    this.b = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength)
    this.i = 0
  }

  need (k) {
    if (this.i + k > this.b.length) throw fail(`msgpack decode: truncated (needs ${k} more bytes at offset ${this.i})`)
    const at = this.i
    this.i += k
    return at
  }
}

function decStr (r, n) { const at = r.need(n); return r.b.toString('utf8', at, at + n) }
function decBin (r, n) { const at = r.need(n); return Buffer.from(r.b.subarray(at, at + n)) }
function decArr (r, n, depth) {
  // Each element takes at least one byte: a length beyond the input is a lie.
  if (n > r.b.length - r.i) throw fail('msgpack decode: array length exceeds input')
  const a = new Array(n)
  for (let k = 0; k < n; k++) a[k] = dec(r, depth + 1)
  return a
}
function decMap (r, n, depth) {
  if (n * 2 > r.b.length - r.i) throw fail('msgpack decode: map length exceeds input')
  const o = {}
  for (let k = 0; k < n; k++) {
    const key = dec(r, depth + 1)
    const v = dec(r, depth + 1)
    if (typeof key === 'string' || typeof key === 'number' || typeof key === 'bigint' || typeof key === 'boolean') {
      Object.defineProperty(o, String(key), { value: v, enumerable: true, writable: true, configurable: true })
    } else {
      throw fail('msgpack decode: map keys must be strings, numbers or booleans')
    }
  }
  return o
}
function big (v, signed) {
  if (signed ? (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) : v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v)
  return v
}

function dec (r, depth) {
  if (depth > MAX_DEPTH) throw fail(`msgpack decode: nesting deeper than ${MAX_DEPTH}`)
  const b = r.b
  const t = b[r.need(1)]
  if (t < 0x80) return t
  if (t >= 0xe0) return t - 256
  if (t >= 0xa0 && t <= 0xbf) return decStr(r, t & 0x1f)
  if (t >= 0x90 && t <= 0x9f) return decArr(r, t & 0x0f, depth)
  if (t >= 0x80 && t <= 0x8f) return decMap(r, t & 0x0f, depth)
  let at
  switch (t) {
    case 0xc0: return null
    case 0xc2: return false
    case 0xc3: return true
    case 0xc4: at = r.need(1); return decBin(r, b[at])
    case 0xc5: at = r.need(2); return decBin(r, b.readUInt16BE(at))
    case 0xc6: at = r.need(4); return decBin(r, b.readUInt32BE(at))
    case 0xca: at = r.need(4); return b.readFloatBE(at)
    case 0xcb: at = r.need(8); return b.readDoubleBE(at)
    case 0xcc: at = r.need(1); return b[at]
    case 0xcd: at = r.need(2); return b.readUInt16BE(at)
    case 0xce: at = r.need(4); return b.readUInt32BE(at)
    case 0xcf: at = r.need(8); return big(b.readBigUInt64BE(at), false)
    case 0xd0: at = r.need(1); return b.readInt8(at)
    case 0xd1: at = r.need(2); return b.readInt16BE(at)
    case 0xd2: at = r.need(4); return b.readInt32BE(at)
    case 0xd3: at = r.need(8); return big(b.readBigInt64BE(at), true)
    case 0xd9: at = r.need(1); return decStr(r, b[at])
    case 0xda: at = r.need(2); return decStr(r, b.readUInt16BE(at))
    case 0xdb: at = r.need(4); return decStr(r, b.readUInt32BE(at))
    case 0xdc: at = r.need(2); return decArr(r, b.readUInt16BE(at), depth)
    case 0xdd: at = r.need(4); return decArr(r, b.readUInt32BE(at), depth)
    case 0xde: at = r.need(2); return decMap(r, b.readUInt16BE(at), depth)
    case 0xdf: at = r.need(4); return decMap(r, b.readUInt32BE(at), depth)
  }
  throw fail(`msgpack decode: unsupported type byte 0x${t.toString(16)} (extension types are not used by netchan)`)
}

/** Decodes one msgpack value; the whole input must be that value. */
function unpack (bytes) {
  const r = new Reader(bytes)
  const v = dec(r, 0)
  if (r.i !== r.b.length) throw fail(`msgpack decode: ${r.b.length - r.i} trailing bytes`)
  return v
}

module.exports = { pack, unpack }
