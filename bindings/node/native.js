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
  // musl's ldd is the C library itself and says so; glibc's is a script
  // that does not name musl. Reading it is cheap; the process report (a
  // fallback where /usr/bin/ldd cannot be read) takes milliseconds.
  try {
    return fs.readFileSync('/usr/bin/ldd', 'latin1').includes('musl')
  } catch {}
  try {
    const report = process.report && process.report.getReport()
    return !(report && report.header && report.header.glibcVersionRuntime)
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
  // An addon of the user's own comes first, whatever the platform.
  const own = process.env.NETCHAN_NATIVE_PATH
  if (own) {
    try {
      return require(own)
    } catch (cause) {
      const e = new Error(`NETCHAN_NATIVE_PATH=${own} could not be loaded as netchan's native addon: ${cause.message}`, { cause })
      e.code = 'ADDON_NOT_LOADED'
      throw e
    }
  }
  const platform = platformName()
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

// The addon's own exports stay as the addon made them.
module.exports = { addon: load(), ADDONS, platformName }
