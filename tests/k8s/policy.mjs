// The project's own rules for the rendered manifests (SPEC 11, issue 19):
// what schemas and types cannot say. policy(objects) returns one message
// per broken rule, each starting with the rule's name.

import fs from "node:fs";
import path from "node:path";

// Secrets made outside kustomize (README "Deployment") and their keys
export const EXTERNAL_SECRETS = {
    "omni-tls": ["tls.crt", "tls.key"],
    "omni-gateway-secret": ["gateway-secret", "gateway-secret.conf"],
    "omni-jwt": ["jwt-private.pem", "jwt-public.pem"],
    "omni-redis": ["password"],
    "omni-postgres": ["username", "password"],
};

const GATEWAY_IMAGE = /(^|\/)omni-gateway[:@]/;
const WORKER_IMAGE = /(^|\/)omni-worker[:@]/;

// --- nginx.conf -------------------------------------------------------------

// directives as {name, args, ctx: [enclosing block names]}
export function parseNginx(text) {
    const tokens = [];
    const re = /#[^\n]*|'((?:\\.|[^'\\])*)'|"((?:\\.|[^"\\])*)"|([{};])|([^\s{};'"#][^\s{};'"]*)/g;
    let m;
    while ((m = re.exec(text)) !== null) {
        if (m[0].startsWith("#")) {
            continue;
        }
        tokens.push(m[3] ? { p: m[3] } : { w: m[1] ?? m[2] ?? m[4] });
    }
    const out = [];
    const ctx = [];
    let cur = [];
    for (const t of tokens) {
        if (t.p === undefined) {
            cur.push(t.w);
        } else if (t.p === ";") {
            if (cur.length) {
                out.push({ name: cur[0], args: cur.slice(1), ctx: [...ctx] });
            }
            cur = [];
        } else if (t.p === "{") {
            out.push({ name: cur[0], args: cur.slice(1), ctx: [...ctx], block: true });
            ctx.push(cur[0]);
            cur = [];
        } else {
            ctx.pop();
            cur = [];
        }
    }
    return out;
}

// --- the image build files ----------------------------------------------

export function readDockerfile(repo, which) {
    const text = fs.readFileSync(path.join(repo, "k8s/images", which, "Dockerfile"), "utf8")
        .replace(/\\\n/g, " ");
    const args = {};
    const stages = [];
    let user = null;
    for (const raw of text.split("\n")) {
        const line = raw.trim();
        let m;
        if ((m = /^ARG (\w+)=(\S+)/.exec(line)) && stages.length === 0) {
            args[m[1]] = m[2];
        } else if ((m = /^FROM (\S+)/i.exec(line))) {
            stages.push({ from: m[1].replace(/\$\{(\w+)\}/g, (_, a) => args[a] ?? ""), run: "" });
            user = null;
        } else if ((m = /^RUN (.*)/.exec(line)) && stages.length) {
            stages.at(-1).run += " " + m[1].replace(/\s+/g, " ");
        } else if ((m = /^USER (\S+)/.exec(line))) {
            user = m[1];
        }
    }
    const uid = user && /^\d+(:\d+)?$/.test(user) ? Number(user.split(":")[0]) : NaN;
    return { stages, user, uid };
}

// --- helpers ----------------------------------------------------------------

function matches(selector, labels) {
    const ml = selector?.matchLabels || {};
    const keys = Object.keys(ml);
    if (keys.length === 0 && !(selector?.matchExpressions || []).length) {
        return null; // empty: selects everything
    }
    if (!keys.every((k) => labels?.[k] === ml[k])) {
        return false;
    }
    for (const e of selector?.matchExpressions || []) {
        const v = labels?.[e.key];
        const ok = e.operator === "In" ? (e.values || []).includes(v)
            : e.operator === "NotIn" ? !(e.values || []).includes(v)
                : e.operator === "Exists" ? v !== undefined : v === undefined;
        if (!ok) {
            return false;
        }
    }
    return true;
}

const UNITS = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, m: 1e-3, "": 1 };
function quantity(q) {
    const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|K|M|G|T|m)?$/.exec(String(q));
    return m ? Number(m[1]) * UNITS[m[2] || ""] : NaN;
}

