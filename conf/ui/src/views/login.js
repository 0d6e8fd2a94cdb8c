import * as api from "../api.js";
import { h, field, notice } from "../dom.js";

export function renderLogin({ message, onDone }) {
    const name = field("Email or username",
        h("input", { name: "username", autocomplete: "username", required: true }));
    const password = field("Password",
        h("input", { name: "password", type: "password",
            autocomplete: "current-password", required: true }));
    const status = h("div", { class: "login-status" },
        message ? notice("info", message) : null);
    const submit = h("button", { type: "submit" }, "Log in");
    const form = h("form", { class: "login", "aria-labelledby": "login-title" },
        h("h1", { id: "login-title" }, "Omni admin"),
        name.wrap, password.wrap, submit, status);
    form.addEventListener("submit", async (e) => {
        e.preventDefault();
        submit.disabled = true;
        status.replaceChildren();
        try {
            await api.login(name.input.value.trim(), password.input.value);
            onDone();
        } catch (err) {
            const text = err.status === 401 || err.status === 400
                ? "Wrong email, username or password."
                : err.status === 429
                    ? "Too many attempts: wait a minute and try again."
                    : `Could not log in: ${err.message}`;
            status.replaceChildren(notice("error", text));
            password.input.value = "";
            password.input.focus();
            submit.disabled = false;
        }
    });
    return h("div", { class: "login-page" }, form);
}
