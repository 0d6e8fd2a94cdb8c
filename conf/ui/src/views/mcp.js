import { api, get, isAdmin, hasRank } from "../api.js";
import { h, clear, field, showFieldError, table, notice, fmtTime, fmtNum } from "../dom.js";

const BASE = "/api/v1/mcp/servers";

// the server form (add, or edit when `server` is given); admins only
function serverForm(server, done) {
    const f = {
        name: field("Name", h("input", { name: "name", required: true,
            value: server ? server.name : "" }),
        "a-z, 0-9 and -, up to 32 characters"),
        url: field("URL", h("input", { name: "url", type: "url", required: true,
            value: server ? server.url : "" }), "Streamable HTTP endpoint"),
        timeout_ms: field("Timeout (ms)", h("input", { name: "timeout_ms",
            type: "number", min: 1, value: server ? server.timeout_ms : "" })),
        roles: field("Roles", h("input", { name: "roles",
            value: server && server.roles ? server.roles.join(", ") : "" }),
        "comma-separated; empty: every role"),
    };
    const enabled = h("input", { type: "checkbox", name: "enabled",
        id: "mcp-enabled-" + (server ? server.id : "new"),
        checked: server ? server.enabled : true });
    const status = h("div", {});
    // the API checks every field and names the one it refuses
    const form = h("form", { class: "card form", novalidate: true,
        "aria-label": server ? `Edit ${server.name}` : "Add MCP server" },
    h("h4", {}, server ? `Edit ${server.name}` : "Add an MCP server"),
    f.name.wrap, f.url.wrap, f.timeout_ms.wrap, f.roles.wrap,
    h("div", { class: "field check" }, enabled,
        h("label", { for: enabled.id }, "Enabled")),
    h("div", { class: "actions" },
        h("button", { type: "submit" }, server ? "Save" : "Add server"),
        h("button", { type: "button", class: "secondary",
            onclick: () => done(false) }, "Cancel")),
    status);
    form.addEventListener("submit", async (e) => {
        e.preventDefault();
        for (const x of Object.values(f)) showFieldError(x, null);
        status.replaceChildren();
        const body = { name: f.name.input.value.trim(),
            url: f.url.input.value.trim(), enabled: enabled.checked,
            roles: f.roles.input.value.split(",").map((s) => s.trim())
                .filter(Boolean) };
        if (!server) body.transport = "streamable-http";
        if (f.timeout_ms.input.value !== "") {
            body.timeout_ms = Number(f.timeout_ms.input.value);
        }
        try {
            if (server) await api("PATCH", `${BASE}/${server.id}`, body);
            else await api("POST", BASE, body);
            done(true);
        } catch (err) {
            const at = err.field && f[err.field.split(".")[0]];
            if (at) showFieldError(at, err.message);
            else status.append(notice("error", err.message));
        }
    });
    return form;
}

function toolsPanel(server, reload) {
    const box = h("div", { class: "tools", "aria-live": "polite" },
        h("p", {}, "Loading tools…"));
    get(`${BASE}/${server.id}/tools`).then((r) => {
        const rows = r.items.map((t) => h("tr", { dataset: { tool: t.name,
            status: t.status } },
        h("td", {}, h("code", {}, t.name)),
        h("td", {}, t.description || ""),
        h("td", {}, h("span", { class: `badge ${t.status}` }, t.status)),
        h("td", {}, t.status === "quarantined" && isAdmin()
            ? h("button", { type: "button", class: "approve",
                "aria-label": `Approve ${t.name}`,
                onclick: async (e) => {
                    const button = e.currentTarget;
                    button.disabled = true;
                    try {
                        await api("POST", `${BASE}/${server.id}/tools/` +
                            `${encodeURIComponent(t.name)}/approve`, {});
                        reload();
                    } catch (err) {
                        button.disabled = false;
                        box.append(notice("error", err.message));
                    }
                } }, "Approve") : "")));
        clear(box, table(`Tools of ${server.name}`,
            ["Tool", "Description", "Status", ""], rows, "No tools."));
    }).catch((e) => clear(box, notice("error", e.message)));
    return box;
}

