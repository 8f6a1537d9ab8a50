// Writes request.json (the POST body for the load generator) from query.graphql.
// Usage: node request.mjs [--community 2] [--month 2026-10-01] [--stdout]
// $c is PostGraphile's node ID of the community: base64 of the JSON ["Community", <id>].
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    community: { type: "string", default: "2" },
    month: { type: "string", default: "2026-10-01" },
    stdout: { type: "boolean", default: false },
  },
});
const communityId = Number.parseInt(args.community, 10);
const body = {
  query: readFileSync(new URL("./query.graphql", import.meta.url), "utf8"),
  variables: {
    c: Buffer.from(JSON.stringify(["Community", communityId])).toString("base64"),
    month: args.month,
  },
};
const text = `${JSON.stringify(body, null, 1)}\n`;
if (args.stdout) process.stdout.write(text);
else writeFileSync(new URL("./request.json", import.meta.url), text);
