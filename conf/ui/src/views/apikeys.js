import { api, get, user } from "../api.js";
import { h, clear, field, showFieldError, table, notice, fmtTime } from "../dom.js";

const RANKS = ["viewer", "user", "developer", "admin"];

// every role manages its own keys (SPEC 12), up to its own role
export function renderApiKeys(section) {
    const mine = user().role;
    const roles = RANKS.slice(0, RANKS.indexOf(mine) + 1);
    const name = field("Name", h("input", { name: "name", required: true,
        maxlength: 100 }));
    const role = field("Role", h("select", { name: "role" },
        h("option", { value: "" }, `same as mine (${mine})`),
        roles.map((r) => h("option", { value: r }, r))));
    const expires = field("Expires", h("input", { name: "expires_at",
        type: "datetime-local" }), "empty: never");
    const status = h("div", {});
    const shown = h("div", {});
    const form = h("form", { class: "card form", novalidate: true, "aria-label": "Create API key" },
        h("h3", {}, "Create an API key"), name.wrap, role.wrap, expires.wrap,
        h("div", { class: "actions" },
            h("button", { type: "submit", id: "key-create" }, "Create key")),
        status);
    const list = h("div", { "aria-live": "polite" });
    section.append(shown, form, h("h3", {}, "My API keys"), list);

    form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const fields = { name, role, expires_at: expires };
        for (const x of Object.values(fields)) showFieldError(x, null);
        status.replaceChildren();
        const body = { name: name.input.value.trim() };
        if (role.input.value) body.role = role.input.value;
        if (expires.input.value) {
            const d = new Date(expires.input.value);
            if (Number.isNaN(d.getTime())) {
                showFieldError(expires, "expires_at: not a date and time");
                return;
            }
            body.expires_at = d.toISOString();
        }
        try {
            const k = await api("POST", "/api/v1/api-keys", body);
            form.reset();
            showOnce(k);
            load();
        } catch (err) {
            const at = err.field && fields[err.field];
            if (at) showFieldError(at, err.message);
            else status.append(notice("error", err.message));
        }
    });

    // the key exists only in this box: the API never returns it again
    function showOnce(k) {
        const input = h("input", { id: "new-key", readonly: true, value: k.key,
            class: "secret", spellcheck: "false" });
        const copied = h("span", { role: "status" });
        const box = h("div", { class: "card once", role: "region",
            "aria-label": "New API key" },
        h("h3", {}, `Key "${k.name}" created`),
        h("p", {}, h("strong", {}, "Copy it now: it is shown only once.")),
        h("div", { class: "field" },
            h("label", { for: "new-key" }, "API key"), input),
        h("div", { class: "actions" },
            h("button", { type: "button", class: "secondary", onclick: async () => {
                input.select();
                try {
                    await navigator.clipboard.writeText(k.key);
                    copied.textContent = "Copied.";
                } catch {
                    copied.textContent = "Select the key and copy it.";
                }
            } }, "Copy"),
            h("button", { type: "button", id: "key-done", onclick: () => {
                input.value = "";
                shown.replaceChildren();
                name.input.focus();
            } }, "Done"), copied));
        clear(shown, box);
        input.focus();
        input.select();
    }

    async function load() {
        try {
            const r = await get("/api/v1/api-keys?limit=500");
            clear(list, table("My API keys", ["Name", "Prefix", "Role",
                "Created", "Expires", ""], r.items.map((k) => h("tr",
                { dataset: { key: k.name } },
                h("th", { scope: "row" }, k.name),
                h("td", {}, h("code", {}, k.prefix)),
                h("td", {}, k.role),
                h("td", {}, fmtTime(k.created_at)),
                h("td", {}, k.expires_at ? fmtTime(k.expires_at) : "never"),
                h("td", {}, h("button", { type: "button", class: "danger",
                    "aria-label": `Delete key ${k.name}`, onclick: async () => {
                        if (!window.confirm(`Delete the key ${k.name}? ` +
                            "Clients using it stop working at once.")) return;
                        try {
                            await api("DELETE", `/api/v1/api-keys/${k.id}`);
                            load();
                        } catch (err) {
                            status.replaceChildren(notice("error", err.message));
                        }
                    } }, "Delete")))),
            "No API keys."));
        } catch (e) {
            clear(list, notice("error", e.message));
        }
    }
    load();
    return null;
}
