// Hive Gateway in front of carbongraph and partner subgraphs.
//
// Environment (the same keys as the subgraph, so both layers check the same tokens):
//   CARBONGRAPH_ENV                  development (default) | production
//   CARBONGRAPH_JWT_SECRET           HS256 secret (development falls back to the dev secret)
//   CARBONGRAPH_JWT_PUBLIC_KEY_FILE  RS256 public key (PEM) instead of a secret
//   CARBONGRAPH_JWT_ISSUER / _AUDIENCE   default "carbongraph"
//   GATEWAY_MAX_COST                 demand-control budget per operation (default 5000)
//   GATEWAY_PERSISTED_DOCUMENTS      JSON file {"<id>": "<document>"}: only these may run
//   SUPERGRAPH                       supergraph file (default ./supergraph.graphql)
import { readFileSync } from 'node:fs';
import {
  createInlineSigningKeyProvider,
  defineConfig,
  extractFromHeader,
} from '@graphql-hive/gateway';

// Must equal carbongraph.config.DEV_JWT_SECRET; never used in production.
const DEV_JWT_SECRET = 'carbongraph-development-secret-do-not-use-in-production';
const env = process.env.CARBONGRAPH_ENV ?? 'development';
const production = env === 'production';

function signingKey() {
  if (process.env.CARBONGRAPH_JWT_PUBLIC_KEY_FILE) {
    return { key: readFileSync(process.env.CARBONGRAPH_JWT_PUBLIC_KEY_FILE, 'utf8'), alg: 'RS256' };
  }
  if (process.env.CARBONGRAPH_JWT_SECRET) {
    return { key: process.env.CARBONGRAPH_JWT_SECRET, alg: 'HS256' };
  }
  if (production) {
    throw new Error('production needs CARBONGRAPH_JWT_PUBLIC_KEY_FILE or CARBONGRAPH_JWT_SECRET');
  }
  return { key: DEV_JWT_SECRET, alg: 'HS256' };
}

function persistedDocuments() {
  const file = process.env.GATEWAY_PERSISTED_DOCUMENTS;
  if (!file) return undefined;
  const store = JSON.parse(readFileSync(file, 'utf8'));
  return {
    getPersistedOperation: (id) => store[id] ?? null,
    // Safelist mode: a document that is not in the store is refused.
    allowArbitraryDocuments: false,
  };
}

// A token that is not even a JWT is refused like any other invalid one: 401, not 400.
const bearer = extractFromHeader({ name: 'authorization', prefix: 'Bearer' });
async function bearerJwt(params) {
  let found;
  try {
    found = await bearer(params);
  } catch {
    return undefined; // a malformed Authorization header counts as no token
  }
  if (!found) return undefined;
  const [header, payload, signature] = found.token.split('.');
  try {
    JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
    JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return undefined;
  }
  return signature ? found : undefined;
}

// WebSocket clients (graphql-ws) put `{"authorization": "Bearer <jwt>"}` in connection_init
// (lower case: that key is what reaches the subgraph, see transportEntries).
function connectionParamsJwt({ serverContext }) {
  const value = serverContext?.connectionParams?.authorization;
  if (typeof value !== 'string') return undefined;
  const [scheme, token] = value.split(' ');
  return scheme === 'Bearer' && token && token.split('.').length === 3
    ? { prefix: 'Bearer', token }
    : undefined;
}

// A subgraph refuses a subscription with a graphql-transport-ws `error` message; the WebSocket
// executor throws its errors as a bare array, which would reach the client with no message or
// code. Deliver them as a result instead (then the subscription ends), codes intact.
function subscriptionRefusals() {
  return {
    onSubgraphExecute({ executor, setExecutor }) {
      setExecutor((request) => {
        const result = executor(request);
        if (!result || typeof result[Symbol.asyncIterator] !== 'function') return result;
        return (async function* refusalsAsResults() {
          try {
            yield* result;
          } catch (errors) {
            if (!Array.isArray(errors)) throw errors;
            yield { data: null, errors };
          }
        })();
      });
    },
  };
}

const { key, alg } = signingKey();

export const gatewayConfig = defineConfig({
  supergraph: process.env.SUPERGRAPH ?? './supergraph.graphql',
  graphiql: !production,
  maskedErrors: production,
  // Verify the bearer token here too: invalid or missing tokens never reach a subgraph.
  jwt: {
    tokenLookupLocations: [bearerJwt, connectionParamsJwt],
    signingKeyProviders: [createInlineSigningKeyProvider(key)],
    tokenVerification: {
      algorithms: [alg],
      issuer: process.env.CARBONGRAPH_JWT_ISSUER ?? 'carbongraph',
      audience: process.env.CARBONGRAPH_JWT_AUDIENCE ?? 'carbongraph',
    },
    reject: { missingToken: true, invalidToken: true },
  },
  // Enforce @authenticated and @requiresScopes from the supergraph; scopes are the token's
  // space-separated `scope` claim (carbongraph's tokens list the holder's roles there).
  genericAuth: {
    mode: 'protect-granular',
    resolveUserFn: (context) => context.jwt?.payload,
    extractScopes: (user) => String(user?.scope ?? '').split(' ').filter(Boolean),
    rejectUnauthenticated: true,
  },
  // Subscriptions go to carbongraph over WebSocket (graphql-transport-ws at /graphql), whatever
  // the client used (SSE or graphql-ws). The caller's token travels in connection_init, where
  // carbongraph authenticates it; one upstream socket per distinct token (docs/live-updates.md).
  transportEntries: {
    carbongraph: {
      options: {
        subscriptions: {
          kind: 'ws',
          location: '/graphql',
          options: {
            connectionParams: { authorization: '{context.headers.authorization}' },
          },
        },
      },
    },
  },
  // Subgraphs enforce authorization themselves: they need the caller's token.
  propagateHeaders: {
    fromClientToSubgraphs: ({ request }) => {
      const headers = { authorization: request.headers.get('authorization') ?? '' };
      // The caller's W3C trace context and request id: the subgraphs' spans and log lines join
      // the caller's trace (docs/operations.md).
      for (const name of ['traceparent', 'tracestate', 'x-request-id']) {
        const value = request.headers.get(name);
        if (value) headers[name] = value;
      }
      return headers;
    },
  },
  // IBM cost spec from @cost / @listSize in the subgraph SDLs.
  demandControl: {
    maxCost: Number(process.env.GATEWAY_MAX_COST ?? 5000),
    includeExtensionMetadata: !production,
  },
  persistedDocuments: persistedDocuments(),
  plugins: () => [subscriptionRefusals()],
});
