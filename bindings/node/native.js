'use strict'
// Loads netchan's native addon (the Rust core, built by napi-rs) for this
// platform, or fails with an error that names the platform and what exists.
//
// Where the addon comes from, first found wins:
//  1. NETCHAN_NATIVE_PATH, a path to a `.node` file (a build of your own);
//  2. `netchan.<platform>.node` beside this file (a build from source:
//     `npm run build`);
//  3. the optional package `netchan-<platform>` that npm installed with
//     this one (a published install: npm picks the package whose `os`,
//     `cpu` and `libc` fields match the machine).
// Hand-written rather than napi's generated loader: that one looks for an
// MSVC build on Windows, and netchan's Windows addon is built with MinGW.

const fs = require('node:fs')

// Platform -> the file `napi build --platform` writes; the package
// `netchan-<platform>` carries it. Kept equal to package.json's
// optionalDependencies and npm/ (test/package.test.js checks both).
const ADDONS = {
  'linux-x64-gnu': 'netchan.linux-x64-gnu.node',
  'linux-arm64-gnu': 'netchan.linux-arm64-gnu.node',
  'win32-x64': 'netchan.win32-x64-gnu.node'
}

function isMusl () {
  // glibc reports its version in the process report; musl does not.
  try {
    const report = process.report && process.report.getReport()
    if (report && report.header && report.header.glibcVersionRuntime) return false
  } catch {}
  try {
    return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    return false
  }
}

/** This machine's platform name, as the packages are named. */
function platformName () {
  if (process.platform === 'linux') return `linux-${process.arch}-${isMusl() ? 'musl' : 'gnu'}`
  return `${process.platform}-${process.arch}`
}

function load () {
  const platform = platformName()
  if (process.env.NETCHAN_NATIVE_PATH) {
    return require(process.env.NETCHAN_NATIVE_PATH)
  }
  const file = ADDONS[platform]
  if (file === undefined) {
    const e = new Error(`netchan has no native addon for this platform (${platform}, Node ${process.version}); ` +
      `prebuilt addons exist for ${Object.keys(ADDONS).join(', ')}. ` +
      'Build one from source (bindings/node/README.md, "Building from source") and set NETCHAN_NATIVE_PATH to it.')
    e.code = 'UNSUPPORTED_PLATFORM'
    throw e
  }
  const local = `${__dirname}/${file}`
  if (fs.existsSync(local)) return require(local)
  try {
    return require(`netchan-${platform}`)
  } catch (cause) {
    if (cause.code !== 'MODULE_NOT_FOUND' || !String(cause.message).includes(`netchan-${platform}`)) throw cause
    const e = new Error(`netchan's native addon for ${platform} is not installed: the package netchan-${platform} ` +
      'is missing (npm skips optional dependencies with --no-optional or --omit=optional, and when a lockfile ' +
      'was made on another platform). Reinstall netchan on this machine without those options.', { cause })
    e.code = 'ADDON_NOT_INSTALLED'
    throw e
  }
}

module.exports = load()
module.exports.ADDONS = ADDONS
module.exports.platformName = platformName
