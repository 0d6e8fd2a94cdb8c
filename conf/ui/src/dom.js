// Building the page from elements, never from HTML strings: text from the
// API (names, summaries, tool descriptions) can never become markup.

let ids = 0;

export function uid(prefix) {
    ids += 1;
    return `${prefix}-${ids}`;
}

// h("button", {class: "x", onclick: f}, "text", child, ...)
export function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
        if (v === undefined || v === null || v === false) continue;
        if (k.startsWith("on") && typeof v === "function") {
            el.addEventListener(k.slice(2), v);
        } else if (k === "class") {
            el.className = v;
        } else if (k === "dataset") {
            Object.assign(el.dataset, v);
        } else if (k === "value") {
            el.value = v;
        } else if (k === "checked") {
            el.checked = Boolean(v);
        } else {
            el.setAttribute(k, v === true ? "" : String(v));
        }
    }
    append(el, children);
    return el;
}

function append(el, children) {
    for (const c of children.flat(Infinity)) {
        if (c === undefined || c === null || c === false) continue;
        el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
}

export function clear(el, ...children) {
    el.replaceChildren();
    append(el, children);
    return el;
}

// a labelled form field; returns {wrap, input, error}
export function field(label, input, hint) {
    const id = input.id || uid("f");
    input.id = id;
    const error = h("p", { class: "field-error", id: id + "-error",
        role: "alert", hidden: true });
    input.setAttribute("aria-describedby", error.id);
    const wrap = h("div", { class: "field" },
        h("label", { for: id }, label), input,
        hint ? h("p", { class: "hint" }, hint) : null, error);
    return { wrap, input, error };
}

export function showFieldError(f, message) {
    if (message) {
        f.error.textContent = message;
        f.error.hidden = false;
        f.input.setAttribute("aria-invalid", "true");
    } else {
        f.error.textContent = "";
        f.error.hidden = true;
        f.input.removeAttribute("aria-invalid");
    }
}

export function table(caption, columns, rows, empty) {
    if (!rows.length) {
        return h("p", { class: "empty" }, empty || "Nothing yet.");
    }
    return h("div", { class: "table-wrap" },
        h("table", {},
            h("caption", {}, caption),
            h("thead", {}, h("tr", {},
                columns.map((c) => h("th", { scope: "col" }, c)))),
            h("tbody", {}, rows)));
}

export function notice(kind, text) {
    return h("p", { class: `notice ${kind}`,
        role: kind === "error" ? "alert" : "status" }, text);
}

export function fmtTime(s) {
    if (!s) return "—";
    const d = new Date(s);
    if (Number.isNaN(d.getTime())) return String(s);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

export function fmtNum(n, digits = 0) {
    if (n === null || n === undefined || Number.isNaN(Number(n))) return "—";
    return Number(n).toLocaleString("en-US", {
        maximumFractionDigits: digits, minimumFractionDigits: 0 });
}
