import { api, get, isAdmin } from "../api.js";
import { h, clear, field, showFieldError, notice, fmtTime } from "../dom.js";

// one input per member of the value, typed after its current value
function memberInput(path, value) {
    if (typeof value === "boolean") {
        const input = h("input", { type: "checkbox", name: path,
            checked: value, dataset: { kind: "boolean" } });
        return input;
    }
    if (typeof value === "number") {
        return h("input", { type: "number", step: "any", name: path,
            value: String(value), dataset: { kind: "number" } });
    }
    if (typeof value === "string") {
        const secret = /password|secret|token/.test(path);
        return h("input", { name: path, value, dataset: { kind: "string" },
            type: secret ? "password" : "text",
            autocomplete: secret ? "new-password" : "off" });
    }
    return h("input", { name: path, value: JSON.stringify(value),
        dataset: { kind: "json" }, class: "mono", autocomplete: "off" });
}

// the member's new value, or throws a message for its field
function read(input) {
    const kind = input.dataset.kind;
    if (kind === "boolean") return input.checked;
    if (kind === "string") return input.value;
    if (kind === "number") {
        if (input.value.trim() === "" || Number.isNaN(Number(input.value))) {
            throw new Error(`${input.name}: expected a number`);
        }
        return Number(input.value);
    }
    try {
        return JSON.parse(input.value);
    } catch {
        throw new Error(`${input.name}: not JSON`);
    }
}

function editor(item, onSaved) {
    const key = item.key;
    const fields = new Map();
    const isObject = item.value && typeof item.value === "object"
        && !Array.isArray(item.value);
    const members = isObject ? Object.entries(item.value) : [[null, item.value]];
    for (const [m, v] of members) {
        const path = m === null ? key : `${key}.${m}`;
        const input = memberInput(path, v);
        input.id = `cfg-${path.replace(/\./g, "-")}`;
        const f = field(m === null ? key : m, input);
        if (input.type === "checkbox") f.wrap.classList.add("check");
        fields.set(path, f);
    }
    const status = h("div", {});
    const form = h("form", { class: "config-form", novalidate: true,
        "aria-label": `Edit ${key}` },
    [...fields.values()].map((f) => f.wrap),
    h("div", { class: "actions" },
        h("button", { type: "submit", "aria-label": `Save ${key}` }, "Save")),
    status);
    form.addEventListener("submit", async (e) => {
        e.preventDefault();
        status.replaceChildren();
        for (const f of fields.values()) showFieldError(f, null);
        let value;
        try {
            if (isObject) {
                value = {};
                for (const [path, f] of fields) {
                    value[path.slice(key.length + 1)] = read(f.input);
                }
            } else {
                value = read(fields.get(key).input);
            }
        } catch (err) {
            const path = err.message.split(":")[0];
            showFieldError(fields.get(path), err.message);
            fields.get(path).input.focus();
            return;
        }
        try {
            const saved = await api("PUT",
                `/api/v1/config/${encodeURIComponent(key)}`, value);
            status.append(notice("info", `${key} saved.`));
            onSaved(saved);
        } catch (err) {
            const f = err.field && fields.get(err.field);
            if (f) {
                showFieldError(f, err.message);
                f.input.focus();
            } else {
                status.append(notice("error", err.message));
            }
        }
    });
    return form;
}

function readOnly(item) {
    const v = item.value;
    if (v && typeof v === "object" && !Array.isArray(v)) {
        return h("dl", { class: "values" }, Object.entries(v).map(([m, x]) => [
            h("dt", {}, m), h("dd", {}, typeof x === "string" ? x
                : JSON.stringify(x))]));
    }
    return h("p", {}, h("code", {}, JSON.stringify(v)));
}

export function renderConfig(section) {
    const admin = isAdmin();
    const list = h("div", {}, h("p", {}, "Loading…"));
    section.append(h("p", {}, admin
        ? "Each setting is checked by the API when you save it."
        : "Only admins change the configuration."), list);

    function card(item) {
        const meta = h("p", { class: "meta" }, `Updated ${fmtTime(item.updated_at)}`);
        const el = h("article", { class: "card", dataset: { config: item.key } },
            h("h3", {}, item.key),
            item.description ? h("p", { class: "hint" }, item.description) : null,
            admin ? editor(item, (saved) => {
                meta.textContent = `Updated ${fmtTime(saved.updated_at)}`;
            }) : readOnly(item),
            meta);
        return el;
    }

    get("/api/v1/config").then((r) => {
        clear(list, r.items.map(card));
    }).catch((e) => clear(list, notice("error", e.message)));
    return null;
}
