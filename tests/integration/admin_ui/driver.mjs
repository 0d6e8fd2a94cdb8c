// Drives Debian's chromium (puppeteer-core) for tests/integration/
// test_admin_ui.py: one JSON command a line on stdin, one JSON answer a
// line on stdout ({"ok":true,...} or {"ok":false,"error":...}). The test
// holds the logic and the assertions; this file only operates the page and
// reports what it shows, plus every console error, page error and CSP
// violation seen since the start.
//
//   node driver.mjs NODE_DIR SCREENSHOT_DIR
import path from "node:path";
import fs from "node:fs";
import readline from "node:readline";
import { createRequire } from "node:module";

const [nodeDir, shotDir] = process.argv.slice(2);
const require = createRequire(path.resolve(nodeDir, "package.json"));
const puppeteer = require("puppeteer-core");

const browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    acceptInsecureCerts: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--password-store=basic"],
});
const page = await browser.newPage();
await page.setViewport({ width: 1280, height: 900 });

const problems = { console: [], page: [], csp: [], requests: [] };
page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warn") {
        problems.console.push({ type: m.type(), text: m.text(),
            url: (m.location() || {}).url || "" });
    }
});
// a confirm() (deleting something) is answered yes
page.on("dialog", (d) => d.accept().catch(() => {}));
page.on("pageerror", (e) => problems.page.push(String(e && e.message || e)));
page.on("requestfailed", (r) => problems.requests.push({
    url: r.url().replace(/token=[^&]+/, "token=…"),
    error: (r.failure() || {}).errorText || "" }));
await page.exposeFunction("__omniCsp", (v) => problems.csp.push(v));
await page.evaluateOnNewDocument(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
        window.__omniCsp({ directive: e.violatedDirective,
            blocked: e.blockedURI, sample: e.sample });
    });
});

async function waitText(selector, text, timeout) {
    await page.waitForFunction((s, t) => [...document.querySelectorAll(s)]
        .some((e) => e.offsetParent !== null && (!t || e.textContent.includes(t))),
    { timeout: timeout || 10000, polling: 50 }, selector, text || "");
}

async function settle() {
    // no "Loading…" left in the screen
    await page.waitForFunction(() => !document.querySelector("main") ||
        ![...document.querySelectorAll("main p")]
            .some((p) => p.textContent === "Loading…"),
    { timeout: 10000, polling: 50 });
}

async function clickOnce(text, selector) {
    if (selector) {
        await page.click(selector);
        return;
    }
    for (const b of await page.$$("button")) {
        const [t, l] = await b.evaluate((e) =>
            [e.textContent.trim(), e.getAttribute("aria-label")]);
        if (t === text || l === text) {
            await b.click();
            return;
        }
    }
    throw new Error(`no button "${text}"`);
}

