// uPlot line charts of the dashboard's series; each sized to its box.
import uPlot from "uplot";

const COLORS = ["#2563eb", "#d97706", "#dc2626", "#059669"];

export function lineChart(box, title, series, points, unit) {
    const xs = points.map((p) => Date.parse(p.t) / 1000);
    const data = [xs, ...series.map((s) => points.map((p) => {
        const v = p[s.key];
        return v === null || v === undefined ? null : Number(v);
    }))];
    const width = () => Math.max(box.clientWidth || 300, 200);
    // sparse series (a new stack) would draw nothing between gaps: dots
    const sparse = data.slice(1).every((col) =>
        col.filter((v) => v !== null).length < 40);
    const opts = {
        title,
        width: width(),
        height: 200,
        series: [{}, ...series.map((s, i) => ({
            label: s.label, stroke: COLORS[i % COLORS.length], width: 2,
            spanGaps: false, points: { show: sparse, size: 5 },
            value: (u, v) => v === null ? "—" : `${+v.toFixed(3)}${unit || ""}`,
        }))],
        axes: [{}, { size: 60 }],
        scales: { y: { range: (u, min, max) => [0, Math.max(max || 0, 1)] } },
    };
    const plot = new uPlot(opts, data, box);
    const ro = new ResizeObserver(() => {
        plot.setSize({ width: width(), height: 200 });
    });
    ro.observe(box);
    return () => {
        ro.disconnect();
        plot.destroy();
    };
}
