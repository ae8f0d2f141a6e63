// The tests' TypeScript loader: ts-node with swc as its transpiler, which loads the program and the tests in a
// fraction of the time TypeScript's own transpiler takes. Neither type-checks: `npm run typecheck` (tsc) does.
require("ts-node").register({ swc: true });