export function renderMcp(section) {
    const admin = isAdmin();
    const canProbe = hasRank("developer");
    const toolbar = h("div", { class: "toolbar" });
    const formBox = h("div", {});
    const list = h("div", {}, h("p", {}, "Loading…"));
    const breakersBox = h("div", {});
    section.append(toolbar, formBox, list,
        h("h3", {}, "Circuit breakers"), breakersBox);
    const open = new Set();
    let gone = false;

    function edit(server) {
        clear(formBox, serverForm(server, (changed) => {
            formBox.replaceChildren();
            if (changed) load();
        }));
        formBox.querySelector("input").focus();
    }

    if (admin) {
        toolbar.append(h("button", { type: "button", id: "mcp-add",
            onclick: () => edit(null) }, "Add server"));
    }

    async function load() {
        try {
            const [servers, breakers] = await Promise.all([
                get(`${BASE}?limit=500`), get("/api/v1/mcp/circuit-breakers")]);
            if (gone) return;
            const rows = [];
            for (const s of servers.items) {
                const health = s.health || {};
                const probeOut = h("span", { class: "probe" });
                rows.push(h("tr", { dataset: { server: s.name } },
                    h("th", { scope: "row" }, s.name),
                    h("td", { class: "url" }, s.url),
                    h("td", {}, s.enabled ? "enabled" : "disabled"),
                    h("td", {}, h("span", { class: `badge ${s.state}`,
                        dataset: { state: s.state } }, s.state || "closed")),
                    h("td", {}, health.interval_ms
                        ? `every ${fmtNum(health.interval_ms / 1000, 1)} s, ` +
                          `${health.failure_threshold} failures open`
                        : "—"),
                    h("td", { class: "actions" },
                        h("button", { type: "button", class: "secondary",
                            "aria-expanded": open.has(s.id) ? "true" : "false",
                            "aria-label": `Tools of ${s.name}`,
                            onclick: () => {
                                if (open.has(s.id)) open.delete(s.id);
                                else open.add(s.id);
                                load();
                            } }, "Tools"),
                        canProbe ? h("button", { type: "button",
                            class: "secondary", "aria-label": `Probe ${s.name}`,
                            onclick: async (e) => {
                                const button = e.currentTarget;
                                button.disabled = true;
                                try {
                                    const p = await api("POST",
                                        `${BASE}/${s.id}/health`, {});
                                    probeOut.textContent = p.ok
                                        ? `ok in ${fmtNum(p.latency_ms, 1)} ms`
                                        : `failed (${p.state})`;
                                } catch (err) {
                                    probeOut.textContent = err.message;
                                }
                                button.disabled = false;
                            } }, "Probe") : null,
                        admin ? h("button", { type: "button", class: "secondary",
                            "aria-label": `Edit ${s.name}`,
                            onclick: () => edit(s) }, "Edit") : null,
                        admin ? h("button", { type: "button", class: "danger",
                            "aria-label": `Delete ${s.name}`,
                            onclick: async () => {
                                if (!window.confirm(`Delete ${s.name}?`)) return;
                                try {
                                    await api("DELETE", `${BASE}/${s.id}`);
                                    load();
                                } catch (err) {
                                    list.prepend(notice("error", err.message));
                                }
                            } }, "Delete") : null,
                        probeOut)));
                if (open.has(s.id)) {
                    rows.push(h("tr", { class: "detail" },
                        h("td", { colspan: 6 }, toolsPanel(s, load))));
                }
            }
            clear(list, table("MCP servers", ["Name", "URL", "Enabled",
                "Breaker", "Health checks", "Actions"], rows,
            "No MCP servers registered."));
            clear(breakersBox, table("Circuit breakers", ["Server", "State",
                "Failures", "Opened", "Next probe"], breakers.items.map((b) =>
                h("tr", {}, h("td", {}, b.server),
                    h("td", {}, h("span", { class: `badge ${b.state}` }, b.state)),
                    h("td", {}, fmtNum(b.failures)), h("td", {}, fmtTime(b.opened_at)),
                    h("td", {}, fmtTime(b.next_probe_at)))),
            "No breaker has recorded a failure."));
        } catch (e) {
            if (!gone) clear(list, notice("error", e.message));
        }
    }

    load();
    const t = setInterval(() => {
        if (!formBox.childElementCount && !open.size) load();
    }, 10000);
    return () => {
        gone = true;
        clearInterval(t);
    };
}
