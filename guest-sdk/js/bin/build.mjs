#!/usr/bin/env node
// Builds a Veneer plugin written in JavaScript or TypeScript into a WebAssembly
// component (a library: `bin/veneer-js.mjs` is the command):
//
// 1. rolldown bundles ENTRY (a .js or .ts module exporting `hooks`) and what it
//    imports, `veneer-sdk` included, into one ES module; TypeScript is
//    type-checked first with tsc when the project has a tsconfig.json.
//    `veneer:plugin/*` imports stay imports, pinned to the WIT version this
//    package targets.
// 2. componentize-js wraps the module with the StarlingMonkey engine into a
//    component of the world `veneer:plugin/plugin` with every optional WASI
//    feature off (no stdio, random, clocks, http): the component imports only
//    the Veneer interfaces.
//
// The WIT version is one setting, `veneer.wit` in this package's package.json.
// Needs this package's node_modules, which `bin/veneer-js.mjs` installs.

import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { componentize } from "@bytecodealliance/componentize-js";
import { rolldown } from "rolldown";

const here = dirname(fileURLToPath(import.meta.url));
const sdkRoot = resolve(here, "..");
const sdkPackage = JSON.parse(readFileSync(join(sdkRoot, "package.json"), "utf8"));
/** The WIT version the plugins built here target (package.json `veneer.wit`). */
export const WIT_VERSION = sdkPackage.veneer.wit;
/** The WIT package folder of that version, in this repository. */
export const WIT_DIR = resolve(sdkRoot, "../../wit", `v${WIT_VERSION}`);
/** Optional engine features that would import WASI beyond what the host allows. */
const DISABLED_FEATURES = ["stdio", "random", "clocks", "http", "fetch-event"];

/** Bundles `entry` into one ES module and returns its text. */
async function bundle(entry) {
  const build = await rolldown({
    input: entry,
    logLevel: "warn",
    resolve: { alias: { "veneer-sdk": join(sdkRoot, "src/index.js") } },
    plugins: [
      {
        name: "veneer-wit",
        resolveId(source) {
          const match = /^veneer:plugin\/([a-z-]+)(@.*)?$/.exec(source);
          if (!match) return null;
          return { id: `veneer:plugin/${match[1]}@${WIT_VERSION}`, external: true };
        },
      },
    ],
  });
  try {
    const { output } = await build.generate({ format: "esm" });
    const chunks = output.filter((item) => item.type === "chunk");
    if (chunks.length !== 1) {
      throw new Error(`bundling ${entry} gave ${chunks.length} chunks; dynamic import() is not supported`);
    }
    return chunks[0].code;
  } finally {
    await build.close();
  }
}

/**
 * Type-checks a TypeScript entry with the project's tsconfig.json (the nearest
 * one above the entry), if it has one; throws with tsc's report on errors.
 */
function typecheck(entry) {
  if (!/\.[cm]?ts$/.test(entry)) return;
  for (let dir = dirname(entry); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, "tsconfig.json"))) {
      const tsc = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin/tsc");
      try {
        execFileSync(process.execPath, [tsc, "-p", dir], { stdio: "pipe", encoding: "utf8" });
      } catch (err) {
        throw new Error(`type errors:\n${err.stdout || err.stderr || err.message}`);
      }
      return;
    }
    if (existsSync(join(dir, "package.json"))) return;
  }
}

/** Builds `entry` into the component at `out`; returns its size and imports. */
export async function build(entry, out) {
  typecheck(resolve(entry));
  const source = await bundle(resolve(entry));
  const work = mkdtempSync(join(tmpdir(), "veneer-js-"));
  try {
    const sourcePath = join(work, "plugin.js");
    writeFileSync(sourcePath, source);
    const { component, imports } = await componentize({
      sourcePath,
      witPath: WIT_DIR,
      worldName: "plugin",
      disableFeatures: DISABLED_FEATURES,
    });
    mkdirSync(dirname(resolve(out)), { recursive: true });
    writeFileSync(out, component);
    return { bytes: component.length, imports: [...new Set(imports.map(([iface]) => iface))] };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
