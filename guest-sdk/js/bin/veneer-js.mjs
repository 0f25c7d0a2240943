#!/usr/bin/env node
// The one entry point the host's tools run (the fixture build in
// plugins/artifacts, `veneer plugin build`):
//
//   node bin/veneer-js.mjs ENTRY OUT.wasm
//
// Installs this package's toolchain with `npm ci` when node_modules is missing
// or older than package-lock.json (so nothing needs installing by hand), then
// builds ENTRY with bin/build.mjs. Imports nothing from node_modules itself.
// Concurrent runs (two cargo builds at once) take turns through a lock
// directory, so only one of them installs.

import { spawnSync } from "node:child_process";
import { mkdirSync, rmSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const sdkRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const LOCK_STALE_MS = 10 * 60 * 1000;

const mtime = (path) => {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
};

/** Whether node_modules is missing or older than the lockfile. */
function needsInstall() {
  const installed = mtime(join(sdkRoot, "node_modules/.package-lock.json"));
  return installed === undefined || installed < mtime(join(sdkRoot, "package-lock.json"));
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Runs `npm ci` in this package unless node_modules is current. */
export function ensureInstalled() {
  if (!needsInstall()) return;
  const lock = join(sdkRoot, ".npm-ci.lock");
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch (err) {
      if (err.code !== "EEXIST") throw err;
      if (Date.now() - (mtime(lock) ?? Date.now()) > LOCK_STALE_MS) rmSync(lock, { recursive: true, force: true });
      sleep(250);
    }
  }
  try {
    if (!needsInstall()) return;
    const npm = process.platform === "win32" ? "npm.cmd" : "npm";
    const run = spawnSync(npm, ["ci", "--no-audit", "--no-fund", "--loglevel=error"], {
      cwd: sdkRoot,
      stdio: ["ignore", "inherit", "inherit"],
    });
    if (run.error || run.status !== 0) {
      throw new Error(
        `\`npm ci\` in ${sdkRoot} failed (${run.error?.message ?? `exit ${run.status}`}); it needs npm and the npm registry (or its cache)`,
      );
    }
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

const major = Number(process.versions.node.split(".")[0]);
if (major < 20) {
  console.error(`JavaScript plugins need Node.js 20 or later; this is ${process.version}`);
  process.exit(1);
}

const [entry, out] = process.argv.slice(2);
if (!entry || !out) {
  console.error("usage: node veneer-js.mjs ENTRY.{js,ts} OUT.wasm");
  process.exit(2);
}
try {
  ensureInstalled();
  const { build, WIT_VERSION } = await import(pathToFileURL(join(sdkRoot, "bin/build.mjs")).href);
  const { bytes, imports } = await build(entry, out);
  console.log(`built ${out}: ${bytes} bytes, WIT ${WIT_VERSION}, imports ${imports.join(", ")}`);
} catch (err) {
  console.error(`building ${entry} failed: ${err?.message ?? err}`);
  process.exit(1);
}
