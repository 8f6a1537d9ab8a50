// GraphQL Code Generator: TypeScript types and the persisted-documents manifest for the
// documents in src/documents, from the federated API schema.
//
// The schema is the gateway's public API: gateway/supergraph.graphql with the federation
// machinery (join__*, @inaccessible fields) removed, exactly what the gateway serves.
//
//   npm run codegen   regenerate src/gql/ after changing a document or the supergraph
//   npm run check     fail when src/gql/ is stale, then type-check with tsc
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { CodegenConfig } from '@graphql-codegen/cli';
import { transformSupergraphToPublicSchema } from '@theguild/federation-composition';
import { parse, print } from 'graphql';

const supergraph = readFileSync(new URL('../../gateway/supergraph.graphql', import.meta.url), 'utf8');
const apiSchema = print(transformSupergraphToPublicSchema(parse(supergraph)));

const config: CodegenConfig = {
  schema: apiSchema,
  documents: ['src/documents/*.graphql'],
  ignoreNoDocuments: false,
  generates: {
    'src/gql/': {
      preset: 'client',
      config: {
        // carbongraph's scalars as they travel in JSON.
        scalars: {
          Date: 'string',
          DateTime: 'string',
          // Exact: a string of digits, never a binary float.
          Decimal: 'string',
          Grams: 'number',
          JSON: 'unknown',
          Upload: 'File',
        },
        strictScalars: true,
        enumsAsTypes: true,
        useTypeImports: true,
        // Relative imports with .js, as Node's ES modules (and tsc's NodeNext) need them.
        emitLegacyCommonJSImports: false,
      },
      presetConfig: {
        fragmentMasking: false,
        // src/gql/persisted-documents.json: {"<sha256 hex>": "<document>"}, the file the
        // gateway reads from GATEWAY_PERSISTED_DOCUMENTS; each document carries its hash. The
        // plain hex SHA-256 of the document text, so it serves as a `documentId` and as an
        // Apollo `extensions.persistedQuery.sha256Hash` alike.
        persistedDocuments: {
          mode: 'embedHashInDocument',
          hashAlgorithm: (document: string) => createHash('sha256').update(document).digest('hex'),
        },
      },
    },
  },
};

export default config;
