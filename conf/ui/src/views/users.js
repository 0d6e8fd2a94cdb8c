import { api, get, isAdmin, user } from "../api.js";
import { h, clear, table, notice, fmtTime } from "../dom.js";

const ROLES = ["admin", "developer", "user", "viewer"];

export function renderUsers(section) {
    if (!isAdmin()) {
        section.append(notice("info", "Only admins can list and change users."));
        return null;
    }
    const status = h("div", {});
    const list = h("div", {}, h("p", {}, "Loading…"));
    section.append(status, list);

    async function change(u, body, what) {
        status.replaceChildren();
        try {
            await api("PATCH", `/api/v1/users/${u.id}`, body);
            status.append(notice("info", `${u.username || u.email}: ${what}.`));
            load();
        } catch (e) {
            status.append(notice("error", e.message));
        }
    }

    async function load() {
        try {
            const r = await get("/api/v1/users?limit=500");
            const me = user();
            clear(list, table("Users", ["User", "Email", "Role", "Active",
                "Last login", "Actions"], r.items.map((u) => {
                const name = u.username || u.email;
                const sel = h("select", { "aria-label": `Role of ${name}`,
                    class: "role" },
                    ROLES.map((role) => h("option", { value: role,
                        selected: role === u.role }, role)));
                const self = me && me.id === u.id;
                return h("tr", { dataset: { user: name } },
                    h("th", { scope: "row" }, name),
                    h("td", {}, u.email),
                    h("td", {}, self ? u.role : sel),
                    h("td", {}, u.is_active ? "yes" : "no"),
                    h("td", {}, fmtTime(u.last_login_at)),
                    h("td", { class: "actions" }, self ? "(you)" : [
                        h("button", { type: "button", class: "secondary",
                            "aria-label": `Save role of ${name}`,
                            onclick: () => change(u, { role: sel.value },
                                `role ${sel.value}`) }, "Save role"),
                        u.is_active
                            ? h("button", { type: "button", class: "danger",
                                "aria-label": `Deactivate ${name}`,
                                onclick: () => {
                                    if (window.confirm(`Deactivate ${name}? ` +
                                        "Their tokens and keys are revoked.")) {
                                        change(u, { is_active: false },
                                            "deactivated");
                                    }
                                } }, "Deactivate")
                            : h("button", { type: "button", class: "secondary",
                                "aria-label": `Activate ${name}`,
                                onclick: () => change(u, { is_active: true },
                                    "activated") }, "Activate")]));
            })));
        } catch (e) {
            clear(list, notice("error", e.message));
        }
    }
    load();
    return null;
}
