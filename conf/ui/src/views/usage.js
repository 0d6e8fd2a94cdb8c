import { get, isAdmin } from "../api.js";
import { h, clear, field, table, notice, fmtNum } from "../dom.js";

const GROUPS = [["project", "Project"], ["user", "User"], ["model", "Model"],
    ["provider", "Provider"]];
const SPANS = [["1", "Last 24 hours"], ["7", "Last 7 days"], ["30", "Last 30 days"]];

export function renderUsage(section) {
    const group = field("Group by", h("select", { name: "group_by" },
        GROUPS.map(([v, l]) => h("option", { value: v }, l))));
    const span = field("Period", h("select", { name: "period" },
        SPANS.map(([v, l]) => h("option", { value: v }, l))));
    const out = h("div", { "aria-live": "polite" });
    section.append(
        h("p", {}, isAdmin() ? "LLM usage of every user."
            : "Your own LLM usage."),
        h("form", { class: "filters" }, group.wrap, span.wrap), out);

    async function load() {
        const g = group.input.value;
        const to = new Date();
        const from = new Date(to - Number(span.input.value) * 86400000);
        clear(out, h("p", {}, "Loading…"));
        try {
            const r = await get(`/api/v1/llm/usage?group_by=${g}` +
                `&from=${encodeURIComponent(from.toISOString())}` +
                `&to=${encodeURIComponent(to.toISOString())}`);
            const label = GROUPS.find((x) => x[0] === g)[1];
            clear(out, table(`LLM usage by ${label.toLowerCase()}`,
                [label, "Requests", "Input tokens", "Output tokens",
                    "Cached tokens", "Cost", "Errors"],
                r.items.map((it) => h("tr", { dataset: { key: it[g] ?? "" } },
                    h("th", { scope: "row" }, it[g] ?? "—"),
                    h("td", {}, fmtNum(it.requests)),
                    h("td", {}, fmtNum(it.input_tokens)),
                    h("td", {}, fmtNum(it.output_tokens)),
                    h("td", {}, fmtNum(it.cached_tokens)),
                    h("td", {}, fmtNum(it.cost, 6)),
                    h("td", {}, fmtNum(it.errors)))),
                "No LLM usage in this period."));
        } catch (e) {
            clear(out, notice("error", e.message));
        }
    }
    group.input.addEventListener("change", load);
    span.input.addEventListener("change", load);
    load();
    return null;
}
