// The peer of benchmarks/peer/bench.py: a small Apollo Server running @neo4j/graphql over
// the same Bolt server and database as Quanzi.
//
//   PEER_BOLT_URI=bolt://127.0.0.1:7687 PEER_BOLT_USER=root PEER_BOLT_PASSWORD=... \
//   PEER_DATABASE=quanzi PEER_PORT=4000 PEER_JWT_SECRET=... node server.mjs
//   node server.mjs --print-schema      # the generated SDL, no server started
//
// ArcadeDB rejects the `CYPHER 5` prefix the library adds by default, so every request
// context carries cypherQueryOptions { addVersionPrefix: false }.
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";

import { ApolloServer } from "@apollo/server";
import { startStandaloneServer } from "@apollo/server/standalone";
import { Neo4jGraphQL } from "@neo4j/graphql";
import { printSchema } from "graphql";
import neo4j from "neo4j-driver";

const env = process.env;
const typeDefs = readFileSync(new URL("./typeDefs.graphql", import.meta.url), "utf8");
const printOnly = process.argv.includes("--print-schema");

const driver = printOnly
  ? undefined
  : neo4j.driver(env.PEER_BOLT_URI, neo4j.auth.basic(env.PEER_BOLT_USER ?? "neo4j", env.PEER_BOLT_PASSWORD ?? ""), {
      maxConnectionPoolSize: Number(env.PEER_POOL_SIZE ?? 100),
    });

const B36 = "0123456789abcdefghijklmnopqrstuvwxyz";
function newId(prefix) {
  // same shape as Quanzi's ids: a type prefix and a random base-36 body
  const bytes = randomBytes(16);
  let body = "";
  for (const b of bytes) body += B36[b % 36];
  return `${prefix}_${body}`;
}

const neoSchema = new Neo4jGraphQL({
  typeDefs,
  driver,
  features: {
    authorization: {
      key: env.PEER_JWT_SECRET ?? "unset",
      verifyOptions: {
        algorithms: ["HS256"],
        issuer: env.PEER_JWT_ISSUER ?? "quanzi",
        audience: env.PEER_JWT_AUDIENCE ?? "quanzi-api",
      },
    },
    populatedBy: {
      callbacks: {
        contentId: () => newId("cnt"),
        tenantOfCaller: (_parent, _args, context) => context.jwt?.tenant,
      },
    },
    excludeDeprecatedFields: {
      mutationOperations: true,
      aggregationFilters: true,
      aggregationFiltersOutsideConnection: true,
      relationshipFilters: true,
      attributeFilters: true,
    },
  },
});

const schema = await neoSchema.getSchema();
if (printOnly) {
  process.stdout.write(printSchema(schema) + "\n");
  process.exit(0);
}
const server = new ApolloServer({ schema, introspection: true });
const sessionConfig = env.PEER_DATABASE ? { database: env.PEER_DATABASE } : undefined;
const { url } = await startStandaloneServer(server, {
  listen: { host: "127.0.0.1", port: Number(env.PEER_PORT ?? 4000) },
  context: async ({ req }) => ({
    token: req.headers.authorization,
    sessionConfig,
    cypherQueryOptions: { addVersionPrefix: false },
  }),
});
console.log(`peer ready at ${url}`);

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, async () => {
    await server.stop();
    await driver.close();
    process.exit(0);
  });
}
