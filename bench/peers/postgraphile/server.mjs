// B3-peer: PostGraphile v5 (amber preset, default settings) serving carbongraph's database.
// Usage: node server.mjs [--port 5678] [--setup]
//   DATABASE_URL  default postgres://postgres@127.0.0.1:5432/cg_bench
//   --setup       apply schema.sql first (same as `node setup.mjs`)
import "./node20-compat.mjs"; // first: see the file
import { createServer } from "node:http";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { postgraphile } from "postgraphile";
import { PostGraphileAmberPreset } from "postgraphile/presets/amber";
import { makePgService } from "postgraphile/adaptors/pg";
import { grafserv } from "postgraphile/grafserv/node";
import { makePgSmartTagsFromFilePlugin } from "postgraphile/utils";
import { DEFAULT_PORT, databaseUrl } from "./config.mjs";
import { setup } from "./setup.mjs";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: String(DEFAULT_PORT) },
    host: { type: "string", default: "127.0.0.1" },
    setup: { type: "boolean", default: false },
  },
});
const port = Number.parseInt(args.port, 10);
const connectionString = databaseUrl();

if (args.setup) {
  await setup(connectionString);
}

/** @type {GraphileConfig.Preset} */
const preset = {
  extends: [PostGraphileAmberPreset],
  plugins: [
    makePgSmartTagsFromFilePlugin(fileURLToPath(new URL("./postgraphile.tags.json5", import.meta.url))),
  ],
  pgServices: [
    // carbongraph's tables are in `public`; the peer's computed columns in `bench_peer`.
    makePgService({ connectionString, schemas: ["public", "bench_peer"] }),
  ],
  grafserv: {
    graphqlPath: "/graphql",
    graphiql: false, // production-ish: no GraphiQL (Ruru), no watch mode
    watch: false,
  },
  grafast: {
    explain: false,
  },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.once("listening", () => {
  console.log(`PostGraphile v5 at http://${args.host}:${port}/graphql (NODE_ENV=${process.env.NODE_ENV ?? ""})`);
});
await serv.addTo(server);
server.listen(port, args.host);

const shutdown = async () => {
  server.close();
  server.closeAllConnections();
  await pgl.release();
  process.exit(0);
};
process.once("SIGINT", shutdown);
process.once("SIGTERM", shutdown);
