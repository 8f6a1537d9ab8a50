#!/usr/bin/env node
// Compose Apollo Federation v2 subgraph SDLs into a supergraph SDL.
//
//   node compose.mjs [--out FILE] [--check] NAME=PATH[@URL] [NAME=PATH[@URL] ...]
//
// PATH "-" reads that subgraph's SDL from stdin. URL defaults to
// http://127.0.0.1:4000/NAME. With --check, nothing is written: the result is
// compared with the existing --out file and exit code 1 means it differs.
// Exit codes: 0 ok; 1 invalid SDL, composition failed or out of date; 2 bad usage or unreadable file.
import { readFileSync, writeFileSync } from "node:fs";
import { parse } from "graphql";
import { composeServices } from "@theguild/federation-composition";

const USAGE =
  "usage: node compose.mjs [--out FILE] [--check] NAME=PATH[@URL] [NAME=PATH[@URL] ...]\n" +
  "  PATH '-' reads SDL from stdin; URL defaults to http://127.0.0.1:4000/NAME";

function die(msg, code = 2) {
  process.stderr.write(`compose: ${msg}\n`);
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { out: null, check: false, subgraphs: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "-h" || arg === "--help") {
      process.stdout.write(USAGE + "\n");
      process.exit(0);
    } else if (arg === "--check") {
      opts.check = true;
    } else if (arg === "--out" || arg === "-o") {
      if (i + 1 >= argv.length) die(`${arg} needs a file argument\n${USAGE}`);
      opts.out = argv[++i];
    } else if (arg.startsWith("--out=")) {
      opts.out = arg.slice("--out=".length);
    } else if (arg.startsWith("-") && arg !== "-") {
      die(`unknown option ${arg}\n${USAGE}`);
    } else {
      opts.subgraphs.push(parseSpec(arg));
    }
  }
  if (opts.subgraphs.length === 0) die(`no subgraphs given\n${USAGE}`);
  if (opts.check && !opts.out) die("--check needs --out FILE to compare against");
  const names = new Set();
  for (const { name } of opts.subgraphs) {
    if (names.has(name)) die(`subgraph name '${name}' given twice`);
    names.add(name);
  }
  if (opts.subgraphs.filter((s) => s.path === "-").length > 1) {
    die("only one subgraph can be read from stdin");
  }
  return opts;
}

// NAME=PATH[@URL]; the URL part is recognised by its scheme (e.g. @http://...),
// so paths that happen to contain '@' still work.
function parseSpec(spec) {
  const eq = spec.indexOf("=");
  if (eq <= 0 || eq === spec.length - 1) die(`bad subgraph '${spec}', expected NAME=PATH[@URL]`);
  const name = spec.slice(0, eq);
  if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) die(`bad subgraph name '${name}'`);
  let path = spec.slice(eq + 1);
  let url = `http://127.0.0.1:4000/${name}`;
  const m = /^(.*?)@([A-Za-z][A-Za-z0-9+.-]*:\/\/.+)$/.exec(path);
  if (m) [, path, url] = m;
  if (!path) die(`bad subgraph '${spec}', empty path`);
  return { name, path, url };
}

function loadSubgraph({ name, path, url }) {
  let sdl;
  try {
    sdl = readFileSync(path === "-" ? 0 : path, "utf8");
  } catch (err) {
    die(`subgraph '${name}': cannot read ${path === "-" ? "stdin" : path}: ${err.message}`);
  }
  try {
    return { name, url, typeDefs: parse(sdl) };
  } catch (err) {
    const loc = err.locations?.[0];
    const where = loc ? `:${loc.line}:${loc.column}` : "";
    die(`subgraph '${name}' (${path === "-" ? "stdin" : path}${where}) is not valid SDL: ${err.message}`, 1);
  }
}

function formatError(err) {
  const code = err.extensions?.code;
  return `  - ${code ? `[${code}] ` : ""}${err.message}`;
}

const opts = parseArgs(process.argv.slice(2));
const services = opts.subgraphs.map(loadSubgraph);

let result;
try {
  result = composeServices(services);
} catch (err) {
  // e.g. "Unsupported federation version: v2.11" is thrown, not returned.
  die(`composition crashed: ${err.message}`, 1);
}

if (result.errors?.length) {
  process.stderr.write(`compose: composition failed with ${result.errors.length} error(s):\n`);
  for (const err of result.errors) process.stderr.write(formatError(err) + "\n");
  process.exit(1);
}
// Note: @theguild/federation-composition does not expose composition hints.

const supergraph = result.supergraphSdl.endsWith("\n")
  ? result.supergraphSdl
  : result.supergraphSdl + "\n";

if (!opts.out) {
  process.stdout.write(supergraph);
  process.exit(0);
}

let existing = null;
try {
  existing = readFileSync(opts.out, "utf8");
} catch {
  existing = null;
}

if (opts.check) {
  if (existing !== supergraph) {
    process.stderr.write(`${opts.out} is out of date; run make supergraph\n`);
    process.exit(1);
  }
  process.exit(0);
}

// Only rewrite when the content changes, so make's timestamps stay meaningful.
if (existing !== supergraph) writeFileSync(opts.out, supergraph);
process.stderr.write(`compose: wrote ${opts.out} (${services.map((s) => s.name).join(", ")})\n`);