function under(p, dir) {
    return p === dir || p.startsWith(dir.replace(/\/$/, "") + "/");
}

function portOk(p) {
    return Number.isInteger(p) && p >= 1 && p <= 65535;
}

// --- the rules --------------------------------------------------------------

export function policy(objects, { repo }) {
    const errors = [];
    const err = (rule, msg) => errors.push(`${rule}: ${msg}`);
    const of = (kind) => objects.filter((o) => o.kind === kind);
    const named = (kind, name) => of(kind).find((o) => o.metadata?.name === name);
    const id = (o) => `${o.kind}/${o.metadata?.name}`;

    const workloads = [...of("Deployment"), ...of("Job")].map((o) => ({
        o, id: id(o), spec: o.spec?.template?.spec || {}, labels: o.spec?.template?.metadata?.labels || {},
    }));
    const containers = (w) => [...(w.spec.initContainers || []), ...(w.spec.containers || [])];
    const byImage = (re) => of("Deployment").find((d) =>
        (d.spec?.template?.spec?.containers || []).some((c) => re.test(String(c.image))));
    const gateway = byImage(GATEWAY_IMAGE);
    const worker = byImage(WORKER_IMAGE);
    const gwC = gateway?.spec?.template?.spec?.containers?.find((c) => GATEWAY_IMAGE.test(String(c.image)));
    const wkC = worker?.spec?.template?.spec?.containers?.find((c) => WORKER_IMAGE.test(String(c.image)));
    const podLabels = (d) => d?.spec?.template?.metadata?.labels || {};
    const hasRoute = of("HTTPRoute").length > 0;

    // required objects
    if (!gateway) {
        err("objects", "no Deployment runs the omni-gateway image");
    }
    if (!worker) {
        err("objects", "no Deployment runs the omni-worker image");
    }
    for (const k of ["Service", "NetworkPolicy", "Job", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ConfigMap"]) {
        if (of(k).length === 0) {
            err("objects", `no ${k}`);
        }
    }

    // images: a tag or a digest, never latest; the pod's uid is the image's
    const uids = { gateway: readDockerfile(repo, "gateway").uid, worker: readDockerfile(repo, "worker").uid };
    for (const w of workloads) {
        for (const c of containers(w)) {
            const img = String(c.image || "");
            const tag = /@sha256:[0-9a-f]{64}$/.test(img) ? "digest" : (/:([\w.-]+)$/.exec(img.replace(/^[^/]*\//, "")) || [])[1];
            if (!tag) {
                err("image", `${w.id} ${c.name}: ${img} has no tag or digest`);
            } else if (tag === "latest") {
                err("image", `${w.id} ${c.name}: ${img} uses :latest`);
            }
            const which = GATEWAY_IMAGE.test(img) ? "gateway" : WORKER_IMAGE.test(img) ? "worker" : null;
            const user = c.securityContext?.runAsUser ?? w.spec.securityContext?.runAsUser;
            if (which && user !== uids[which]) {
                err("image-user", `${w.id} ${c.name}: runAsUser ${user} is not the image's USER ${uids[which]}`);
            }
        }
    }

    // pods: non-root, read-only root, no capabilities, no token, no links
    for (const w of workloads) {
        const pod = w.spec;
        if (pod.automountServiceAccountToken !== false) {
            err("sa-token", `${w.id}: automountServiceAccountToken must be false (nothing here talks to the API)`);
        }
        if (pod.enableServiceLinks !== false) {
            err("service-links", `${w.id}: enableServiceLinks must be false (the worker reads OMNI_* from its environment)`);
        }
        if (pod.hostNetwork || pod.hostPID || pod.hostIPC) {
            err("host", `${w.id}: host namespaces`);
        }
        for (const c of containers(w)) {
            const sc = c.securityContext || {};
            const psc = pod.securityContext || {};
            const at = `${w.id} ${c.name}`;
            if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) {
                err("non-root", `${at}: runAsNonRoot is not true`);
            }
            const uid = sc.runAsUser ?? psc.runAsUser;
            if (uid === 0) {
                err("non-root", `${at}: runAsUser 0`);
            }
            if (sc.readOnlyRootFilesystem !== true) {
                err("read-only-root", `${at}: readOnlyRootFilesystem is not true`);
            }
            if (!(sc.capabilities?.drop || []).includes("ALL")) {
                err("capabilities", `${at}: capabilities.drop does not hold ALL`);
            }
            if ((sc.capabilities?.add || []).length) {
                err("capabilities", `${at}: adds capabilities ${sc.capabilities.add.join(",")}`);
            }
            if (sc.privileged === true || sc.allowPrivilegeEscalation !== false) {
                err("privilege", `${at}: privileged, or allowPrivilegeEscalation not false`);
            }
            const sp = (sc.seccompProfile ?? psc.seccompProfile)?.type;
            if (sp !== "RuntimeDefault" && sp !== "Localhost") {
                err("seccomp", `${at}: seccompProfile is ${sp ?? "unset"}`);
            }
            // requests and a memory limit
            const req = c.resources?.requests || {};
            const lim = c.resources?.limits || {};
            for (const [k, v] of [["requests.cpu", req.cpu], ["requests.memory", req.memory], ["limits.memory", lim.memory]]) {
                if (v === undefined) {
                    err("resources", `${at}: no ${k}`);
                }
            }
            if (quantity(req.memory) > quantity(lim.memory)) {
                err("resources", `${at}: requests.memory ${req.memory} > limits.memory ${lim.memory}`);
            }
            // ports a non-root process can bind
            for (const p of c.ports || []) {
                if (!portOk(p.containerPort) || p.containerPort < 1024) {
                    err("ports", `${at}: containerPort ${p.containerPort} (a non-root process binds 1024-65535)`);
                }
            }
            // files: mounted directories only
            for (const m of c.volumeMounts || []) {
                if (m.subPath !== undefined || m.subPathExpr !== undefined) {
                    err("subpath", `${at}: ${m.mountPath} uses subPath (a subPath mount never sees an update)`);
                }
                if (!(pod.volumes || []).some((v) => v.name === m.name)) {
                    err("volumes", `${at}: mount ${m.mountPath}: no volume ${m.name}`);
                }
            }
            // secrets never as literal values
            for (const e of c.env || []) {
                if (e.value !== undefined && /SECRET|PASSWORD|PASSWD|TOKEN|PRIVATE/i.test(e.name) &&
                    !String(e.value).startsWith("/")) {
                    err("secret-env", `${at}: ${e.name} has a literal value: take it from a Secret`);
                }
                if (e.value !== undefined && /:\/\/[^/@\s:]+:[^/@\s]+@/.test(String(e.value))) {
                    err("secret-env", `${at}: ${e.name} holds a URL with a password`);
                }
                const ref = e.valueFrom?.secretKeyRef || e.valueFrom?.configMapKeyRef;
                if (ref) {
                    checkRef(e.valueFrom.secretKeyRef ? "Secret" : "ConfigMap", ref.name, [ref.key], `${at} env ${e.name}`);
                }
            }
            for (const ef of c.envFrom || []) {
                if (ef.secretRef) {
                    err("secret-env", `${at}: envFrom a Secret: mount it, or name each key`);
                }
                if (ef.configMapRef) {
                    checkRef("ConfigMap", ef.configMapRef.name, [], `${at} envFrom`);
                }
            }
        }
        for (const v of pod.volumes || []) {
            if (v.hostPath) {
                err("volumes", `${w.id}: hostPath volume ${v.name}`);
            }
            if (v.configMap) {
                checkRef("ConfigMap", v.configMap.name, (v.configMap.items || []).map((i) => i.key), `${w.id} volume ${v.name}`);
            }
            if (v.secret && ((v.secret.defaultMode ?? 0o644) & 0o007) !== 0) {
                err("secret-mode", `${w.id} volume ${v.name}: Secret files readable by others (defaultMode ${(v.secret.defaultMode ?? 0o644).toString(8)})`);
            }
            if (v.secret) {
                checkRef("Secret", v.secret.secretName, (v.secret.items || []).map((i) => i.key), `${w.id} volume ${v.name}`);
            }
        }
    }

    function checkRef(kind, name, keys, at) {
        const o = named(kind, name);
        let have;
        if (o) {
            have = [...Object.keys(o.data || {}), ...Object.keys(o.stringData || {}), ...Object.keys(o.binaryData || {})];
        } else if (kind === "Secret" && EXTERNAL_SECRETS[name]) {
            have = EXTERNAL_SECRETS[name];
        } else {
            err("references", `${at}: no ${kind} ${name}`);
            return;
        }
        for (const k of keys) {
            if (!have.includes(k)) {
                err("references", `${at}: ${kind} ${name} has no key ${k}`);
            }
        }
    }

    // no password in a ConfigMap
    for (const cm of of("ConfigMap")) {
        for (const [k, v] of Object.entries(cm.data || {})) {
            const s = String(v).replace(/password=@REDIS_PASSWORD@/g, "");
            if (/\bpassword=[^\s;@]/.test(s) || /:\/\/[^/@\s:]+:[^/@\s]+@/.test(s) || /PRIVATE KEY-----/.test(s)) {
                err("configmap-secret", `ConfigMap/${cm.metadata.name} ${k}: holds a password or a private key`);
            }
        }
    }

    // selectors match labels
    for (const d of of("Deployment")) {
        if (matches(d.spec?.selector, podLabels(d)) !== true) {
            err("selectors", `${id(d)}: spec.selector does not match its pod labels`);
        }
    }
    const podsOf = (sel) => of("Deployment").filter((d) => matches(sel, podLabels(d)) === true);

    // Services: select pods, target their ports, ports in range
    for (const s of of("Service")) {
        const sel = { matchLabels: s.spec?.selector || {} };
        const pods = podsOf(sel);
        if (!Object.keys(sel.matchLabels).length || pods.length === 0) {
            err("selectors", `${id(s)}: selector ${JSON.stringify(s.spec?.selector)} matches no pods`);
        }
        for (const p of s.spec?.ports || []) {
            if (!portOk(p.port)) {
                err("ports", `${id(s)}: port ${p.port} out of 1-65535`);
            }
            const tp = p.targetPort ?? p.port;
            for (const d of pods) {
                const cps = d.spec.template.spec.containers.flatMap((c) => c.ports || []);
                if (!cps.some((cp) => cp.name === tp || cp.containerPort === tp)) {
                    err("ports", `${id(s)}: targetPort ${tp} is no container port of ${id(d)}`);
                }
            }
        }
        const type = s.spec?.type || "ClusterIP";
        if (s.spec?.externalTrafficPolicy && !["LoadBalancer", "NodePort"].includes(type)) {
            err("services", `${id(s)}: externalTrafficPolicy on a ${type} Service`);
        }
    }
    const svcFor = (d) => of("Service").filter((s) => matches({ matchLabels: s.spec?.selector || {} }, podLabels(d)) === true);
    // the gateway's publisher port (nchan: the workers' events), by name
    const eventsPort = (gwC?.ports || []).find((p) => p.name === "events");
    const isEvents = (p) => eventsPort !== undefined &&
        ((p.targetPort ?? p.port) === eventsPort.name || (p.targetPort ?? p.port) === eventsPort.containerPort);
    if (gateway) {
        const want = hasRoute ? "ClusterIP" : "LoadBalancer";
        const front = svcFor(gateway).filter((s) => (s.spec?.ports || []).some((p) => !isEvents(p)));
        if (!front.some((s) => (s.spec?.type || "ClusterIP") === want)) {
            err("services", `no ${want} Service in front of the gateway${hasRoute ? " (behind an HTTPRoute)" : ""}`);
        }
    }
    if (worker) {
        const ss = svcFor(worker);
        if (ss.length === 0 || ss.some((s) => (s.spec?.type || "ClusterIP") !== "ClusterIP")) {
            err("services", "the worker must be behind ClusterIP Services only");
        }
    }

    // the worker admits gateway pods only
    if (worker) {
        const nps = of("NetworkPolicy").filter((n) => matches(n.spec?.podSelector, podLabels(worker)) !== false);
        const wport = (wkC?.ports || []).map((p) => p.containerPort);
        if (!nps.some((n) => (n.spec?.policyTypes || ["Ingress"]).includes("Ingress"))) {
            err("network-policy", "no NetworkPolicy restricts ingress to the worker");
        }
        const others = of("Deployment").filter((d) => d !== gateway).map(podLabels);
        for (const n of nps) {
            for (const [i, rule] of (n.spec?.ingress || []).entries()) {
                const at = `${id(n)} ingress[${i}]`;
                if (!rule.from || rule.from.length === 0) {
                    err("network-policy", `${at}: admits every source`);
                }
                for (const peer of rule.from || []) {
                    if (peer.ipBlock || peer.namespaceSelector || !peer.podSelector) {
                        err("network-policy", `${at}: a peer other than gateway pods of this namespace`);
                    } else if (!gateway || matches(peer.podSelector, podLabels(gateway)) !== true ||
                        others.some((l) => matches(peer.podSelector, l) !== false)) {
                        err("network-policy", `${at}: podSelector ${JSON.stringify(peer.podSelector)} is not the gateway pods alone`);
                    }
                }
                for (const p of rule.ports || [{}]) {
                    if (!wport.includes(p.port) && !(wkC?.ports || []).some((cp) => cp.name === p.port)) {
                        err("network-policy", `${at}: port ${p.port ?? "(all)"} is not the worker's`);
                    }
                    if (p.port !== undefined && typeof p.port === "number" && !portOk(p.port)) {
                        err("ports", `${at}: port ${p.port} out of range`);
                    }
                }
            }
        }
    }

    // events: the workers publish to the gateways' publisher port through
    // a ClusterIP Service, and only worker pods may reach that port
    if (gateway && worker) {
        const pub = (wkC?.env || []).find((e) => e.name === "OMNI_EVENTS_PUBLISH")?.value;
        if (!eventsPort) {
            err("events", "the gateway container has no port named events (nchan's publisher)");
        } else if (!pub) {
            err("events", "the worker has no OMNI_EVENTS_PUBLISH: nothing reaches /events and /ws");
        } else {
            const [host, port] = String(pub).split(":");
            const svc = named("Service", host.split(".")[0]);
            const sp = (svc?.spec?.ports || []).find((p) => p.port === Number(port));
            if (!svc || !sp || matches({ matchLabels: svc.spec?.selector || {} }, podLabels(gateway)) !== true ||
                !isEvents(sp)) {
                err("events", `the worker's OMNI_EVENTS_PUBLISH ${pub}: no Service port to the gateway's events port`);
            }
        }
        for (const s of svcFor(gateway)) {
            if ((s.spec?.type || "ClusterIP") !== "ClusterIP" && (s.spec?.ports || []).some(isEvents)) {
                err("events", `${id(s)}: the publisher port on a ${s.spec.type} Service (cluster only)`);
            }
        }
        const gnps = of("NetworkPolicy").filter((n) => matches(n.spec?.podSelector, podLabels(gateway)) !== false &&
            (n.spec?.policyTypes || ["Ingress"]).includes("Ingress"));
        if (eventsPort && gnps.length === 0) {
            err("network-policy", "no NetworkPolicy restricts ingress to the gateway's events port");
        }
        const notWorker = of("Deployment").filter((d) => d !== worker).map(podLabels);
        for (const n of gnps) {
            for (const [i, rule] of (n.spec?.ingress || []).entries()) {
                const at = `${id(n)} ingress[${i}]`;
                const admits = (rule.ports || [{}]).some((p) => p.port === undefined ||
                    p.port === eventsPort?.containerPort || p.port === eventsPort?.name);
                if (!admits) {
                    continue;
                }
                if (!rule.from || rule.from.length === 0) {
                    err("network-policy", `${at}: admits every source to the events port`);
                }
                for (const peer of rule.from || []) {
                    if (peer.ipBlock || peer.namespaceSelector || !peer.podSelector ||
                        matches(peer.podSelector, podLabels(worker)) !== true ||
                        notWorker.some((l) => matches(peer.podSelector, l) !== false)) {
                        err("network-policy", `${at}: the events port admits more than the worker pods`);
                    }
                }
            }
        }
    }

    // HPA and PDB for both Deployments
    for (const d of [gateway, worker].filter(Boolean)) {
        const hpas = of("HorizontalPodAutoscaler").filter((h) =>
            h.spec?.scaleTargetRef?.kind === "Deployment" && h.spec?.scaleTargetRef?.name === d.metadata.name);
        if (hpas.length !== 1) {
            err("hpa", `${id(d)}: ${hpas.length} HorizontalPodAutoscalers (want 1)`);
        }
        let min = 1;
        for (const h of hpas) {
            min = h.spec.minReplicas ?? 1;
            const max = h.spec.maxReplicas;
            if (!(Number.isInteger(min) && Number.isInteger(max) && min >= 1 && min <= max)) {
                err("hpa", `${id(h)}: minReplicas ${min} / maxReplicas ${max}: want 1 <= min <= max`);
            }
            const r = d.spec.replicas;
            if (r !== undefined && Number.isInteger(r) && (r < min || r > max)) {
                err("hpa", `${id(d)}: replicas ${r} outside the HPA's ${min}..${max}`);
            }
        }
        const pdbs = of("PodDisruptionBudget").filter((p) => matches(p.spec?.selector, podLabels(d)) === true);
        if (pdbs.length !== 1) {
            err("pdb", `${id(d)}: ${pdbs.length} PodDisruptionBudgets select its pods (want 1)`);
        }
        for (const p of pdbs) {
            const mu = p.spec.maxUnavailable;
            const ma = p.spec.minAvailable;
            const allows = (Number.isInteger(mu) && mu >= 1) || (typeof mu === "string" && parseInt(mu, 10) > 0) ||
                (Number.isInteger(ma) && ma < min);
            if (!allows) {
                err("pdb", `${id(p)}: allows no disruption with ${min} pod(s) (a node could never drain)`);
            }
        }
    }
    for (const h of of("HorizontalPodAutoscaler")) {
        if (!named(h.spec?.scaleTargetRef?.kind, h.spec?.scaleTargetRef?.name)) {
            err("hpa", `${id(h)}: target ${h.spec?.scaleTargetRef?.kind}/${h.spec?.scaleTargetRef?.name} does not exist`);
        }
    }
    for (const p of of("PodDisruptionBudget")) {
        if (podsOf(p.spec?.selector).length === 0) {
            err("selectors", `${id(p)}: selects no pods`);
        }
    }

    // probes
    const probeOk = (c, pr) => {
        const port = pr?.httpGet?.port ?? pr?.tcpSocket?.port;
        return (c.ports || []).some((p) => p.name === port || p.containerPort === port);
    };
    for (const d of of("Deployment")) {
        for (const c of d.spec?.template?.spec?.containers || []) {
            for (const k of ["livenessProbe", "readinessProbe"]) {
                if (!c[k]) {
                    err("probes", `${id(d)} ${c.name}: no ${k}`);
                } else if (!probeOk(c, c[k])) {
                    err("probes", `${id(d)} ${c.name}: ${k} targets no port of the container`);
                }
            }
        }
    }
    if (wkC) {
        if (wkC.livenessProbe?.httpGet?.path !== "/health/live") {
            err("probes", "the worker's liveness probe is not GET /health/live (no I/O)");
        }
        if (wkC.readinessProbe?.httpGet?.path !== "/health") {
            err("probes", "the worker's readiness probe is not GET /health (Postgres and Redis)");
        }
    }
    if (gwC && !["/health/live", "/health"].includes(gwC.readinessProbe?.httpGet?.path)) {
        err("probes", "the gateway's readiness probe is not GET /health/live or /health");
    }

    // mounts of a container: the volume behind a path
    const volOf = (d, c, p) => {
        const m = mountFor(c, p);
        return m && (d.spec.template.spec.volumes || []).find((v) => v.name === m.name);
    };
    const envOf = (c, n) => (c.env || []).find((e) => e.name === n);

    // the worker: the gateway's secret and the signing key from Secrets,
    // its JWKS in an emptyDir
    if (wkC) {
        if (envOf(wkC, "OMNI_GATEWAY_SECRET")) {
            err("gateway-secret", "the worker sets OMNI_GATEWAY_SECRET: use OMNI_GATEWAY_SECRET_FILE from a Secret");
        }
        const f = envOf(wkC, "OMNI_GATEWAY_SECRET_FILE")?.value;
        const v = f && volOf(worker, wkC, f);
        if (!v?.secret) {
            err("gateway-secret", `the worker's OMNI_GATEWAY_SECRET_FILE (${f}) is not in a mounted Secret`);
        }
        const k = envOf(wkC, "OMNI_JWT_PRIVATE_KEY")?.value;
        if (!k || !volOf(worker, wkC, k)?.secret) {
            err("signing-key", `the worker's OMNI_JWT_PRIVATE_KEY (${k}) is not in a mounted Secret`);
        }
        const j = envOf(wkC, "OMNI_JWKS_FILE")?.value;
        if (j && !volOf(worker, wkC, j)?.emptyDir) {
            err("writable", `the worker's OMNI_JWKS_FILE (${j}) is not in an emptyDir (the root is read-only)`);
        }
        const l = envOf(wkC, "OMNI_LISTEN")?.value || "";
        const lp = Number(l.split(":").pop());
        if (!(wkC.ports || []).some((p) => p.containerPort === lp)) {
            err("ports", `the worker's OMNI_LISTEN ${l} is not its containerPort`);
        }
        const cm = (wkC.envFrom || []).map((e) => named("ConfigMap", e.configMapRef?.name)).find(Boolean);
        const url = cm?.data?.OMNI_DATABASE_URL || "";
        if (!/target_session_attrs=read-write/.test(url)) {
            err("postgres", `OMNI_DATABASE_URL (${url}) lacks target_session_attrs=read-write`);
        }
    }

    // the gateway: nginx.conf from a ConfigMap, writes in emptyDirs only,
    // listens on its container ports, proxies to the worker's Service
    if (gwC) {
        const spec = gateway.spec.template.spec;
        const confPath = envOf(gwC, "OMNI_NGINX_CONF")?.value || "/etc/omni/nginx/nginx.conf";
        const cv = volOf(gateway, gwC, confPath);
        const cm = cv?.configMap && named("ConfigMap", cv.configMap.name);
        const conf = cm?.data?.[path.basename(confPath)];
        if (!conf) {
            err("nginx-conf", `the gateway's ${confPath} is not a key of a mounted ConfigMap`);
        } else {
            const dirs = parseNginx(conf);
            const where = (p) => volOf(gateway, gwC, p);
            const prefix = envOf(gwC, "OMNI_NGINX_PREFIX")?.value || "/run/omni-gateway";
            if (!where(prefix)?.emptyDir) {
                err("writable", `the gateway's nginx prefix ${prefix} is not an emptyDir`);
            }
            for (const d of dirs) {
                const writes = ["pid", "error_log", "access_log"].includes(d.name) || /_temp_path$/.test(d.name);
                const p = d.args[0];
                if (writes && p?.startsWith("/") && !where(p)?.emptyDir && !["/dev/stderr", "/dev/stdout"].includes(p)) {
                    err("writable", `nginx ${d.name} ${p}: not in an emptyDir (the root is read-only)`);
                }
                // every file nginx reads is in the image or a mount (the
                // image carries the admin page: k8s/images/gateway)
                for (const a of d.args) {
                    const f = /^(?:file=)?(\/[\w./-]+)$/.exec(a)?.[1];
                    if (f && d.name !== "location" && !f.startsWith("/_omni") && d.name !== "return" &&
                        d.name !== "try_files" && f !== "/usr/share/omni/ui" &&
                        f !== "/usr/lib/nginx/modules/ngx_http_omni_module.so" &&
                        f !== "/usr/lib/nginx/modules/ngx_nchan_module.so" && !where(f) &&
                        !["/dev/stderr", "/dev/stdout"].includes(f)) {
                        err("nginx-paths", `nginx ${d.name} ${f}: in no mount of the gateway container`);
                    }
                }
                if (d.name === "listen") {
                    const port = Number(String(d.args[0]).split(":").pop());
                    if (!(gwC.ports || []).some((cp) => cp.containerPort === port) || port < 1024) {
                        err("ports", `nginx listens on ${port}: not a container port >= 1024 of the gateway`);
                    }
                }
                if (d.name === "server" && d.ctx.at(-1) === "upstream") {
                    const [host, port] = String(d.args[0]).split(":");
                    const svc = named("Service", host.split(".")[0]);
                    if (!svc || !(svc.spec?.ports || []).some((p) => p.port === Number(port))) {
                        err("upstream", `nginx upstream ${d.args[0]}: no Service ${host.split(".")[0]} with port ${port}`);
                    } else if (!worker || matches({ matchLabels: svc.spec.selector }, podLabels(worker)) !== true) {
                        err("upstream", `nginx upstream ${d.args[0]}: the Service does not select the worker pods`);
                    }
                }
                if (d.name === "include" && /gateway-secret/.test(d.args[0])) {
                    const gv = where(d.args[0]);
                    const wv = wkC && volOf(worker, wkC, envOf(wkC, "OMNI_GATEWAY_SECRET_FILE")?.value || "");
                    if (!gv?.secret) {
                        err("gateway-secret", `nginx include ${d.args[0]}: not in a mounted Secret`);
                    } else if (wv?.secret && wv.secret.secretName !== gv.secret.secretName) {
                        err("gateway-secret", `the gateway (${gv.secret.secretName}) and the worker ` +
                            `(${wv.secret.secretName}) take the shared secret from different Secrets`);
                    }
                }
                if (d.name === "omni_jwt_key") {
                    const f = d.args.find((a) => a.startsWith("file="))?.slice(5);
                    if (!f || !where(f)?.secret) {
                        err("signing-key", `nginx omni_jwt_key ${f}: not in a mounted Secret`);
                    }
                }
                if (d.name === "omni_redis") {
                    err("configmap-secret", "nginx.conf holds omni_redis (its password): include it from the prefix");
                }
            }
            const secrets = (spec.volumes || []).filter((v) => v.secret);
            for (const v of secrets) {
                for (const it of v.secret.items || [{ key: "(every key)" }]) {
                    if (/private/i.test(it.key) || (!v.secret.items && v.secret.secretName === "omni-jwt")) {
                        err("signing-key", `the gateway mounts ${v.secret.secretName} ${it.key}: only the public key may reach it`);
                    }
                }
            }
        }
    }

    // the migration Job: the worker's image, `migrate up`, bounded retries
    const jobs = of("Job");
    if (jobs.length && !jobs.some((j) => {
        const c = j.spec?.template?.spec?.containers?.[0] || {};
        return WORKER_IMAGE.test(String(c.image)) && [...(c.command || []), ...(c.args || [])].join(" ").endsWith("migrate up");
    })) {
        err("migrate", "no Job runs `omni-worker migrate up` (advisory lock: safe to run twice)");
    }
    for (const j of jobs) {
        if (!["OnFailure", "Never"].includes(j.spec?.template?.spec?.restartPolicy)) {
            err("migrate", `${id(j)}: restartPolicy must be OnFailure or Never`);
        }
        if (j.spec?.backoffLimit === undefined || j.spec?.activeDeadlineSeconds === undefined) {
            err("migrate", `${id(j)}: needs backoffLimit and activeDeadlineSeconds`);
        }
        if (wkC && String(j.spec?.template?.spec?.containers?.[0]?.image) !== String(wkC.image)) {
            err("migrate", `${id(j)}: runs another image than the worker (${wkC.image})`);
        }
    }

    // HTTPRoutes reach an existing Service port
    for (const r of of("HTTPRoute")) {
        if (!(r.spec?.parentRefs || []).length) {
            err("httproute", `${id(r)}: no parentRefs`);
        }
        for (const rule of r.spec?.rules || []) {
            for (const b of rule.backendRefs || []) {
                const s = (b.kind ?? "Service") === "Service" && named("Service", b.name);
                if (!s || !(s.spec?.ports || []).some((p) => p.port === b.port)) {
                    err("httproute", `${id(r)}: backend ${b.name}:${b.port} is no Service port`);
                } else if (!gateway || matches({ matchLabels: s.spec.selector }, podLabels(gateway)) !== true) {
                    err("httproute", `${id(r)}: backend ${b.name} is not the gateway`);
                }
            }
        }
    }
    return errors;
}

// the volumeMount a path is under (longest mount path first)
export function mountFor(c, p) {
    return [...(c.volumeMounts || [])].sort((a, b) => b.mountPath.length - a.mountPath.length)
        .find((m) => under(p, m.mountPath));
}
