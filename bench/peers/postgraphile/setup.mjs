// Applies schema.sql (idempotent, one transaction) to DATABASE_URL.
// Usage: node setup.mjs            (also: node server.mjs --setup)
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import pg from "pg";
import { databaseUrl } from "./config.mjs";

export async function setup(connectionString = databaseUrl()) {
  const sql = await readFile(new URL("./schema.sql", import.meta.url), "utf8");
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    await client.query("begin");
    // Serialise concurrent setups (CREATE OR REPLACE races otherwise).
    await client.query("select pg_advisory_xact_lock(hashtext('bench_peer setup'))");
    await client.query(sql);
    await client.query("commit");
  } catch (error) {
    await client.query("rollback").catch(() => {});
    throw error;
  } finally {
    await client.end();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  await setup();
  console.log("bench_peer schema is up to date");
}
