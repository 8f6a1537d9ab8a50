// node dist/main.js ENDPOINT TOKEN HOUSEHOLD_ID: fetch a household's statement through the
// gateway by its persisted document and print what the partner page would show (JSON).
import { Client } from './client.js';
import { HouseholdStatementDocument } from './gql/graphql.js';
import { dailyElectricity, electricityStanding } from './views.js';

const [endpoint, token, household] = process.argv.slice(2);
if (!endpoint || !token || !household) {
  console.error('usage: node dist/main.js ENDPOINT TOKEN HOUSEHOLD_ID');
  process.exit(2);
}
const client = new Client(endpoint, token);
const result = await client.execute(HouseholdStatementDocument, { id: household });
const statement = result.data?.household?.statement;
console.log(
  JSON.stringify({
    errors: result.errors ?? [],
    days: statement ? dailyElectricity(statement) : [],
    electricityStanding: statement ? electricityStanding(statement) : null,
  }),
);
