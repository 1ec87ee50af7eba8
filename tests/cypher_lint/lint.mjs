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
// Used by tests/test_cypher_lint.py; one process lints all statements. Neo4j's semantic analysis
// (its Scala front end compiled to JavaScript) takes ~50-100 ms a statement, so results are cached
// in node_modules/.cache/ keyed by the statement, this script and the linter's version
// (`npm ci` empties the cache; CYPHER_LINT_NO_CACHE=1 bypasses it).

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const VERSION = 'CYPHER 5';
const ERROR = 1; // vscode-languageserver-types DiagnosticSeverity.Error

// The package's ESM build uses extensionless relative imports that Node cannot resolve, so load
// its CommonJS build; and only on the first cache miss, as loading it takes about a second.
const require = createRequire(import.meta.url);
let linter;
function loadLinter() {
  if (linter === undefined) {
    const cypher = require('@neo4j-cypher/language-support');
    linter = { ...cypher, baseSchema: { defaultLanguage: VERSION, ...builtInCatalogue(cypher) } };
  }
  return linter;
}

function builtInCatalogue({ testData }) {
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

function diagnostic(severity, message, line, column) {
  return { severity: severity === ERROR ? 'error' : 'warning', message, line, column };
}

function lint(statement) {
  const { lintCypherQuery, parseParameters, parseStatementsStrs, baseSchema } = loadLinter();
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

const CACHE_LIMIT = 5000; // statements; beyond it, only the current run's are kept

function openCache() {
  if (process.env.CYPHER_LINT_NO_CACHE) {
    return { get: () => undefined, set: () => {}, save: () => {} };
  }
  const here = (path) => fileURLToPath(new URL(path, import.meta.url));
  const { version } = JSON.parse(
    readFileSync(here('./node_modules/@neo4j-cypher/language-support/package.json'), 'utf8'),
  );
  const salt = version + '\0' + readFileSync(here('./lint.mjs'), 'utf8');
  const dir = here('./node_modules/.cache/quanzi-cypher-lint/');
  const file = dir + 'results.json';
  let entries = {};
  try {
    entries = JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    // no cache yet, or an unreadable one: start afresh
  }
  const used = {};
  let dirty = false;
  const key = (statement) => createHash('sha256').update(salt + '\0' + statement).digest('hex');
  return {
    get(statement) {
      const k = key(statement);
      if (Object.hasOwn(entries, k)) used[k] = entries[k];
      return used[k];
    },
    set(statement, diagnostics) {
      used[key(statement)] = diagnostics;
      dirty = true;
    },
    save() {
      if (!dirty) return;
      let merged = { ...entries, ...used };
      if (Object.keys(merged).length > CACHE_LIMIT) merged = used;
      try {
        mkdirSync(dir, { recursive: true });
        const tmp = `${file}.${process.pid}.tmp`;
        writeFileSync(tmp, JSON.stringify(merged));
        renameSync(tmp, file); // atomic: a concurrent run never reads a half-written file
      } catch {
        // the cache is an optimisation only
      }
    },
  };
}

const input = JSON.parse(readFileSync(0, 'utf8'));
if (!Array.isArray(input) || !input.every((s) => typeof s === 'string')) {
  process.stderr.write('lint.mjs: stdin must be a JSON array of strings\n');
  process.exit(2);
}
const cache = openCache();
const output = input.map((statement) => {
  let diagnostics = cache.get(statement);
  if (diagnostics === undefined) {
    diagnostics = lint(statement);
    cache.set(statement, diagnostics);
  }
  return diagnostics;
});
cache.save();
process.stdout.write(JSON.stringify(output) + '\n');
