// Shared settings of the B3-peer PostGraphile server and its setup step.
export const DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/cg_bench";
export const DEFAULT_PORT = 5678;

export const databaseUrl = () => process.env.DATABASE_URL || DEFAULT_DATABASE_URL;
