// Lint Cypher statements with Neo4j's own linter (@neo4j-cypher/language-support).
//
// stdin:  a JSON array of strings, one Cypher statement each.
// stdout: a JSON array with one entry per input statement, in order; each entry is a list of
//         diagnostics {severity: "error" | "warning", message, line, column}
//         (line and column are 1-based, like Neo4j's own error messages).
//
// The statements are checked as Neo4j 5 Cypher ("CYPHER 5") against a schema that
// * declares no labels, relationship types or property keys, so unknown ones are not reported;
// * declares every parameter the statement uses, so `$id` is not "Parameter $id is not defined.";
// * lists Neo4j's built-in functions and procedures (the package's Neo4j 5 catalogue without the
//   APOC / GDS plugins), so a misspelt or non-Neo4j function or procedure is an error.
// A text that holds more than one statement is an error too: Neo4j runs exactly one per query.
//
// Used by tests/test_cypher_lint.py; one process lints all statements.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

// The package's ESM build uses extensionless relative imports that Node cannot resolve,
// so load its CommonJS build.
const require = createRequire(import.meta.url);
const cypher = require('@neo4j-cypher/language-support');
const { lintCypherQuery, parseParameters, parseStatementsStrs, testData } = cypher;

const VERSION = 'CYPHER 5';
const ERROR = 1; // vscode-languageserver-types DiagnosticSeverity.Error

function builtInCatalogue() {
  const schema = testData?.mockSchema;
  const functions = schema?.functions?.[VERSION];
  const procedures = schema?.procedures?.[VERSION];
  if (!functions || !procedures) {
    return {}; // no catalogue in this package version: unknown functions are not checked
  }
  const plugin = (name) => /^(apoc|gds)\./i.test(name);
  return {
    functions: {
      [VERSION]: Object.fromEntries(
        Object.entries(functions).filter(([name, fn]) => fn.isBuiltIn && !plugin(name)),
      ),
    },
    procedures: {
      [VERSION]: Object.fromEntries(
        Object.entries(procedures).filter(([name]) => !plugin(name)),
      ),
    },
  };
}

const baseSchema = { defaultLanguage: VERSION, ...builtInCatalogue() };

function diagnostic(severity, message, line, column) {
  return { severity: severity === ERROR ? 'error' : 'warning', message, line, column };
}

function lint(statement) {
  const parameters = Object.fromEntries(
    parseParameters(statement, false).map((name) => [name, null]),
  );
  const result = lintCypherQuery(statement, { ...baseSchema, parameters }, false);
  // 2.0.0-next.20 returns the diagnostics; later 2.x versions return {diagnostics, symbolTables}.
  const found = Array.isArray(result) ? result : result.diagnostics;
  const out = found.map((d) =>
    diagnostic(d.severity, d.message, d.range.start.line + 1, d.range.start.character + 1),
  );
  const count = parseStatementsStrs(statement).length;
  if (count > 1) {
    out.push(
      diagnostic(ERROR, `Expected exactly one statement per query but got: ${count}`, 1, 1),
    );
  }
  return out;
}

const input = JSON.parse(readFileSync(0, 'utf8'));
if (!Array.isArray(input) || !input.every((s) => typeof s === 'string')) {
  process.stderr.write('lint.mjs: stdin must be a JSON array of strings\n');
  process.exit(2);
}
process.stdout.write(JSON.stringify(input.map(lint)) + '\n');
