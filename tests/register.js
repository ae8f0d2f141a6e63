// The tests' TypeScript loader: ts-node with swc as its transpiler, which loads the program and the tests in a
// fraction of the time TypeScript's own transpiler takes. Neither type-checks: `npm run typecheck` (tsc) does.
require("ts-node").register({ swc: true });

// Pulumi's runtime takes a stack trace for every promise it makes (runtime/debuggable.js, for the leak report it
// prints at exit) and reads it at once, so ts-node's source-map support mapped every frame of every one of them to
// TypeScript: half of the unit tests' CPU time (a profile of `npm test`, 2026-12-03). Those traces keep V8's own
// format, JavaScript positions; every other error's trace, an assertion's among them, is still mapped.
const PULUMI_PROMISE_TRACE = /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]debuggable\.js$/;
const mappedStackTrace = Error.prepareStackTrace;
Error.prepareStackTrace = (error, frames) =>
    PULUMI_PROMISE_TRACE.test(frames[0]?.getFileName() ?? "")
        ? `${error}${frames.map((frame) => `\n    at ${frame}`).join("")}`
        : mappedStackTrace(error, frames);
