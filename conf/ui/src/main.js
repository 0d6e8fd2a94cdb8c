// The admin page (SPEC 12): a login form, then one screen per navigation
// entry (#/dashboard, #/activity, ...). Everything comes from the public
// API; the gateway and the worker enforce every permission, the page only
// hides the controls a role cannot use.
import "uplot/dist/uPlot.min.css";
import "./app.css";
import * as api from "./api.js";
import { h, clear, notice } from "./dom.js";
import { Activity } from "./activity.js";
import { renderLogin } from "./views/login.js";
import { renderDashboard } from "./views/dashboard.js";
import { renderActivity } from "./views/activity.js";
import { renderMcp } from "./views/mcp.js";
import { renderProviders } from "./views/providers.js";
import { renderUsage } from "./views/usage.js";
import { renderUsers } from "./views/users.js";
import { renderApiKeys } from "./views/apikeys.js";
import { renderConfig } from "./views/config.js";

const SCREENS = [
    ["dashboard", "Dashboard", renderDashboard],
    ["activity", "Activity", renderActivity],
    ["mcp", "MCP", renderMcp],
    ["providers", "Providers", renderProviders],
    ["usage", "Usage", renderUsage],
    ["users", "Users", renderUsers],
    ["api-keys", "API keys", renderApiKeys],
    ["config", "Configuration", renderConfig],
];

const root = document.getElementById("app");
let activity = null;
let cleanup = null;
let main = null;
let nav = null;

function current() {
    const name = location.hash.replace(/^#\/?/, "");
    return SCREENS.find((s) => s[0] === name) || SCREENS[0];
}

function showLogin(message) {
    if (activity) activity.stop();
    activity = null;
    if (cleanup) cleanup();
    cleanup = null;
    main = nav = null;
    clear(root, renderLogin({ message, onDone: showApp }));
    const first = root.querySelector("input");
    if (first) first.focus();
}

function showApp() {
    const me = api.user();
    activity = new Activity().start();
    nav = h("nav", { "aria-label": "Sections" }, h("ul", {},
        SCREENS.map(([name, label]) => h("li", {},
            h("a", { href: `#/${name}`, dataset: { screen: name } }, label)))));
    main = h("main", { id: "main", tabindex: "-1" });
    const logout = h("button", { type: "button", class: "secondary",
        id: "logout" }, "Log out");
    logout.addEventListener("click", async () => {
        logout.disabled = true;
        try {
            await api.logout();
        } catch {
            // the session is forgotten here whatever the server said
        }
        showLogin("You are logged out.");
    });
    clear(root,
        h("a", { href: "#main", class: "skip" }, "Skip to content"),
        h("header", { class: "top" },
            h("h1", {}, "Omni"),
            h("p", { class: "who" }, "Signed in as ",
                h("strong", { id: "who-name" }, me.username || me.email),
                " (", h("span", { id: "who-role" }, me.role), ")"),
            logout),
        nav, main);
    route();
}

function route() {
    if (!main) return;
    const [name, label, render] = current();
    for (const a of nav.querySelectorAll("a")) {
        if (a.dataset.screen === name) a.setAttribute("aria-current", "page");
        else a.removeAttribute("aria-current");
    }
    if (cleanup) cleanup();
    cleanup = null;
    document.title = `${label} · Omni admin`;
    const section = h("section", { class: "screen", dataset: { screen: name },
        "aria-labelledby": "screen-title" },
        h("h2", { id: "screen-title" }, label));
    clear(main, section);
    try {
        cleanup = render(section, { activity, navigate }) || null;
    } catch (e) {
        section.append(notice("error", e.message));
    }
}

function navigate(name) {
    location.hash = `#/${name}`;
}

window.addEventListener("hashchange", () => {
    route();
    if (main) main.focus({ preventScroll: true });
});

api.onSession((u) => {
    if (!u && main) showLogin("Your session ended: log in again.");
});

showLogin();
