// The real node's images, built here without a registry or a Docker engine: a root file system of files from this
// machine (Debian's binaries with the libraries ldd names, and our own static ones), one uncompressed layer, written
// as an OCI image archive and imported into the node's containerd. Each image stands for one the program or velure
// runs; what differs from that image is said beside it (and in the README's "Proving it").
import { execFileSync } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { BIN, ROOT } from "../toolchain";
import { PGBOUNCER_UID } from "../../components/pgbouncerPod";
import { trixieFile } from "../integration/servers";
import { CLIENTS_BIN } from "../integration/velureStack";

const LIB_DIR = "/usr/lib/x86_64-linux-gnu";
const LOADER = "/lib64/ld-linux-x86-64.so.2";
/** The uid velure's charts run the services as (runAsUser 65532, distroless's nonroot). */
export const VELURE_APP_UID = 65532;
const NOBODY_UID = 65534;

export interface ImageSpec {
    /** The reference the pods name, so that the kubelet finds it imported (imagePullPolicy IfNotPresent). */
    name: string;
    user: string;
    entrypoint: string[];
    cmd?: string[];
    /** Fills the root file system (a folder of its own). */
    build: (rootfs: string) => void;
}

/** Whether an ELF program names a loader (a static Go build does not). */
function isDynamic(source: string): boolean {
    try {
        execFileSync("patchelf", ["--print-interpreter", source], { stdio: "pipe" });
        return true;
    } catch {
        return false;
    }
}

/**
 * Copies an ELF program and every library ldd finds for it; each runs with the image's own loader and library
 * folder. A static program is copied alone.
 */
function addProgram(rootfs: string, source: string, target: string): void {
    if (!isDynamic(source)) {
        addStatic(rootfs, source, target);
        return;
    }
    const libraries = execFileSync("ldd", [source]).toString().split("\n")
        .map((line) => line.match(/=>\s*(\/\S+)/)?.[1])
        .filter((lib): lib is string => lib !== undefined);
    const loader = execFileSync("patchelf", ["--print-interpreter", source]).toString().trim();
    copyFile(loader, path.join(rootfs, LOADER));
    for (const lib of libraries) {
        copyFile(lib, path.join(rootfs, LIB_DIR, path.basename(lib)));
    }
    const dest = path.join(rootfs, target);
    copyFile(source, dest);
    // Only a program that names another loader (trixie's tree, whose libraries its rpath names) is rewritten:
    // patchelf breaks a Go program's ELF (the exporter then dies of SIGSEGV), and this machine's own need nothing.
    if (loader !== LOADER) {
        execFileSync("patchelf", ["--set-interpreter", LOADER, "--force-rpath", "--set-rpath", LIB_DIR, dest]);
    }
}

/** A static program: the file alone. */
function addStatic(rootfs: string, source: string, target: string): void {
    copyFile(source, path.join(rootfs, target));
}

function copyFile(source: string, dest: string): void {
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.copyFileSync(fs.realpathSync(source), dest);
    fs.chmodSync(dest, 0o755);
}

/** busybox (Debian's static build) as /bin/sh and the applets the program's scripts call (sleep, kill) and the tests use, as on Alpine. */
function addBusybox(rootfs: string): void {
    addStatic(rootfs, "/bin/busybox", "bin/busybox");
    for (const applet of ["sh", "sleep", "kill", "cat", "ls", "ps", "true", "id", "stat"]) {
        fs.symlinkSync("busybox", path.join(rootfs, "bin", applet));
    }
}

function addAccounts(rootfs: string, accounts: { name: string; uid: number; home: string }[]): void {
    fs.mkdirSync(path.join(rootfs, "etc"), { recursive: true });
    const all = [{ name: "root", uid: 0, home: "/root" }, ...accounts];
    fs.writeFileSync(path.join(rootfs, "etc/passwd"), all.map((a) => `${a.name}:x:${a.uid}:${a.uid}::${a.home}:/bin/sh\n`).join(""));
    fs.writeFileSync(path.join(rootfs, "etc/group"), all.map((a) => `${a.name}:x:${a.uid}:\n`).join(""));
    for (const dir of ["tmp", "dev", "proc", "sys", "etc/pgbouncer"]) {
        fs.mkdirSync(path.join(rootfs, dir), { recursive: true });
    }
}

/** Where each layer's PgBouncer comes from: bookworm's packages on this machine, trixie's unpacked by scripts/trixie.sh. */
const PGBOUNCER_BUILDS = {
    "1.18.0": { pgbouncer: "/usr/sbin/pgbouncer", pgBin: "/usr/lib/postgresql/15/bin" },
    "1.24.1": { pgbouncer: trixieFile("usr/sbin/pgbouncer"), pgBin: trixieFile("usr/lib/postgresql/17/bin") },
};
export type PgBouncerImageVersion = keyof typeof PGBOUNCER_BUILDS;

export const pgbouncerImageName = (version: PgBouncerImageVersion) => `velure.local/pgbouncer:${version}`;

/**
 * Stands for ghcr.io/icoretech/pgbouncer-docker (the program's default pgbouncerImage): Alpine there, Debian's
 * PgBouncer here, with what the program relies on in the same places: user postgres (uid 70), /bin/sh with sleep and
 * kill, pgbouncer, pg_isready and psql on PATH, /etc/pgbouncer. Not there: Alpine's own files, the image's
 * entrypoint script (the program replaces the command), its CA certificates (the program mounts its bundle).
 */
