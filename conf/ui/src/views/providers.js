import { api, get, isAdmin } from "../api.js";
import { h, clear, field, showFieldError, table, notice, fmtNum, fmtTime } from "../dom.js";

const BASE = "/api/v1/llm/providers";

function providerForm(done) {
    const f = {
        name: field("Name", h("input", { name: "name", required: true })),
        type: field("Type", h("select", { name: "type" },
            h("option", { value: "openai" }, "openai (Chat Completions)"),
            h("option", { value: "anthropic" }, "anthropic (Messages)"))),
        base_url: field("Base URL", h("input", { name: "base_url", type: "url",
            required: true })),
        api_key_env: field("API key variable", h("input",
            { name: "api_key_env" }), "the worker's environment variable " +
            "holding the key (never the key itself)"),
        models: field("Models (JSON)", h("textarea", { name: "models", rows: 4 },
            '[{"name": "gpt-4o-mini", "context_window": 128000, ' +
            '"max_output_tokens": 4096, "price": {"input": 0.15, ' +
            '"output": 0.6, "cached": 0.075}}]'),
        "prices per million tokens"),
    };
    const status = h("div", {});
    const form = h("form", { class: "card form", novalidate: true, "aria-label": "Add provider" },
        h("h4", {}, "Add an LLM provider"),
        Object.values(f).map((x) => x.wrap),
        h("div", { class: "actions" },
            h("button", { type: "submit" }, "Add provider"),
            h("button", { type: "button", class: "secondary",
                onclick: () => done(false) }, "Cancel")),
        status);
    form.addEventListener("submit", async (e) => {
        e.preventDefault();
        for (const x of Object.values(f)) showFieldError(x, null);
        status.replaceChildren();
        let models;
        try {
            models = JSON.parse(f.models.input.value || "[]");
        } catch (err) {
            showFieldError(f.models, `models: not JSON (${err.message})`);
            return;
        }
        const body = { name: f.name.input.value.trim(),
            type: f.type.input.value, base_url: f.base_url.input.value.trim(),
            models };
        if (f.api_key_env.input.value.trim()) {
            body.api_key_env = f.api_key_env.input.value.trim();
        }
        try {
            await api("POST", BASE, body);
            done(true);
        } catch (err) {
            const at = err.field && f[err.field.split(/[.[]/)[0]];
            if (at) showFieldError(at, err.message);
            else status.append(notice("error", err.message));
        }
    });
    return form;
}

export function renderProviders(section) {
    if (!isAdmin()) {
        section.append(notice("info",
            "LLM providers are managed by admins. Your own usage is under Usage."));
        return null;
    }
    const formBox = h("div", {});
    const list = h("div", {}, h("p", {}, "Loading…"));
    section.append(h("div", { class: "toolbar" },
        h("button", { type: "button", id: "provider-add", onclick: () => {
            clear(formBox, providerForm((changed) => {
                formBox.replaceChildren();
                if (changed) load();
            }));
            formBox.querySelector("input").focus();
        } }, "Add provider")), formBox, list);

    async function load() {
        try {
            const r = await get(`${BASE}?limit=500`);
            clear(list, r.items.length ? r.items.map((p) => h("article",
                { class: "card", dataset: { provider: p.name } },
                h("h3", {}, p.name, " ", h("span", { class: "badge" }, p.type)),
                h("p", {}, h("code", {}, p.base_url),
                    p.api_key_env ? ` · key from $${p.api_key_env}` : "",
                    p.api_key_file ? ` · key from ${p.api_key_file}` : "",
                    ` · added ${fmtTime(p.created_at)}`),
                table(`Models of ${p.name}`, ["Model", "Context", "Max output",
                    "Input / M", "Output / M", "Cached / M"],
                (p.models || []).map((m) => h("tr", { dataset: { model: m.name } },
                    h("th", { scope: "row" }, m.name),
                    h("td", {}, fmtNum(m.context_window)),
                    h("td", {}, fmtNum(m.max_output_tokens)),
                    h("td", {}, fmtNum(m.price && m.price.input, 4)),
                    h("td", {}, fmtNum(m.price && m.price.output, 4)),
                    h("td", {}, fmtNum(m.price && m.price.cached, 4)))),
                "No models."))) : h("p", { class: "empty" },
                "No LLM providers configured."));
        } catch (e) {
            clear(list, notice("error", e.message));
        }
    }
    load();
    return null;
}
