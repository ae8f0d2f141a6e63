// Writes the post-renderer a Helm release runs, for one patch: a small script under a fixed directory, named by the
// patch's hash. The release's `postrender` input is that path, so the release changes (and Helm upgrades it) exactly
// when the patch does, and a run on another machine or checkout writes the same name.
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { PodPatch } from "./postRender";

/** Fixed, not os.tmpdir(): the path is in the release's inputs, and a TMPDIR of another run would upgrade (and roll) it. */
export const POST_RENDER_DIR = "/tmp/velure-pooling-post-render";

/** The directory is ours alone (0700): what Helm executes from it must be what this program wrote. */
function ownDirectory(): void {
    fs.mkdirSync(POST_RENDER_DIR, { recursive: true, mode: 0o700 });
    const stat = fs.lstatSync(POST_RENDER_DIR);
    if (!stat.isDirectory() || stat.uid !== process.getuid?.() || (stat.mode & 0o077) !== 0) {
        throw new Error(`${POST_RENDER_DIR} must be a directory of this user's, closed to others (mode 0700); remove it and run again`);
    }
}

function quote(value: string): string {
    return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The patch file beside a post-renderer's script: what the script hands the post-renderer. */
function patchFile(command: string): string {
    return `${command}.json`;
}

/** The patch a release's post-renderer (its `postrender` input) applies: for the plan's report and the tests. */
export function readPostRenderPatch(command: string): PodPatch {
    return JSON.parse(fs.readFileSync(patchFile(command), "utf8")) as PodPatch;
}

/** The path of the post-renderer for `release` (namespace/name) with this patch, written if it is not there yet. */
export function postRendererCommand(release: string, patch: PodPatch): string {
    ownDirectory();
    const json = JSON.stringify(patch);
    const hash = crypto.createHash("sha256").update(release).update("\0").update(json).digest("hex").slice(0, 16);
    const base = path.join(POST_RENDER_DIR, `${release.replace(/\//g, "_")}-${hash}`);
    fs.writeFileSync(patchFile(base), json, { mode: 0o600 });
    const command = [process.execPath, "-r", require.resolve("ts-node/register/transpile-only"), path.join(__dirname, "postRenderer.ts"), release, patchFile(base)];
    const script = `#!/bin/sh\n# velure-pooling's Helm post-renderer for ${release}\nexec ${command.map(quote).join(" ")}\n`;
    fs.writeFileSync(base, script, { mode: 0o700 });
    return base;
}
