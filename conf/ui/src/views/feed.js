import { h, fmtTime } from "../dom.js";
import { subject } from "../activity.js";

// a list of activity events naming each one's type and subject
export function feedList(items) {
    if (!items.length) {
        return h("p", { class: "empty" }, "No activity yet.");
    }
    return h("ol", { class: "feed" }, items.map((ev) => {
        const subj = subject(ev);
        return h("li", { dataset: { type: ev.type, id: ev.id } },
            h("time", { datetime: ev.at || "" }, fmtTime(ev.at)), " ",
            h("span", { class: "type" }, ev.type),
            subj ? [" ", h("strong", { class: "subject" }, subj)] : null,
            ev.summary ? h("span", { class: "summary" }, ev.summary) : null);
    }));
}

export function feedState(activity) {
    const s = activity.state;
    const text = s === "live" ? "Live" : s === "reconnecting"
        ? "Reconnecting…" : "Connecting…";
    return h("span", { class: `live-state ${s}`, dataset: { state: s } }, text);
}