export function pgbouncerImage(version: PgBouncerImageVersion): ImageSpec {
    const build = PGBOUNCER_BUILDS[version];
    return {
        name: pgbouncerImageName(version),
        user: "postgres",
        entrypoint: ["/usr/bin/pgbouncer"],
        cmd: ["/etc/pgbouncer/pgbouncer.ini"],
        build: (rootfs) => {
            addBusybox(rootfs);
            addAccounts(rootfs, [{ name: "postgres", uid: PGBOUNCER_UID, home: "/var/lib/postgresql" }]);
            addProgram(rootfs, build.pgbouncer, "usr/bin/pgbouncer");
            addProgram(rootfs, path.join(build.pgBin, "pg_isready"), "usr/bin/pg_isready");
            addProgram(rootfs, path.join(build.pgBin, "psql"), "usr/bin/psql");
        },
    };
}

/** Stands for quay.io/prometheuscommunity/pgbouncer-exporter at the same version, under its own name: the same program (built by the toolchain), on busybox, as user nobody. */
export function exporterImage(reference: string): ImageSpec {
    return {
        name: reference,
        user: "nobody",
        entrypoint: ["/bin/pgbouncer_exporter"],
        build: (rootfs) => {
            addBusybox(rootfs);
            addAccounts(rootfs, [{ name: "nobody", uid: NOBODY_UID, home: "/" }]);
            addProgram(rootfs, BIN.pgbouncer_exporter, "bin/pgbouncer_exporter");
        },
    };
}

/**
 * A velure service's stand-in (velure-clients serve: velure's drivers, pools and start as the service has them),
 * as velure's distroless images run: one static program, user nonroot (65532), nothing else; publish-order's
 * migrations beside it, as its image carries them.
 */
export function velureAppImage(name: string, service: "auth" | "orders"): ImageSpec {
    const migrations = service === "orders" ? ["-dir", "/migrations"] : [];
    return {
        name,
        user: String(VELURE_APP_UID),
        entrypoint: ["/velure-app", "serve", "-service", service, ...migrations],
        build: (rootfs) => {
            addAccounts(rootfs, [{ name: "nonroot", uid: VELURE_APP_UID, home: "/home/nonroot" }]);
            addStatic(rootfs, CLIENTS_BIN, "velure-app");
            if (service === "orders") {
                fs.cpSync(path.join(ROOT, "tests/clients/migrations"), path.join(rootfs, "migrations"), { recursive: true });
            }
        },
    };
}

/** The sandbox's image, named as the kubelet and containerd ask for it: a static pause of our own (tests/e2e/pause.c). */
export const PAUSE_IMAGE = "registry.k8s.io/pause:3.10";
export function pauseImage(): ImageSpec {
    return {
        name: PAUSE_IMAGE,
        user: "65535",
        entrypoint: ["/pause"],
        build: (rootfs) => {
            execFileSync("gcc", ["-static", "-O2", "-o", path.join(rootfs, "pause"), path.join(__dirname, "pause.c")]);
        },
    };
}

function sha256(file: string): string {
    return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

/** Writes a blob under its digest; returns its descriptor. */
function addBlob(layout: string, mediaType: string, file: string): { mediaType: string; digest: string; size: number } {
    const digest = sha256(file);
    fs.renameSync(file, path.join(layout, "blobs", "sha256", digest));
    return { mediaType, digest: `sha256:${digest}`, size: fs.statSync(path.join(layout, "blobs", "sha256", digest)).size };
}

function addJsonBlob(layout: string, mediaType: string, value: unknown) {
    const file = path.join(layout, "blob.json");
    fs.writeFileSync(file, JSON.stringify(value));
    return addBlob(layout, mediaType, file);
}

/** Builds the image into an OCI archive (one layer, owned by root, reproducible timestamps) in `dir`; returns its path. */
export function buildImage(spec: ImageSpec, dir: string): string {
    const work = fs.mkdtempSync(path.join(dir, "image-"));
    try {
        return writeArchive(spec, work, dir);
    } finally {
        fs.rmSync(work, { recursive: true, force: true });
    }
}

/** The root file system, its layer and the OCI layout around it, in `work`; the archive in `dir`. */
function writeArchive(spec: ImageSpec, work: string, dir: string): string {
    const rootfs = path.join(work, "rootfs");
    const layout = path.join(work, "layout");
    fs.mkdirSync(rootfs);
    fs.mkdirSync(path.join(layout, "blobs", "sha256"), { recursive: true });
    spec.build(rootfs);
    const layerTar = path.join(work, "layer.tar");
    execFileSync("tar", ["--numeric-owner", "--owner=0", "--group=0", "--sort=name", "--mtime=@0", "-C", rootfs, "-cf", layerTar, "."]);
    const diffId = `sha256:${sha256(layerTar)}`;
    const layer = addBlob(layout, "application/vnd.oci.image.layer.v1.tar", layerTar);
    const config = addJsonBlob(layout, "application/vnd.oci.image.config.v1+json", {
        architecture: "amd64",
        os: "linux",
        config: { User: spec.user, Entrypoint: spec.entrypoint, Cmd: spec.cmd, Env: ["PATH=/usr/local/bin:/usr/bin:/bin"], WorkingDir: "/" },
        rootfs: { type: "layers", diff_ids: [diffId] },
    });
    const manifest = addJsonBlob(layout, "application/vnd.oci.image.manifest.v1+json", {
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config,
        layers: [layer],
    });
    fs.writeFileSync(path.join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    fs.writeFileSync(path.join(layout, "index.json"), JSON.stringify({
        schemaVersion: 2,
        manifests: [{ ...manifest, platform: { architecture: "amd64", os: "linux" }, annotations: { "io.containerd.image.name": spec.name, "org.opencontainers.image.ref.name": spec.name } }],
    }));
    const archive = path.join(dir, `${spec.name.replace(/[^A-Za-z0-9.]+/g, "_")}.tar`);
    execFileSync("tar", ["-C", layout, "-cf", archive, "."]);
    return archive;
}
