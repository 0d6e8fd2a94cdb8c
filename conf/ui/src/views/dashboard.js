import { get } from "../api.js";
import { h, clear, notice, fmtNum } from "../dom.js";
import { lineChart } from "../charts.js";
import { feedList, feedState } from "./feed.js";

const PERIODS = [["today", "Today"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"]];
const STATS = [
    ["requests", "Requests", 0],
    ["errors", "Errors (5xx)", 0],
    ["client_errors", "Client errors (4xx)", 0],
    ["error_rate", "Error rate", 4],
    ["p50_ms", "Response time p50 (ms)", 2],
    ["p95_ms", "Response time p95 (ms)", 2],
    ["p99_ms", "Response time p99 (ms)", 2],
    ["cost", "Cost", 4],
    ["tokens", "Tokens", 0],
    ["active_mcp_servers", "Active MCP servers", 0],
    ["open_circuit_breakers", "Open circuit breakers", 0],
];

// the chart defaults (chart_settings) and refresh intervals, from config
async function settings() {
    const s = { chart: { cost_period: "today", queries_hours: 24,
        response_time_hours: 24 }, refresh: { stats: 5, charts: 30 } };
    try {
        const r = await get("/api/v1/config");
        for (const it of r.items) {
            if (it.key === "chart_settings") Object.assign(s.chart, it.value);
            if (it.key === "refresh_interval") Object.assign(s.refresh, it.value);
        }
    } catch {
        // the defaults above
    }
    return s;
}

function costHours(period) {
    if (period === "7d") return 168;
    if (period === "24h") return 24;
    const now = new Date();
    return Math.max(1, Math.ceil((now - Date.UTC(now.getUTCFullYear(),
        now.getUTCMonth(), now.getUTCDate())) / 3600000));
}

export function renderDashboard(section, { activity }) {
    const statsBox = h("div", { class: "stats" },
        h("p", {}, "Loading…"));
    const chartsBox = h("div", { class: "charts" });
    const feedBox = h("div", { class: "feed-box" });
    const stateBox = h("span", {});
    section.append(
        h("h3", {}, "Requests"), statsBox,
        h("h3", {}, "Charts"), chartsBox,
        h("h3", {}, "Recent activity ", stateBox), feedBox);

    const timers = [];
    let destroyers = [];
    let gone = false;

    async function loadStats() {
        try {
            const all = await Promise.all(PERIODS.map(([p]) =>
                get(`/api/v1/dashboard/stats?period=${p}`)));
            if (gone) return;
            clear(statsBox, h("div", { class: "table-wrap" }, h("table",
                { class: "stats-table" },
                h("caption", {}, "Gateway statistics by period"),
                h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Metric"),
                    PERIODS.map(([, label]) => h("th", { scope: "col" }, label)))),
                h("tbody", {}, STATS.map(([key, label, digits]) =>
                    h("tr", {}, h("th", { scope: "row" }, label),
                        all.map((s, i) => h("td", { dataset: {
                            stat: key, period: PERIODS[i][0] } },
                        fmtNum(s[key], digits)))))))));
        } catch (e) {
            if (!gone) clear(statsBox, notice("error",
                `Statistics unavailable: ${e.message}`));
        }
    }

    async function loadCharts(cfg) {
        const c = cfg.chart;
        const bucket = (hours) => c.bucket || (hours > 24 ? "1h" : "5m");
        const specs = [
            ["queries", `Queries, last ${c.queries_hours} h`, c.queries_hours,
                [{ key: "value", label: "Requests" }], ""],
            ["errors", `Errors, last ${c.queries_hours} h`, c.queries_hours,
                [{ key: "value", label: "Errors (5xx)" },
                    { key: "client_errors", label: "Client errors (4xx)" }], ""],
            ["response_time", `Response time, last ${c.response_time_hours} h`,
                c.response_time_hours,
                [{ key: "p50_ms", label: "p50" }, { key: "p95_ms", label: "p95" },
                    { key: "p99_ms", label: "p99" }], " ms"],
            ["cost", `Cost, ${c.cost_period}`, costHours(c.cost_period),
                [{ key: "value", label: "Cost" }], ""],
        ];
        try {
            const data = await Promise.all(specs.map(([metric, , hours]) =>
                get(`/api/v1/dashboard/charts/${metric}?hours=${hours}` +
                    `&bucket=${bucket(hours)}`)));
            if (gone) return;
            for (const d of destroyers) d();
            destroyers = [];
            chartsBox.replaceChildren();
            specs.forEach(([metric, title, , series, unit], i) => {
                const box = h("div", { class: "chart-box" });
                const fig = h("figure", { class: "chart",
                    dataset: { chart: metric }, "aria-label": title },
                box, h("figcaption", { class: "visually-hidden" }, title));
                chartsBox.append(fig);
                destroyers.push(lineChart(box, title, series,
                    data[i].points, unit));
            });
        } catch (e) {
            if (!gone) clear(chartsBox, notice("error",
                `Charts unavailable: ${e.message}`));
        }
    }

    const unsubscribe = activity.subscribe(() => {
        clear(stateBox, feedState(activity));
        clear(feedBox, activity.error ? notice("error", activity.error) : null,
            feedList(activity.items.slice(0, 15)));
    });

    settings().then((cfg) => {
        if (gone) return;
        loadStats();
        loadCharts(cfg);
        timers.push(setInterval(loadStats,
            Math.max(2, Number(cfg.refresh.stats) || 5) * 1000));
        timers.push(setInterval(() => loadCharts(cfg),
            Math.max(5, Number(cfg.refresh.charts) || 30) * 1000));
    });

    return () => {
        gone = true;
        for (const t of timers) clearInterval(t);
        for (const d of destroyers) d();
        unsubscribe();
    };
}
