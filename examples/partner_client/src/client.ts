// A partner frontend's GraphQL client: it sends only persisted documents (their hash, never
// their text), so a gateway running with GATEWAY_PERSISTED_DOCUMENTS accepts exactly these.
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';

export interface GraphQLError {
  message: string;
  extensions?: { code?: string; [key: string]: unknown };
}

export interface Result<TData> {
  data?: TData | null;
  errors?: GraphQLError[];
}

/** The hash the code generator embedded in a document (`embedHashInDocument`). */
export function documentId(document: TypedDocumentNode<unknown, never>): string {
  const meta = (document as { __meta__?: { hash?: unknown } }).__meta__;
  if (typeof meta?.hash !== 'string') {
    throw new Error('not a persisted document: run `npm run codegen`');
  }
  return meta.hash;
}

export class Client {
  constructor(
    private readonly endpoint: string,
    private readonly token: string,
  ) {}

  /** Runs a generated document by its hash; the result is typed by the document. */
  async execute<TData, TVariables extends Record<string, unknown>>(
    document: TypedDocumentNode<TData, TVariables>,
    variables: TVariables,
  ): Promise<Result<TData>> {
    const response = await fetch(this.endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json, application/json',
        authorization: `Bearer ${this.token}`,
      },
      body: JSON.stringify({
        documentId: documentId(document as TypedDocumentNode<unknown, never>),
        variables,
      }),
    });
    return (await response.json()) as Result<TData>;
  }
}
