#!/usr/bin/env node
// Cut a contract supergraph: every schema element tagged with one of the excluded tags becomes
// @inaccessible, so the gateway's public API leaves it out while query planning still works.
//
//   node contract.mjs --exclude personal [--exclude other] < supergraph.graphql > contract.graphql
//
// This is how Apollo contracts work (tags → @inaccessible); Hive's registry does the same.
import { readFileSync } from 'node:fs';
import { Kind, parse, print, visit } from 'graphql';

const args = process.argv.slice(2);
const excluded = new Set();
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--exclude' && args[i + 1]) excluded.add(args[++i]);
  else {
    console.error('usage: node contract.mjs --exclude TAG [--exclude TAG ...] < supergraph');
    process.exit(2);
  }
}
if (excluded.size === 0) {
  console.error('contract: give at least one --exclude TAG');
  process.exit(2);
}

const document = parse(readFileSync(0, 'utf8'));
if (!print(document).includes('https://specs.apollo.dev/inaccessible/')) {
  console.error('contract: the supergraph does not link the inaccessible spec');
  process.exit(1);
}
let hidden = 0;
const tagged = (node) =>
  (node.directives ?? []).some(
    (d) =>
      d.name.value === 'tag' &&
      d.arguments?.some((a) => a.name.value === 'name' && excluded.has(a.value.value)),
  );
const hide = (node) => {
  if (!tagged(node) || node.directives.some((d) => d.name.value === 'inaccessible')) return;
  hidden += 1;
  return {
    ...node,
    directives: [...node.directives, { kind: Kind.DIRECTIVE, name: { kind: Kind.NAME, value: 'inaccessible' }, arguments: [] }],
  };
};
const contract = visit(document, {
  FieldDefinition: hide,
  ObjectTypeDefinition: hide,
  InputValueDefinition: hide,
  EnumValueDefinition: hide,
});
process.stdout.write(print(contract) + '\n');
console.error(`contract: ${hidden} element(s) tagged ${[...excluded].join(', ')} made @inaccessible`);
