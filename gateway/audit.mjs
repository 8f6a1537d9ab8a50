// GraphQL-over-HTTP compliance audit of a GraphQL endpoint, with graphql-http's auditServer.
//
//   node gateway/audit.mjs --url http://127.0.0.1:8000/graphql --token "$TOKEN"
//   AUDIT_URL=... AUDIT_TOKEN=... node gateway/audit.mjs
//
// Every audit request carries `Authorization: Bearer <token>` (carbongraph answers 401 without
// one). Prints a JSON summary on stdout:
//   {"total":N,"ok":N,"warn":N,"error":N,"notice":N,"failures":[{id,name,status,reason}]}
// and exits 1 unless every audit is "ok" (2 on a usage error or when the audit itself crashes).
import { parseArgs } from 'node:util';
import { auditServer } from 'graphql-http';

function usage(message) {
  process.stderr.write(
    `${message}\nusage: node audit.mjs --url URL --token TOKEN (or AUDIT_URL / AUDIT_TOKEN)\n`,
  );
  process.exit(2);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
    },
    strict: true,
  }));
} catch (err) {
  usage(err.message);
}

const url = values.url ?? process.env.AUDIT_URL;
const token = values.token ?? process.env.AUDIT_TOKEN;
if (!url) usage('missing --url (or AUDIT_URL)');
if (!token) usage('missing --token (or AUDIT_TOKEN)');

/** global fetch, plus the bearer token on every request (without touching the audit's headers). */
function fetchFn(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

let results;
try {
  results = await auditServer({ url, fetchFn });
} catch (err) {
  process.stderr.write(`audit crashed: ${err?.stack ?? err}\n`);
  process.exit(2);
}

const count = (status) => results.filter((r) => r.status === status).length;
const failures = [];
for (const r of results) {
  if (r.status === 'ok') continue;
  let body;
  try {
    body = await r.response.text();
  } catch {
    body = undefined;
  }
  failures.push({
    id: r.id,
    name: r.name,
    status: r.status,
    reason: r.reason,
    response: {
      status: r.response?.status,
      contentType: r.response?.headers?.get('content-type') ?? null,
      body: body === undefined ? undefined : body.slice(0, 300),
    },
  });
}

const summary = {
  total: results.length,
  ok: count('ok'),
  warn: count('warn'),
  error: count('error'),
  notice: count('notice'),
  failures,
};
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
process.exit(summary.ok === summary.total ? 0 : 1);
