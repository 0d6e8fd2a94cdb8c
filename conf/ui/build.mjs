// Bundles the admin page: src/main.js (and the CSS it imports) into
// OUT/assets/ with content-hashed names, and writes OUT/index.html
// referencing them. esbuild and uPlot come from NODE_DIR (npm ci of this
// folder's package-lock.json).
//
//   node conf/ui/build.mjs NODE_DIR OUT
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [nodeDir, out] = process.argv.slice(2);
if (!nodeDir || !out) {
    console.error("usage: node conf/ui/build.mjs NODE_DIR OUT");
    process.exit(2);
}
const here = path.dirname(new URL(import.meta.url).pathname);
const modules = path.resolve(nodeDir, "node_modules");
const esbuild = await import(
    pathToFileURL(path.join(modules, "esbuild", "lib", "main.js")).href);

const tmp = path.resolve(out) + ".tmp";
fs.rmSync(tmp, { recursive: true, force: true });

const result = await esbuild.build({
    entryPoints: { app: path.join(here, "src", "main.js") },
    bundle: true,
    minify: true,
    format: "esm",
    target: ["chrome100", "firefox100", "safari15"],
    outdir: path.join(tmp, "assets"),
    entryNames: "[name]-[hash]",
    assetNames: "[name]-[hash]",
    nodePaths: [modules],
    metafile: true,
    legalComments: "linked",
    logLevel: "warning",
}).catch(() => process.exit(1)); // esbuild has printed the errors

let js, css;
for (const [file, meta] of Object.entries(result.metafile.outputs)) {
    if (!meta.entryPoint) {
        if (file.endsWith(".css")) css = file;
        continue;
    }
    js = file;
    if (meta.cssBundle) css = meta.cssBundle;
}
if (!js || !css) {
    console.error("build.mjs: esbuild wrote no app js/css");
    process.exit(1);
}
const asset = (f) => "/assets/" + path.basename(f);

const page = fs.readFileSync(path.join(here, "index.html"), "utf8")
    .replace("@APP_JS@", asset(js))
    .replace("@APP_CSS@", asset(css));
if (/@[A-Z_]+@/.test(page)) {
    console.error("build.mjs: index.html has an unfilled placeholder");
    process.exit(1);
}
fs.writeFileSync(path.join(tmp, "index.html"), page);
// readable by nginx's workers whatever the umask
for (const f of fs.readdirSync(tmp, { recursive: true })) {
    const p = path.join(tmp, f);
    fs.chmodSync(p, fs.statSync(p).isDirectory() ? 0o755 : 0o644);
}
fs.chmodSync(tmp, 0o755);
fs.rmSync(out, { recursive: true, force: true });
fs.renameSync(tmp, out);
console.log("ui: %s (%s, %s)", out, asset(js), asset(css));