const commands = {
    async open({ url }) {
        const res = await page.goto(url, { waitUntil: "networkidle0" });
        return { status: res.status(), headers: res.headers() };
    },
    async viewport({ width, height }) {
        await page.setViewport({ width, height });
        return {};
    },
    async login({ user, password }) {
        await page.waitForSelector("form.login input[name=username]");
        await page.$eval("form.login input[name=username]", (e) => { e.value = ""; });
        await page.type("form.login input[name=username]", user);
        await page.type("form.login input[name=password]", password);
        await page.keyboard.press("Enter");
        await page.waitForFunction(() => document.querySelector("#logout") ||
            document.querySelector(".login-status .notice.error"),
        { timeout: 15000, polling: 50 });
        const out = await page.evaluate(() => ({
            logged_in: Boolean(document.querySelector("#logout")),
            error: (document.querySelector(".login-status .notice.error") || {})
                .textContent || null,
            who: (document.querySelector("#who-name") || {}).textContent || null,
            role: (document.querySelector("#who-role") || {}).textContent || null,
        }));
        return out;
    },
    // follows the navigation link whose visible text is `label`
    async nav({ label }) {
        const links = await page.$$("nav a");
        for (const a of links) {
            if (await a.evaluate((e) => e.textContent) === label) {
                await a.click();
                await page.waitForFunction((l) =>
                    document.querySelector("#screen-title")?.textContent === l,
                { timeout: 10000 }, label);
                await settle();
                return {};
            }
        }
        throw new Error(`no navigation link "${label}"`);
    },
    async nav_labels() {
        return { labels: await page.$$eval("nav a", (as) =>
            as.map((a) => a.textContent)) };
    },
    async wait({ selector, text, timeout }) {
        const t0 = Date.now();
        await waitText(selector, text, timeout);
        return { ms: Date.now() - t0 };
    },
    async gone({ selector, timeout }) {
        await page.waitForFunction((s) => !document.querySelector(s),
            { timeout: timeout || 10000, polling: 50 }, selector);
        return {};
    },
    async texts({ selector }) {
        return { texts: await page.$$eval(selector, (es) =>
            es.map((e) => e.textContent.trim())) };
    },
    async attrs({ selector, name }) {
        return { values: await page.$$eval(selector, (es, n) =>
            es.map((e) => e.getAttribute(n)), name) };
    },
    async value({ selector }) {
        return { value: await page.$eval(selector, (e) => e.value) };
    },
    async fill({ selector, value }) {
        await page.$eval(selector, (e) => { e.value = ""; });
        await page.type(selector, String(value));
        return {};
    },
    async select({ selector, value }) {
        await page.select(selector, value);
        return {};
    },
    // clicks the button whose visible text (or aria-label) is `text`
    async click({ text, selector }) {
        // a screen that re-renders (the MCP list every 10 s) may replace
        // the button between finding and clicking it: find it again
        for (let i = 0; ; i++) {
            try {
                await clickOnce(text, selector);
                return {};
            } catch (e) {
                if (i >= 5 || !/detached|not clickable/i.test(String(e))) {
                    throw e;
                }
                await new Promise((r) => setTimeout(r, 100));
            }
        }
    },
    // types into whatever has the focus
    async type({ text }) {
        await page.keyboard.type(text);
        return {};
    },
    // whether the page's DOM holds `text` anywhere (attributes and input
    // values included)
    async contains({ text }) {
        return { found: await page.evaluate((t) =>
            document.documentElement.outerHTML.includes(t) ||
            [...document.querySelectorAll("input, textarea")]
                .some((e) => e.value.includes(t)), text) };
    },
    async storage() {
        const cookies = await page.cookies();
        return await page.evaluate((n) => ({ local: localStorage.length,
            session: sessionStorage.length, cookie: document.cookie,
            cookies: n }), cookies.length);
    },
    async key({ key }) {
        await page.keyboard.press(key);
        return {};
    },
    async focused() {
        return await page.evaluate(() => {
            const e = document.activeElement;
            return { tag: e.tagName.toLowerCase(), id: e.id || null,
                text: e.textContent.trim().slice(0, 80),
                label: e.getAttribute("aria-label") };
        });
    },
    // every control in the screen: what a user could press or type into
    async controls() {
        return { controls: await page.$$eval(
            "main button, main input, main select, main textarea",
            (es) => es.filter((e) => e.offsetParent !== null).map((e) => ({
                tag: e.tagName.toLowerCase(), type: e.type || null,
                name: e.name || null, text: e.textContent.trim(),
                label: e.getAttribute("aria-label"),
                labelled: Boolean(e.labels && e.labels.length) ||
                    Boolean(e.getAttribute("aria-label")) ||
                    (e.tagName === "BUTTON" && e.textContent.trim() !== ""),
            }))) };
    },
    async overflow() {
        return await page.evaluate(() => ({
            scroll: document.documentElement.scrollWidth,
            client: document.documentElement.clientWidth }));
    },
    async screenshot({ name }) {
        fs.mkdirSync(shotDir, { recursive: true });
        const file = path.join(shotDir, `${name}.png`);
        await page.screenshot({ path: file, fullPage: true });
        return { file };
    },
    async problems() {
        return problems;
    },
    async quit() {
        await browser.close();
        setImmediate(() => process.exit(0));
        return {};
    },
};

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
    let msg;
    try {
        msg = JSON.parse(line);
        const fn = commands[msg.cmd];
        if (!fn) throw new Error(`unknown command ${msg.cmd}`);
        const out = await fn(msg);
        process.stdout.write(JSON.stringify({ ok: true, ...out }) + "\n");
    } catch (e) {
        process.stdout.write(JSON.stringify({ ok: false,
            error: String(e && e.message || e) }) + "\n");
    }
}
await browser.close();
