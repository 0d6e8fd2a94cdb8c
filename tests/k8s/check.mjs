// Offline checks of Omni's Kubernetes manifests (SPEC 11; no API server
// runs here). tests/k8s/run.sh copies this file beside its node_modules
// (build/k8s) and runs it from the repository root.
//
// Every target (an overlay, or a kustomization of tests/k8s/targets) goes
// through one chain of checks:
//   lint      yamllint of the target's own source files
//   render    kubectl kustomize
//   rlint     yamllint of the rendered output
//   schema    kubernetes-models / @kubernetes-models/gateway-api validate()
//   types     tsc --strict of the objects typed with those models'
//             interfaces (unknown fields: the schemas let them pass)
//   policy    the project's rules (policy.mjs)
//   nginx     nginx -t, with the built module, of the nginx.conf in the
//             rendered ConfigMap, in a temporary root that mirrors the
//             gateway pod's mounts, prepared by the image's entrypoint
// A good target passes every check. Each tests/k8s/bad/NN-name is one
// fault: the checks named on the first line of its `expect` file must fail
// (with messages matching its further lines) and every other check pass.
// Prints "N passed, N failed".

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { spawnSync } from "node:child_process";
import yaml from "js-yaml";
import { policy, parseNginx, mountFor, readDockerfile } from "./policy.mjs";

const REPO = process.cwd();
const HERE = path.dirname(new URL(import.meta.url).pathname);
const TESTS = path.join(REPO, "tests/k8s");
const MODULE = path.resolve(REPO, process.env.OMNI_MODULE || "build/ngx_http_omni_module.so");
const IMAGE_MODULE = "/usr/lib/nginx/modules/ngx_http_omni_module.so";
const CHECKS = ["lint", "render", "rlint", "schema", "types", "policy", "nginx"];

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "omni-k8s-"));
process.on("exit", () => fs.rmSync(scratch, { recursive: true, force: true }));

function run(cmd, args, opts = {}) {
    const r = spawnSync(cmd, args, { encoding: "utf8", maxBuffer: 64 << 20, ...opts });
    if (r.error) {
        return { code: 127, out: "", err: String(r.error) };
    }
    return { code: r.status ?? 1, out: r.stdout ?? "", err: r.stderr ?? "" };
}

function rel(p) {
    return path.relative(REPO, p) || ".";
}

// --- the chain --------------------------------------------------------------

function lint(files, config) {
    const r = run("yamllint", ["-s", "-f", "parsable", "-c", config, ...files]);
    return r.code === 0 ? [] : (r.out + r.err).trim().split("\n");
}

function sourceYaml(dir) {
    return fs.readdirSync(dir, { recursive: true })
        .filter((f) => /\.ya?ml$/.test(f))
        .map((f) => path.join(dir, f));
}

// kustomize wraps long base64 lines; the API server accepts that, the
// models' "byte" format does not
function unwrapSecret(o) {
    if (o.kind === "Secret" && o.data) {
        o = structuredClone(o);
        for (const k of Object.keys(o.data)) {
            o.data[k] = String(o.data[k]).replace(/\s+/g, "");
        }
    }
    return o;
}

function modelPath(o) {
    const group = String(o.apiVersion || "");
    if (group.startsWith("gateway.networking.k8s.io/")) {
        return `@kubernetes-models/gateway-api/${group}/${o.kind}`;
    }
    return `kubernetes-models/${group}/${o.kind}`;
}

async function schema(objects) {
    const errors = [];
    for (const o of objects) {
        const id = `${o.kind}/${o.metadata?.name}`;
        let mod;
        try {
            mod = await import(modelPath(o));
        } catch {
            errors.push(`${id}: no schema for ${o.apiVersion} ${o.kind}`);
            continue;
        }
        try {
            new mod[o.kind](unwrapSecret(o)).validate();
        } catch (e) {
            errors.push(`${id}: ${e.message}`);
        }
    }
    return errors;
}

