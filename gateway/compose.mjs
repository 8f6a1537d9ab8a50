#!/usr/bin/env node
// Compose subgraph SDLs into a supergraph with @theguild/federation-composition.
//
//   node compose.mjs [--out FILE] [--check] name=path.graphql[@url] ...
//
// `path` may be `-` for standard input. Without --out the supergraph goes to standard output.
// --check composes and compares with --out instead of writing it (exit 1 when it differs).
// Composition errors are printed with the composer's own messages and exit 1.
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { parse } from "graphql";
import { composeServices } from "@theguild/federation-composition";

function usage(message) {
  if (message) console.error(`compose: ${message}`);
  console.error("usage: node compose.mjs [--out FILE] [--check] name=path.graphql[@url] ...");
  process.exit(2);
}

const args = process.argv.slice(2);
let out = null;
let check = false;
const specs = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--out") out = args[++i] ?? usage("--out needs a file");
  else if (args[i] === "--check") check = true;
  else if (args[i].includes("=")) specs.push(args[i]);
  else usage(`unexpected argument ${args[i]}`);
}
if (specs.length === 0) usage("no subgraphs given");
if (check && !out) usage("--check needs --out");

const services = specs.map((spec) => {
  const [name, rest] = [spec.slice(0, spec.indexOf("=")), spec.slice(spec.indexOf("=") + 1)];
  const at = rest.lastIndexOf("@");
  const path = at > 0 ? rest.slice(0, at) : rest;
  const url = at > 0 ? rest.slice(at + 1) : `http://127.0.0.1:4000/${name}`;
  const sdl = readFileSync(path === "-" ? 0 : path, "utf8");
  let typeDefs;
  try {
    typeDefs = parse(sdl);
  } catch (error) {
    console.error(`compose: subgraph ${name} (${path}) is not valid SDL: ${error.message}`);
    process.exit(1);
  }
  return { name, url, typeDefs };
});

const result = composeServices(services);
for (const hint of result.hints ?? []) console.error(`hint: ${hint.message ?? hint}`);
if (result.errors && result.errors.length > 0) {
  console.error(`compose: ${result.errors.length} composition error(s):`);
  for (const error of result.errors) {
    const code = error.extensions?.code ? `[${error.extensions.code}] ` : "";
    console.error(`  ${code}${error.message}`);
  }
  process.exit(1);
}

const supergraph = result.supergraphSdl.endsWith("\n") ? result.supergraphSdl : `${result.supergraphSdl}\n`;
if (check) {
  const current = existsSync(out) ? readFileSync(out, "utf8") : "";
  if (current !== supergraph) {
    console.error(`compose: ${out} is out of date; run \`make supergraph\``);
    process.exit(1);
  }
  console.error(`compose: ${out} is up to date`);
} else if (out) {
  writeFileSync(out, supergraph);
  console.error(`compose: wrote ${out} (${services.map((s) => s.name).join(", ")})`);
} else {
  process.stdout.write(supergraph);
}
