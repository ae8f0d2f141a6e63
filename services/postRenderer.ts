// The Helm post-renderer's command (see postRendererCommand.ts): Helm pipes a release's manifests in and reads them
// back, patched, from stdout; a refusal goes to stderr, which Helm shows with the failed install or upgrade.
import * as fs from "fs";
import { PodPatch, PostRenderError, postRender } from "./postRender";

function main(): void {
    const [release, patchFile] = process.argv.slice(2);
    const patch = JSON.parse(fs.readFileSync(patchFile, "utf8")) as PodPatch;
    try {
        process.stdout.write(postRender(release, fs.readFileSync(0, "utf8"), patch));
    } catch (e) {
        if (!(e instanceof PostRenderError)) {
            throw e;
        }
        process.stderr.write(`velure-pooling: ${e.message}\n`);
        process.exitCode = 1;
    }
}

main();