// one .ts file per target; one tsc run for all of them (it takes seconds)
function typeFile(name, objects) {
    const imports = new Map();
    const decls = [];
    objects.forEach((o, i) => {
        const from = modelPath(o);
        if (!/^[A-Za-z]+$/.test(String(o.kind))) {
            return;
        }
        const alias = `I${o.kind}_${imports.size}`;
        if (!imports.has(from)) {
            imports.set(from, [`I${o.kind}`, alias]);
        }
        const [, a] = imports.get(from);
        decls.push(`// ${o.kind}/${o.metadata?.name}\n` +
            `export const o${i}: ${a} = ${JSON.stringify(unwrapSecret(o), null, 2)};`);
    });
    const head = [...imports].map(([from, [iface, alias]]) =>
        `import type { ${iface} as ${alias} } from "${from}";`);
    const file = path.join(HERE, "types", `${name}.ts`);
    fs.writeFileSync(file, [...head, "", ...decls, ""].join("\n"));
    return file;
}

function typecheck(files) {
    fs.writeFileSync(path.join(HERE, "types", "tsconfig.json"), JSON.stringify({
        compilerOptions: {
            strict: true, noEmit: true, target: "es2022", module: "nodenext",
            moduleResolution: "nodenext", skipLibCheck: true, types: [],
            noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: false,
        },
        files: files.map((f) => path.basename(f)),
    }, null, 2));
    const tsc = path.join(HERE, "node_modules/typescript/bin/tsc");
    const r = run(process.execPath, [tsc, "-p", path.join(HERE, "types"), "--pretty", "false"]);
    const byFile = new Map(files.map((f) => [path.basename(f), []]));
    for (const line of (r.out + r.err).split("\n")) {
        const m = /^(?:.*\/)?([^/(]+\.ts)\(\d+,\d+\): error (.*)$/.exec(line);
        if (m && byFile.has(m[1])) {
            byFile.get(m[1]).push(line.replace(/^.*\//, ""));
        } else if (/error TS/.test(line)) {
            for (const list of byFile.values()) {
                list.push(line);
            }
        }
    }
    if (r.code !== 0 && [...byFile.values()].every((l) => l.length === 0)) {
        for (const list of byFile.values()) {
            list.push(`tsc exited ${r.code}: ${(r.out + r.err).trim()}`);
        }
    }
    return byFile;
}

// --- nginx -t in a root that mirrors the gateway pod --------------------

let dummies;
function dummySecrets() {
    if (dummies) {
        return dummies;
    }
    const d = path.join(scratch, "dummy");
    fs.mkdirSync(d);
    const ssl = (args) => {
        const r = run("openssl", args, { cwd: d });
        if (r.code !== 0) {
            throw new Error(`openssl ${args.join(" ")}: ${r.err}`);
        }
    };
    ssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=omni.test",
        "-keyout", "tls.key", "-out", "tls.crt"]);
    ssl(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", "jwt-private.pem"]);
    ssl(["pkey", "-in", "jwt-private.pem", "-pubout", "-out", "jwt-public.pem"]);
    const secret = "dummy-gateway-secret-0123456789abcdef";
    const read = (f) => fs.readFileSync(path.join(d, f));
    // the keys of the Secrets made outside kustomize (README "Deployment")
    dummies = {
        "tls.crt": read("tls.crt"),
        "tls.key": read("tls.key"),
        "jwt-private.pem": read("jwt-private.pem"),
        "jwt-public.pem": read("jwt-public.pem"),
        "gateway-secret": Buffer.from(secret + "\n"),
        "gateway-secret.conf": Buffer.from(`map $host $omni_gateway_secret { default "${secret}"; }\n`),
        "password": Buffer.from("dummy-redis-password"),
    };
    return dummies;
}

function nginxCheck(objects, name) {
    const byName = (kind, n) => objects.find((o) => o.kind === kind && o.metadata?.name === n);
    const dep = objects.find((o) => o.kind === "Deployment" &&
        (o.spec?.template?.spec?.containers || []).some((c) => String(c.image).includes("omni-gateway")));
    if (!dep) {
        return ["no gateway Deployment (an omni-gateway image)"];
    }
    const pod = dep.spec.template.spec;
    const c = pod.containers.find((x) => String(x.image).includes("omni-gateway"));
    const env = {};
    for (const e of c.env || []) {
        if (e.value !== undefined) {
            env[e.name] = String(e.value);
        } else if (e.valueFrom?.configMapKeyRef) {
            const cm = byName("ConfigMap", e.valueFrom.configMapKeyRef.name);
            env[e.name] = cm?.data?.[e.valueFrom.configMapKeyRef.key] ?? "";
        }
    }
    const root = path.join(scratch, `root-${name}`);
    const mounts = [...(c.volumeMounts || [])].sort((a, b) => b.mountPath.length - a.mountPath.length);
    const moved = (p) => {
        if (p === IMAGE_MODULE) {
            return MODULE;
        }
        const m = mounts.find((v) => p === v.mountPath || p.startsWith(v.mountPath + "/"));
        return m ? path.join(root, p) : p;
    };
    const rewrite = (text) => text.replace(/(?<![\w.@-])\/(?:[\w.@-]+\/?)+/g, (p) => moved(p));
    const errors = [];
    for (const vm of mounts) {
        const dir = path.join(root, vm.mountPath);
        fs.mkdirSync(dir, { recursive: true });
        const vol = (pod.volumes || []).find((v) => v.name === vm.name);
        if (!vol) {
            errors.push(`mount ${vm.mountPath}: no volume ${vm.name}`);
            continue;
        }
        if (vm.subPath || vm.subPathExpr) {
            errors.push(`mount ${vm.mountPath}: subPath is not mirrored`);
            continue;
        }
        let files = {};
        if (vol.configMap) {
            const cm = byName("ConfigMap", vol.configMap.name);
            if (!cm) {
                errors.push(`mount ${vm.mountPath}: no ConfigMap ${vol.configMap.name}`);
                continue;
            }
            for (const [k, v] of Object.entries(cm.data || {})) {
                files[k] = Buffer.from(rewrite(String(v)));
            }
        } else if (vol.secret) {
            const s = byName("Secret", vol.secret.secretName);
            if (s) {
                for (const [k, v] of Object.entries(s.data || {})) {
                    files[k] = Buffer.from(String(v).replace(/\s+/g, ""), "base64");
                }
                for (const [k, v] of Object.entries(s.stringData || {})) {
                    files[k] = Buffer.from(String(v));
                }
            } else {
                files = dummySecrets();
            }
        } else if (!vol.emptyDir) {
            errors.push(`mount ${vm.mountPath}: volume ${vm.name} is not mirrored`);
            continue;
        }
        if (vol.configMap || vol.secret) {
            const src = vol.configMap || vol.secret;
            const items = src.items || Object.keys(files).map((k) => ({ key: k, path: k }));
            for (const it of items) {
                if (!(it.key in files)) {
                    errors.push(`mount ${vm.mountPath}: no key ${it.key} in ${vol.name}`);
                    continue;
                }
                fs.mkdirSync(path.dirname(path.join(dir, it.path)), { recursive: true });
                fs.writeFileSync(path.join(dir, it.path), files[it.key]);
            }
        }
    }
    if (errors.length) {
        return errors;
    }

    // names nginx resolves at start (upstream servers, omni_redis): in the
    // pod, cluster DNS; here, loopback through a private /etc/hosts
    const names = new Set();
    const conf = env.OMNI_NGINX_CONF ? fs.readFileSync(moved(env.OMNI_NGINX_CONF), "utf8") : "";
    for (const d of parseNginx(conf)) {
        if (d.name === "server" && d.ctx.at(-1) === "upstream") {
            names.add(String(d.args[0]).replace(/:\d+$/, ""));
        }
    }
    names.add(String(env.OMNI_REDIS_ADDR || "").replace(/:\d+$/, ""));
    const hosts = path.join(root, "hosts");
    fs.writeFileSync(hosts, ["127.0.0.1 localhost", "::1 localhost",
        ...[...names].filter((n) => n && !/^[\d.]+$/.test(n)).map((n) => `127.0.0.1 ${n}`), ""].join("\n"));

    const runEnv = { PATH: process.env.PATH, HOME: root };
    for (const [k, v] of Object.entries(env)) {
        runEnv[k] = v.startsWith("/") ? moved(v) : v;
    }
    const entry = path.join(REPO, "k8s/images/gateway/entrypoint.sh");
    const inner = 'mount --bind "$1" /etc/hosts && shift && exec bash "$@"';
    const unshare = process.getuid() === 0 ? ["-m"] : ["-rm"];
    // a file for stdout and stderr: the logs are symlinks to /dev/stdout
    // and /dev/stderr, which cannot be opened on Node's socket pipes
    const log = path.join(root, "nginx-t.log");
    const fd = fs.openSync(log, "w");
    const r = run("unshare", [...unshare, "bash", "-c", inner, "inner", hosts, entry,
        ...(c.args || []), "-t"], { env: runEnv, stdio: ["ignore", fd, fd] });
    fs.closeSync(fd);
    const out = (fs.readFileSync(log, "utf8") + r.err).trim();
    if (r.code !== 0 || !/test is successful/.test(out)) {
        return [`nginx -t failed (exit ${r.code}):`, ...out.split("\n")];
    }
    return [];
}

// --- targets ----------------------------------------------------------------

async function chain(dir, name) {
    const res = Object.fromEntries(CHECKS.map((c) => [c, null]));
    res.lint = lint(sourceYaml(dir), path.join(TESTS, "yamllint.yaml"));
    const r = run("kubectl", ["kustomize", dir]);
    if (r.code !== 0) {
        res.render = [(r.err || r.out).trim()];
        return { res, objects: [] };
    }
    res.render = [];
    const out = path.join(scratch, `${name}.yaml`);
    fs.writeFileSync(out, r.out);
    res.rlint = lint([out], path.join(TESTS, "yamllint-rendered.yaml"));
    let objects;
    try {
        objects = yaml.loadAll(r.out).filter((o) => o !== null);
    } catch (e) {
        res.rlint.push(`not YAML: ${e.message}`);
        return { res, objects: [] };
    }
    res.schema = await schema(objects);
    res.policy = policy(objects, { repo: REPO });
    try {
        res.nginx = nginxCheck(objects, name);
    } catch (e) {
        res.nginx = [`could not prepare nginx -t: ${e.stack}`];
    }
    res.typeFile = typeFile(name, objects);
    return { res, objects };
}

function good() {
    return [
        ["k8s/base", path.join(REPO, "k8s/base")],
        ["k8s/overlays/dev", path.join(REPO, "k8s/overlays/dev")],
        ["k8s/overlays/prod", path.join(REPO, "k8s/overlays/prod")],
        ...fs.readdirSync(path.join(TESTS, "targets")).sort()
            .map((t) => [`tests/k8s/targets/${t}`, path.join(TESTS, "targets", t)]),
    ];
}

function bad() {
    const dir = path.join(TESTS, "bad");
    return fs.readdirSync(dir).sort().map((t) => {
        // line 1: the checks that must fail; each further line: a pattern
        // one of their messages must match
        const [fails, ...match] = fs.readFileSync(path.join(dir, t, "expect"), "utf8").trim().split("\n");
        return { name: t, dir: path.join(dir, t), fails: fails.trim().split(/\s+/),
            match: match.map((m) => new RegExp(m.trim())) };
    });
}

// --- checks of the repository itself ------------------------------------

function globalChecks() {
    const tests = [];
    // the sources (bad/ is linted variant by variant)
    const files = [...sourceYaml(path.join(REPO, "k8s")),
        ...sourceYaml(TESTS).filter((f) => !f.includes("/bad/") && !f.includes("node_modules"))];
    tests.push(["yamllint k8s/ and tests/k8s/", lint(files, path.join(TESTS, "yamllint.yaml"))]);

    // the ConfigMap's nginx files are k8s/render-nginx.sh's output of today's template
    const fresh = path.join(scratch, "fresh");
    const r = run("bash", [path.join(REPO, "k8s/render-nginx.sh"), fresh]);
    const stale = [];
    if (r.code !== 0) {
        stale.push(`k8s/render-nginx.sh failed: ${r.err}`);
    } else {
        for (const f of fs.readdirSync(fresh)) {
            const committed = path.join(REPO, "k8s/base/nginx", f);
            if (!fs.existsSync(committed) ||
                fs.readFileSync(committed, "utf8") !== fs.readFileSync(path.join(fresh, f), "utf8")) {
                stale.push(`k8s/base/nginx/${f} is not the template's rendering: run bash k8s/render-nginx.sh`);
            }
        }
    }
    tests.push(["k8s/base/nginx/ is rendered from conf/nginx.conf.in", stale]);

    // a bad variant's nginx.conf differs from the real one in one line
    const real = fs.readFileSync(path.join(REPO, "k8s/base/nginx/nginx.conf"), "utf8").split("\n");
    const drift = [];
    for (const b of bad()) {
        const f = path.join(b.dir, "nginx.conf");
        if (fs.existsSync(f)) {
            const mine = fs.readFileSync(f, "utf8").split("\n");
            const diff = mine.length === real.length ? mine.filter((l, i) => l !== real[i]).length : -1;
            if (diff !== 1) {
                drift.push(`tests/k8s/bad/${b.name}/nginx.conf must differ from k8s/base/nginx/nginx.conf ` +
                    `in exactly one line (differs in ${diff < 0 ? "length" : diff}): copy it again and re-apply its fault`);
            }
        }
    }
    tests.push(["each bad nginx.conf is the real one with one line changed", drift]);

    // the image build files, read (no container engine runs here)
    const img = [];
    for (const [which, pkgs] of [["gateway", ["nginx", "libnginx-mod-nchan", "libhiredis0.14", "libyajl2", "libssl3"]],
        ["worker", ["libpq5", "libevent-2.1-7", "libevent-pthreads-2.1-7", "libhiredis0.14", "libyajl2", "libcurl4"]]]) {
        const df = readDockerfile(REPO, which);
        const where = `k8s/images/${which}/Dockerfile`;
        if (df.stages.length < 2) {
            img.push(`${where}: expected a builder stage and a runtime stage`);
            continue;
        }
        for (const s of df.stages) {
            if (!/^debian:(bookworm|12)[\w.-]*(@sha256:[0-9a-f]{64})?$/.test(s.from) || /latest/.test(s.from)) {
                img.push(`${where}: FROM ${s.from}: expected Debian 12 pinned by tag or digest, never latest`);
            }
        }
        const [build, final] = [df.stages[0], df.stages.at(-1)];
        if (!/\bmake\b/.test(build.run)) {
            img.push(`${where}: the builder stage does not build with make`);
        }
        for (const p of ["nginx-dev", "libjwt-dev", "libpq-dev", "libhiredis-dev", "libevent-dev", "libyajl-dev"]) {
            if (!new RegExp(`(^|\\s)${p}(\\s|$)`).test(build.run)) {
                img.push(`${where}: the builder stage does not install ${p} (SPEC 3)`);
            }
        }
        for (const p of pkgs) {
            if (!new RegExp(`(^|[\\s"])${p.replace(/[.+]/g, "\\$&")}([\\s"=]|$)`).test(final.run)) {
                img.push(`${where}: the runtime stage does not install ${p}`);
            }
        }
        if (!(df.uid > 0)) {
            img.push(`${where}: the last USER must be a numeric non-root uid (found ${df.user || "none"})`);
        }
        if (/apt-get install/.test(final.run) && !/rm -rf \/var\/lib\/apt\/lists/.test(final.run)) {
            img.push(`${where}: apt lists left in the image`);
        }
    }
    const gw = fs.readFileSync(path.join(REPO, "k8s/images/gateway/Dockerfile"), "utf8");
    if (!gw.includes(IMAGE_MODULE)) {
        img.push(`k8s/images/gateway/Dockerfile: the module is not copied to ${IMAGE_MODULE} (nginx.conf's load_module)`);
    }
    if (!/COPY k8s\/images\/gateway\/entrypoint\.sh \/usr\/local\/bin\/omni-gateway/.test(gw) ||
        !/ENTRYPOINT \["\/usr\/local\/bin\/omni-gateway"\]/.test(gw)) {
        img.push("k8s/images/gateway/Dockerfile: entrypoint.sh must be the ENTRYPOINT (/usr/local/bin/omni-gateway)");
    }
    tests.push(["image build files: pinned Debian 12, make, SPEC 3 packages, numeric USER", img]);

    // the npm tools are pinned
    const pin = [];
    const pj = JSON.parse(fs.readFileSync(path.join(TESTS, "package.json"), "utf8"));
    const lock = JSON.parse(fs.readFileSync(path.join(TESTS, "package-lock.json"), "utf8"));
    for (const [n, v] of Object.entries(pj.dependencies || {})) {
        if (!/^\d+\.\d+\.\d+$/.test(v)) {
            pin.push(`package.json: ${n}@${v} is not an exact version`);
        }
        const l = lock.packages?.[`node_modules/${n}`];
        if (!l || l.version !== v || !l.integrity) {
            pin.push(`package-lock.json: ${n} is not locked at ${v} with an integrity hash`);
        }
    }
    tests.push(["npm tools pinned (package.json exact, lockfile with integrity)", pin]);
    return tests;
}

// --- main -------------------------------------------------------------------

async function main() {
    fs.rmSync(path.join(HERE, "types"), { recursive: true, force: true });
    fs.mkdirSync(path.join(HERE, "types"));
    const only = process.argv.slice(2);
    const want = (n) => only.length === 0 || only.some((o) => n.includes(o));
    let passed = 0;
    let failed = 0;
    const report = (ok, title, lines = []) => {
        if (ok) {
            passed++;
            console.log(`PASS ${title}`);
        } else {
            failed++;
            console.log(`FAIL ${title}`);
            for (const l of lines.slice(0, 40)) {
                console.log(`     ${l}`);
            }
        }
    };

    for (const [title, errors] of globalChecks()) {
        if (want(title)) {
            report(errors.length === 0, title, errors);
        }
    }

    const runs = [];
    for (const [name, dir] of good()) {
        if (want(name)) {
            runs.push({ kind: "good", name, id: `good-${runs.length}`, ...(await chain(dir, `good-${runs.length}`)) });
        }
    }
    for (const b of bad()) {
        if (want(b.name)) {
            runs.push({ kind: "bad", ...b, id: `bad-${runs.length}`, ...(await chain(b.dir, `bad-${runs.length}`)) });
        }
    }
    const typed = runs.map((r) => r.res.typeFile).filter(Boolean);
    const types = typed.length ? typecheck(typed) : new Map();
    for (const r of runs) {
        if (r.res.typeFile) {
            r.res.types = types.get(path.basename(r.res.typeFile)) || [];
            delete r.res.typeFile;
        }
    }

    for (const r of runs) {
        if (r.kind === "good") {
            for (const c of CHECKS) {
                const e = r.res[c];
                report(e !== null && e.length === 0, `${r.name}: ${c}`,
                    e === null ? ["not run: an earlier check failed"] : e);
            }
            continue;
        }
        const failing = CHECKS.filter((c) => r.res[c] && r.res[c].length);
        const problems = [];
        if (failing.join(" ") !== CHECKS.filter((c) => r.fails.includes(c)).join(" ")) {
            problems.push(`expected exactly [${r.fails.join(" ")}] to fail; failed: [${failing.join(" ")}]`);
        }
        for (const m of r.match) {
            if (!r.fails.flatMap((c) => r.res[c] || []).some((l) => m.test(l))) {
                problems.push(`no failure message matches /${m.source}/`);
            }
        }
        if (problems.length) {
            for (const c of failing) {
                problems.push(`${c}:`, ...r.res[c].slice(0, 8).map((l) => `  ${l}`));
            }
        }
        const lines = r.fails.flatMap((c) => r.res[c] || []);
        const first = lines.find((l) => r.match[0].test(l)) ?? lines[0] ?? "";
        report(problems.length === 0, `bad/${r.name}: rejected by ${r.fails.join("+")}` +
            (problems.length ? "" : ` (${String(first).replace(/^.*\d+#\d+: /, "").slice(0, 120)})`), problems);
    }
    console.log(`${passed} passed, ${failed} failed`);
    process.exitCode = failed === 0 && passed > 0 ? 0 : 1;
}

await main();
