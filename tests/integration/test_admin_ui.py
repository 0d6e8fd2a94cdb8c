"""The admin page (SPEC 12) in a real browser: Debian's chromium driven by
puppeteer-core (admin_ui/driver.mjs, `make ui-test-node`) against the page
`make ui` built, served by the product's nginx configuration in front of a
worker on a database of this module's own.

Each screen is checked against data the test made first through the API
(a configuration change, an API key, an MCP server on the server-everything
fixture, a provider, a usage row), read back from the DOM. Screenshots of
every screen go to tests/ui/screenshots/ (not committed). Every browser
session ends with no page error, no CSP violation and no console error
(but the 4xx a test provokes on purpose).
"""

import json
import os
import re
import select
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

import stack
from auth_support import (PASSWORD, Client, User, cli_create_user, login,
                          register, set_role, unique_email)
from mcp_support import Upstream, key_file, unique

HERE = Path(__file__).resolve().parent
UI_DIR = stack.BUILD / "ui"
NODE_DIR = stack.BUILD / "ui-test-node"
DRIVER = HERE / "admin_ui" / "driver.mjs"
SHOTS = stack.REPO / "tests" / "ui" / "screenshots"
# short enough that a test sees the page refresh its access token
TOKEN_TTL = 20
# the gateway ends each event subscription after this long: the page must
# reconnect, with its current token
RECHECK = 10
SCREENS = ["Dashboard", "Activity", "MCP", "Providers", "Usage", "Users",
           "API keys", "Configuration"]


# --- the stack ---------------------------------------------------------------

@pytest.fixture(scope="module")
def ui_db(pg):
    name = "omni_ui_%d" % os.getpid()
    pg.ensure_running()
    pg.drop_database(name)
    pg.create_database(name)
    res = stack.migrate(["up"], pg.url(name))
    assert res.returncode == 0, res.stdout + res.stderr
    yield name
    pg.drop_database(name)


@pytest.fixture(scope="module")
def ui_stack(pg, ui_db, redis_server):
    """(nginx, worker): the product's gateway serving build/ui, its login
    limit raised, in front of a worker of this module's own."""
    assert (UI_DIR / "index.html").exists(), "the admin page: make ui"
    assert (NODE_DIR / "node_modules" / "puppeteer-core").exists(), \
        "the browser driver: make ui-test-node"
    d = stack.make_tmpdir("omni-test-ui-")
    # a copy nginx's workers can read wherever the checkout is (a clone in
    # a 0700 directory, as CI's and a home directory's are), as `make run`
    # serves its copy in .run/ui
    ui = d / "ui"
    shutil.copytree(UI_DIR, ui)
    for p in [ui, *ui.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    nginx = stack.Nginx(worker_socket=d / "worker.sock",
                        redis_addr=redis_server.addr, api_rate="1000r/s",
                        events_socket=d / "events.sock",
                        extra={"AUTH_RATE": "10000r/s",
                               "EVENTS_RECHECK": "%ds" % RECHECK,
                               "UI_DIR": str(ui)})
    w = stack.Worker(pg, redis_server, workdir=d, env={
        "OMNI_DATABASE_URL": pg.url(ui_db),
        "OMNI_EVENTS_PUBLISH": "unix:%s" % (d / "events.sock"),
        "OMNI_MCP_SECRET_KEY_FILE": key_file(d),
        "OMNI_ACCESS_TOKEN_TTL": TOKEN_TTL,
    })
    try:
        nginx.start()
        w.start()
        yield nginx, w
    finally:
        nginx.destroy()
        w.stop()
        report = w.sanitizer_report()
        w.destroy()
        assert not report, report


@pytest.fixture(scope="module")
def gw(ui_stack):
    client = Client(ui_stack[0])
    yield client
    client.close()


@pytest.fixture(scope="module")
def admin(gw, pg, ui_db, tmp_path_factory):
    """A real admin (omni-worker user create) with a username to log in."""
    email = unique_email("uiadmin")
    username = "uiadmin" + uuid.uuid4().hex[:6]
    code, out, err = cli_create_user_in(pg, ui_db, tmp_path_factory, email,
                                        username)
    assert code == 0, (code, out, err)
    user = User(email, PASSWORD, username=username, id=out.strip(),
                role="admin")
    login(gw, user)
    return user


def cli_create_user_in(pg, db, tmp_path_factory, email, username):
    class Db:   # cli_create_user reads pg.url()
        def url(self):
            return pg.url(db)
    return cli_create_user(Db(), tmp_path_factory.mktemp("admin"), email,
                           PASSWORD, "admin", username=username)


@pytest.fixture(scope="module")
def viewer(gw, admin):
    user = register(gw, username="uiviewer" + uuid.uuid4().hex[:6])
    set_role(gw, admin, user, "viewer")
    return user


def api(gw, user, method, path, body=None, status=200):
    login_if_needed(gw, user)
    r = gw.request(method, path, token=user.access, json=body)
    assert r.status_code == status, (method, path, r.status_code, r.text)
    return r.json() if r.text else None


def login_if_needed(gw, user):
    # the module's tokens live TOKEN_TTL seconds
    if getattr(user, "at", 0) < time.time() - TOKEN_TTL / 2:
        login(gw, user)
        user.at = time.time()


@pytest.fixture(scope="module")
def everything():
    up = Upstream("everything").start()
    yield up
    up.stop()


@pytest.fixture(scope="module")
def data(gw, admin, viewer, everything, pg, ui_db):
    """What the screens must show, made through the API (the usage row,
    which needs a provider's answer, straight into the ledger)."""
    server = api(gw, admin, "POST", "/api/v1/mcp/servers",
                 {"name": unique("ui"), "url": everything.url,
                  "timeout_ms": 5000}, status=201)
    provider = api(gw, admin, "POST", "/api/v1/llm/providers", {
        "name": unique("prov"), "type": "openai",
        "base_url": "http://127.0.0.1:9/v1", "api_key_env": "UI_TEST_KEY",
        "models": [{"name": "ui-model", "context_window": 8192,
                    "max_output_tokens": 1024,
                    "price": {"input": 1.5, "output": 2.5, "cached": 0.5}}]},
        status=201)
    project = str(uuid.uuid4())
    pg.sql("INSERT INTO omnichat.llm_usage (user_id, project_id, provider,"
           " model, input_tokens, output_tokens, cost, status)"
           " VALUES (%s, %s, %s, 'ui-model', 1200, 340, 0.0123, 'ok')",
           (admin.id, project, provider["name"]), dbname=ui_db)
    key = api(gw, admin, "POST", "/api/v1/api-keys",
              {"name": unique("adminkey")}, status=201)
    # a configuration change: an activity event the feed lists
    api(gw, admin, "PUT", "/api/v1/config/refresh_interval",
        {"stats": 4, "charts": 30, "activity": 5})
    tools = wait_tools(gw, admin, server["id"])
    return {"server": server, "provider": provider, "project": project,
            "key": key, "tools": tools}


def wait_tools(gw, admin, server_id):
    got = {}

    def listed():
        got["items"] = api(gw, admin, "GET", "/api/v1/mcp/servers/%s/tools"
                           % server_id)["items"]
        return bool(got["items"])
    stack.wait_until(listed, 20, "the fixture's tools in the catalog", 0.2)
    return got["items"]


# --- the browser -------------------------------------------------------------

class Browser:
    """One chromium (admin_ui/driver.mjs): b(cmd, **args) -> the answer;
    a failed command fails the test (after a screenshot)."""

    def __init__(self, nginx, name):
        self.nginx = nginx
        self.name = name
        self.log = stack.make_tmpdir("omni-test-ui-driver-") / "driver.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["node", str(DRIVER), str(NODE_DIR), str(SHOTS)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                cwd=str(NODE_DIR), start_new_session=True)
        self.buf = b""

    def _line(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("driver: no answer in %d s; %s" % (
                    timeout, self.log.read_text(errors="replace")[-2000:]))
            ready, _, _ = select.select([self.proc.stdout], [], [], left)
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise AssertionError("driver exited: %s" % self.log
                                         .read_text(errors="replace")[-2000:])
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    # read_timeout (s) bounds the wait for the driver's answer; args go to
    # the driver, its `timeout` (ms) included
    def call(self, cmd, read_timeout=40, **args):
        args["cmd"] = cmd
        self.proc.stdin.write((json.dumps(args) + "\n").encode())
        self.proc.stdin.flush()
        return self._line(read_timeout)

    def __call__(self, cmd, read_timeout=40, **args):
        out = self.call(cmd, read_timeout, **args)
        if not out.pop("ok"):
            self.call("screenshot", name="%s-failed" % self.name)
            raise AssertionError("%s %s: %s" % (cmd, args, out["error"]))
        return out

    def open(self):
        r = self("open", url=self.nginx.https_url("/"))
        assert r["status"] == 200
        return r

    def login(self, user, name=None):
        out = self("login", user=name or user.username or user.email,
                   password=user.password)
        assert out["logged_in"], out
        return out

    def shot(self, screen):
        self("screenshot", name="%s-%s" % (self.name,
                                           screen.lower().replace(" ", "-")))

    def texts(self, selector):
        return self("texts", selector=selector)["texts"]

    def controls(self):
        return self("controls")["controls"]

    def problems(self, allow_http=()):
        """Console errors, page errors and CSP violations so far, but the
        resource errors of the HTTP statuses in allow_http."""
        p = self("problems")
        allowed = tuple("status of %d" % s for s in allow_http)
        console = [m for m in p["console"] if m["type"] == "error"
                   and not (m["text"].startswith("Failed to load resource")
                            and any(a in m["text"] for a in allowed))]
        return {"console": console, "page": p["page"], "csp": p["csp"]}

    def close(self):
        try:
            self.call("quit", read_timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(10)


@pytest.fixture
def browser(ui_stack, request):
    b = Browser(ui_stack[0], request.node.name.replace("test_", "", 1))
    yield b
    b.close()


def assert_clean(b, allow_http=()):
    problems = b.problems(allow_http)
    assert problems == {"console": [], "page": [], "csp": []}, problems


def labels(controls):
    return {c["label"] or (c["text"] if c["tag"] == "button" else None)
            or c["name"] for c in controls}


def access_log(nginx, method, path):
    """(status, time) of each logged request for path, after a flush."""
    out = []
    if nginx.access_log.exists():
        for line in nginx.access_log.read_text(errors="replace").splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e["method"] == method and e["uri"] == path:
                out.append(e["status"])
    return out


# --- the page's HTTP -----------------------------------------------------------

def test_page_and_assets_are_served_with_csp_and_cache_headers(ui_stack):
    nginx = ui_stack[0]
    r = requests.get(nginx.https_url("/"), verify=False, timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Cache-Control"] == "no-cache"
    csp = r.headers["Content-Security-Policy"]
    directives = dict((d.strip().split(" ", 1) + [""])[:2]
                      for d in csp.split(";") if d.strip())
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    # no inline script or style: every script and stylesheet is a file
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", r.text)
    assert "<style" not in r.text and "style=" not in r.text
    assets = re.findall(r'(?:src|href)="(/assets/[^"]+)"', r.text)
    assert {a.rsplit(".", 1)[1] for a in assets} == {"js", "css"}
    for a in assets:
        assert re.fullmatch(r"/assets/app-[A-Z0-9]{8}\.(js|css)", a), a
        ar = requests.get(nginx.https_url(a), verify=False, timeout=10)
        assert ar.status_code == 200, a
        assert ar.headers["Cache-Control"] == \
            "public, max-age=31536000, immutable"
        assert ar.headers["Content-Type"] == (
            "text/javascript" if a.endswith(".js") else "text/css")
        assert ar.headers["Content-Security-Policy"] == csp
        assert ar.headers["X-Content-Type-Options"] == "nosniff"
    # what is not the page stays the JSON 404, never a cached page
    for path in ("/assets/app-NOTHERE1.js", "/nothing", "/index.htm"):
        nr = requests.get(nginx.https_url(path), verify=False, timeout=10)
        assert nr.status_code == 404, path
        assert nr.json()["error"] == "not_found", path
        assert "immutable" not in nr.headers.get("Cache-Control", "")


# --- the browser tests ----------------------------------------------------------

def test_admin_sees_the_dashboard_fill_and_activity_arrive_live(
        ui_stack, gw, admin, data, browser):
    # requests the stats must count, once the worker's periodic flush has
    # written them to the rollups (each poll is counted too)
    for _ in range(5):
        api(gw, admin, "GET", "/api/v1/config")

    def counted_today():
        n = api(gw, admin, "GET",
                "/api/v1/dashboard/stats?period=today")["requests"]
        return n if n >= 5 else None
    counted = stack.wait_until(counted_today, 10,
                               "the 5 requests in today's stats",
                               interval=0.2)
    charts = {i["key"]: i["value"] for i in
              api(gw, admin, "GET", "/api/v1/config")["items"]}
    hours = charts["chart_settings"]["queries_hours"]

    browser.open()
    who = browser.login(admin)
    assert who["who"] == admin.username and who["role"] == "admin"
    assert browser("nav_labels")["labels"] == SCREENS
    cell = 'td[data-stat="requests"][data-period="today"]'
    browser("wait", selector=cell, text="")
    shown = int(browser.texts(cell)[0].replace(",", ""))
    assert shown >= counted, (shown, counted)
    # each period's cell is its own fetch, made while the page's own
    # requests are being counted: each shows what was counted before
    for period in ("24h", "7d"):
        assert int(browser.texts('td[data-stat="requests"][data-period="%s"]'
                                 % period)[0].replace(",", "")) >= counted
    # and the periods nest: asked one after the other, each counts at
    # least what the shorter one before it did
    before = 0
    for period in ("today", "24h", "7d"):
        n = api(gw, admin, "GET",
                "/api/v1/dashboard/stats?period=" + period)["requests"]
        assert n >= before, (period, n, before)
        before = n
    p99 = browser.texts('td[data-stat="p99_ms"][data-period="today"]')[0]
    assert re.fullmatch(r"[0-9.,]+", p99), p99
    # four charts drawn by uPlot, titled after chart_settings
    for metric in ("queries", "cost", "response_time", "errors"):
        browser("wait", selector='figure[data-chart="%s"] canvas' % metric)
    assert browser.texts('figure[data-chart="queries"] .u-title') == \
        ["Queries, last %d h" % hours]
    assert browser.texts('figure[data-chart="response_time"] .u-legend th'
                         ) [1:] == ["p50", "p95", "p99"]
    # the configuration change made before the page opened is listed
    browser("wait", selector='.feed li[data-type="config.updated"]',
            text="refresh_interval")
    browser("wait", selector=".live-state.live")
    browser.shot("dashboard")

    # a change made now shows in the open page within 2 s, no reload
    api(gw, admin, "PUT", "/api/v1/config/alert_thresholds",
        {"cost_daily": 123, "error_rate": 0.05, "response_time_p99": 5000})
    started = time.monotonic()
    event = api(gw, admin, "GET", "/api/v1/dashboard/activity?limit=1")[
        "items"][0]
    assert event["type"] == "config.updated"
    assert event["detail"]["key"] == "alert_thresholds"
    item = '.feed li[data-id="%d"]' % event["id"]
    browser("wait", selector=item, text="alert_thresholds", timeout=5000)
    took = time.monotonic() - started
    assert took < 2.0, "the event showed after %.2f s" % took
    # it names the event's type and its subject, the configuration key
    assert browser.texts(item + " .type") == ["config.updated"]
    assert browser.texts(item + " .subject") == ["alert_thresholds"]
    browser("nav", label="Activity")
    browser("wait", selector=item, text="alert_thresholds")
    browser.shot("activity")
    # tokens only in memory: nothing in web storage or cookies
    assert browser("storage") == {"local": 0, "session": 0,
                                  "cookie": "", "cookies": 0}
    assert_clean(browser)


def test_every_screen_renders_the_stacks_data_for_an_admin(
        ui_stack, gw, admin, viewer, data, pg, ui_db, browser):
    server, provider = data["server"], data["provider"]
    browser.open()
    browser.login(admin)

    browser("nav", label="MCP")
    row = 'tr[data-server="%s"]' % server["name"]
    browser("wait", selector=row, text=everything_host(server))
    assert "closed" in browser.texts(row)[0]
    have = labels(browser.controls())
    assert {"Add server", "Edit %s" % server["name"],
            "Delete %s" % server["name"], "Probe %s" % server["name"],
            "Tools of %s" % server["name"]} <= have, have
    browser("click", text="Probe %s" % server["name"])
    browser("wait", selector=row + " .probe", text="ok in")
    # a tool whose definition changed is quarantined until approved: the
    # catalog's state after a probe found the upstream's definition (now
    # pending) differing from an older approved one
    tool = data["tools"][0]["name"]
    pg.sql("UPDATE omni2.mcp_tools SET status = 'quarantined',"
           " pending = definition, pending_hash = hash,"
           " definition = definition || '{\"description\": \"an older one\"}',"
           " hash = 'an-older-hash' WHERE server_id = %s AND name = %s",
           (server["id"], tool), dbname=ui_db)
    browser("click", text="Tools of %s" % server["name"])
    quarantined = 'tr[data-tool="%s"][data-status="quarantined"]' % tool
    browser("wait", selector=quarantined, text="an older one")
    browser.shot("mcp")
    browser("click", text="Approve %s" % tool)
    browser("wait", selector='tr[data-tool="%s"][data-status="active"]' % tool,
            text=data["tools"][0]["description"])
    tools = api(gw, admin, "GET", "/api/v1/mcp/servers/%s/tools"
                % server["id"])["items"]
    assert {t["name"]: t["status"] for t in tools}[tool] == "active"

    browser("nav", label="Providers")
    card = 'article[data-provider="%s"]' % provider["name"]
    browser("wait", selector=card + ' tr[data-model="ui-model"]', text="2.5")
    assert "$UI_TEST_KEY" in browser.texts(card)[0]
    assert "Add provider" in labels(browser.controls())
    browser.shot("providers")

    browser("nav", label="Usage")
    browser("select", selector="select[name=group_by]", value="project")
    row = 'tr[data-key="%s"]' % data["project"]
    browser("wait", selector=row, text="1,200")
    cells = browser.texts(row + " td")
    assert cells[:3] == ["1", "1,200", "340"] and cells[4] == "0.0123", cells
    browser.shot("usage")

    browser("nav", label="Users")
    row = 'tr[data-user="%s"]' % viewer.username
    browser("wait", selector=row, text="viewer")
    assert "Deactivate %s" % viewer.username in labels(browser.controls())
    browser.shot("users")

    browser("nav", label="API keys")
    browser("wait", selector='tr[data-key="%s"]' % data["key"]["name"],
            text=data["key"]["prefix"])
    browser.shot("api-keys")

    browser("nav", label="Configuration")
    browser("wait", selector='article[data-config="refresh_interval"]')
    assert browser("value", selector="#cfg-refresh_interval-stats")[
        "value"] == "4"
    assert "Save chart_settings" in labels(browser.controls())
    browser.shot("configuration")

    # every control of every screen has a label a screen reader reads
    for screen in SCREENS:
        browser("nav", label=screen)
        unlabelled = [c for c in browser.controls() if not c["labelled"]]
        assert not unlabelled, (screen, unlabelled)
    assert_clean(browser)


def test_an_admin_adds_edits_and_deletes_a_server_and_deactivates_a_user(
        ui_stack, gw, admin, everything, browser):
    other = register(gw, username="uiother" + uuid.uuid4().hex[:6])
    name = unique("form")
    browser.open()
    browser.login(admin)
    browser("nav", label="MCP")
    browser("click", text="Add server")
    form = "form[aria-label='Add MCP server'] "
    # a bad name: the API's error shows at the name field
    browser("fill", selector=form + "input[name=name]", value="Bad Name")
    browser("fill", selector=form + "input[name=url]", value=everything.url)
    browser("click", text="Add server", selector=form + "button[type=submit]")
    browser("wait", selector=form + ".field-error", text="name")
    assert browser("attrs", selector=form + "input[name=name]",
                   name="aria-invalid")["values"] == ["true"]
    browser("fill", selector=form + "input[name=name]", value=name)
    browser("fill", selector=form + "input[name=timeout_ms]", value="4000")
    browser("click", text="Add server", selector=form + "button[type=submit]")
    row = 'tr[data-server="%s"]' % name
    browser("wait", selector=row)
    servers = {s["name"]: s for s in
               api(gw, admin, "GET", "/api/v1/mcp/servers")["items"]}
    assert servers[name]["timeout_ms"] == 4000
    assert servers[name]["url"] == everything.url
    browser("click", text="Edit %s" % name)
    form = "form[aria-label='Edit %s'] " % name
    browser("fill", selector=form + "input[name=timeout_ms]", value="7000")
    browser("click", text="Save", selector=form + "button[type=submit]")
    stack.wait_until(lambda: api(gw, admin, "GET", "/api/v1/mcp/servers/%s"
                                 % servers[name]["id"])["timeout_ms"] == 7000,
                     5, "the edited timeout", 0.2)
    browser("gone", selector=form)
    browser("click", text="Delete %s" % name)   # the confirm is accepted
    browser("wait", selector="section[data-screen=mcp] table caption",
            text="MCP servers")
    stack.wait_until(lambda: name not in {
        s["name"] for s in api(gw, admin, "GET", "/api/v1/mcp/servers")[
            "items"]}, 5, "the server deleted", 0.2)
    browser("nav", label="Users")
    user_row = 'tr[data-user="%s"]' % other.username
    browser("wait", selector=user_row, text="yes")
    browser("click", text="Deactivate %s" % other.username)
    browser("wait", selector=user_row, text="no")
    users = {u["id"]: u for u in
             api(gw, admin, "GET", "/api/v1/users?limit=500")["items"]}
    assert users[other.id]["is_active"] is False
    assert_clean(browser, allow_http=(422, 400))


def everything_host(server):
    return server["url"].split("//", 1)[1].split("/", 1)[0]


def test_a_viewer_sees_the_data_but_no_write_controls(
        ui_stack, gw, viewer, data, pg, ui_db, browser):
    server = data["server"]
    # a quarantined tool, which only an admin may approve
    tool = data["tools"][-1]["name"]
    pg.sql("UPDATE omni2.mcp_tools SET status = 'quarantined',"
           " pending = definition, pending_hash = hash,"
           " hash = 'an-older-hash' WHERE server_id = %s AND name = %s",
           (server["id"], tool), dbname=ui_db)
    browser.open()
    assert browser.login(viewer)["role"] == "viewer"
    seen = {}
    for screen in SCREENS:
        browser("nav", label=screen)
        seen[screen] = labels(browser.controls())
        browser.shot(screen)
    # the read-only views are there
    browser("nav", label="MCP")
    browser("wait", selector='tr[data-server="%s"]' % server["name"])
    browser("click", text="Tools of %s" % server["name"])
    browser("wait", selector='tr[data-tool="%s"][data-status="quarantined"]'
            % tool, text="quarantined")
    tools_controls = labels(browser.controls())
    assert all(c.startswith("Tools of ") for c in tools_controls), \
        tools_controls
    browser("nav", label="Configuration")
    browser("wait", selector='article[data-config="chart_settings"] dl',
            text="queries_hours")
    # and nothing that writes but the viewer's own API keys
    assert seen["Dashboard"] == set()
    assert seen["Activity"] == set()
    assert "Tools of %s" % server["name"] in seen["MCP"]
    assert all(c.startswith("Tools of ") for c in seen["MCP"]), seen["MCP"]
    assert seen["Providers"] == set()
    assert seen["Usage"] == {"group_by", "period"}
    assert seen["Users"] == set()
    assert seen["Configuration"] == set()
    assert {"Create key", "name", "role", "expires_at"} <= seen["API keys"]
    assert_clean(browser)


def test_an_api_key_is_shown_once_and_works(ui_stack, gw, viewer, browser):
    name = unique("viewerkey")
    browser.open()
    browser.login(viewer)
    browser("nav", label="API keys")
    browser("fill", selector="form[aria-label='Create API key'] "
            "input[name=name]", value=name)
    browser("click", text="Create key")
    browser("wait", selector="#new-key")
    key = browser("value", selector="#new-key")["value"]
    assert re.fullmatch(r"omk_[A-Za-z0-9_-]{43}", key), key
    browser("wait", selector='tr[data-key="%s"]' % name, text=key[:12])
    browser.shot("api-key-created")
    # the key is the viewer's and works at the gateway
    r = gw.request("GET", "/api/v1/api-keys", apikey=key)
    assert r.status_code == 200, r.text
    assert name in {k["name"] for k in r.json()["items"]}
    # once dismissed it is nowhere in the page, and no list shows it
    browser("click", text="Done")
    assert browser("contains", text=key)["found"] is False
    browser("nav", label="Dashboard")
    browser("nav", label="API keys")
    browser("wait", selector='tr[data-key="%s"]' % name)
    assert browser("contains", text=key)["found"] is False
    assert browser("contains", text=key[:12])["found"] is True
    assert_clean(browser)


def test_a_wrong_password_shows_an_error(ui_stack, admin, browser):
    browser.open()
    out = browser("login", user=admin.username, password="not the password")
    assert not out["logged_in"]
    assert out["error"] == "Wrong email, username or password.", out
    browser.shot("login-failed")
    assert browser("focused")["id"] is not None  # the password field
    # the right one then works from the same form
    assert browser.login(admin)["role"] == "admin"
    assert_clean(browser, allow_http=(401,))


def test_a_configuration_error_shows_at_its_field(
        ui_stack, gw, admin, browser):
    before = api(gw, admin, "GET", "/api/v1/config/chart_settings")["value"]
    browser.open()
    browser.login(admin)
    browser("nav", label="Configuration")
    field = "#cfg-chart_settings-queries_hours"
    browser("fill", selector=field, value="0")
    browser("click", text="Save chart_settings")
    browser("wait", selector=field + "-error", text="queries_hours")
    error = browser.texts(field + "-error")[0]
    assert error == "chart_settings.queries_hours: expected an integer " \
        "from 1 to 168", error
    assert browser("attrs", selector=field, name="aria-invalid")[
        "values"] == ["true"]
    assert browser("focused")["id"] == field[1:]
    # no other field shows an error
    assert browser.texts(".field-error:not([hidden])") == [error]
    browser.shot("configuration-error")
    assert api(gw, admin, "GET", "/api/v1/config/chart_settings")[
        "value"] == before
    # corrected, it saves and the error goes
    browser("fill", selector=field, value=str(before["queries_hours"] - 1))
    browser("click", text="Save chart_settings")
    browser("wait", selector="article[data-config=chart_settings] .notice",
            text="chart_settings saved.")
    assert browser.texts(".field-error:not([hidden])") == []
    after = api(gw, admin, "GET", "/api/v1/config/chart_settings")["value"]
    assert after["queries_hours"] == before["queries_hours"] - 1
    api(gw, admin, "PUT", "/api/v1/config/chart_settings", before)
    assert_clean(browser, allow_http=(422,))


def test_logout_revokes_and_returns_to_the_login_form(
        ui_stack, admin, browser):
    nginx = ui_stack[0]
    before = len(access_log_wait(nginx, "POST", "/auth/logout", 0))
    browser.open()
    browser.login(admin)
    browser("click", text="Log out")
    browser("wait", selector=".login-status .notice", text="logged out")
    assert browser("contains", text="Signed in as")["found"] is False
    assert access_log_wait(nginx, "POST", "/auth/logout", before + 1)[
        before:] == [204]
    browser.shot("logged-out")
    assert_clean(browser)


def access_log_wait(nginx, method, path, n):
    """The statuses logged for path once there are n (nginx flushes its
    access log every second)."""
    got = {}

    def enough():
        got["s"] = access_log(nginx, method, path)
        return len(got["s"]) >= n
    stack.wait_until(enough, 5, "%d %s %s in the access log" % (n, method,
                                                               path), 0.2)
    return got["s"]


def test_the_page_refreshes_its_token_before_it_expires(
        ui_stack, gw, admin, browser):
    nginx = ui_stack[0]
    before = len(access_log_wait(nginx, "POST", "/auth/refresh", 0))
    time.sleep(1.1)   # the last test's lines flushed
    closed = access_log(nginx, "GET", "/ws/activity").count(408)
    browser.open()
    browser.login(admin)
    started = time.monotonic()
    started_at = time.strftime("%H:%M:%S")
    # a screen that polls nothing: the refresh is the page's own timer
    browser("nav", label="Users")
    statuses = access_log_wait_for(nginx, "POST", "/auth/refresh",
                                   before + 1, TOKEN_TTL + 5)
    took = time.monotonic() - started
    assert statuses[before:before + 1] == [200]
    assert took < TOKEN_TTL, "refreshed %.1f s after login" % took
    # the page still reads the API with the new token
    browser("nav", label="API keys")
    browser("nav", label="Users")
    browser("wait", selector='tr[data-user="%s"]' % admin.username)
    # and the live feed, which the gateway closes every RECHECK seconds,
    # is subscribed again with it: once the second subscription (made
    # before the refresh) has been closed and the page is live again, an
    # event arrives on the third. (A fixed sleep raced the close on a
    # slow machine: the event fell between two subscriptions.)
    stack.wait_until(
        lambda: access_log(nginx, "GET", "/ws/activity").count(408)
        >= closed + 2, 2 * RECHECK + 10,
        "the page's second subscription closed by the gateway (408)", 0.2)
    browser("nav", label="Activity")
    browser("wait", selector='.live-state[data-state="live"]')
    api(gw, admin, "PUT", "/api/v1/config/refresh_interval",
        {"stats": 4, "charts": 30, "activity": 6})
    event = api(gw, admin, "GET", "/api/v1/dashboard/activity?limit=1")[
        "items"][0]
    assert event["detail"]["key"] == "refresh_interval"
    try:
        browser("wait", selector='.feed li[data-id="%d"]' % event["id"])
    except AssertionError:
        print("started %s; the page's subscriptions and sign-ins:\n%s"
              % (started_at, "\n".join(access_log_lines(
                  nginx, ("/ws/activity", "/auth/login", "/auth/refresh",
                          "/api/v1/config/refresh_interval")))))
        raise
    assert_clean(browser)


def access_log_lines(nginx, paths):
    """ts, method, uri, status and request time of each request for paths
    (a subscription is logged when it closes)."""
    time.sleep(1.1)   # nginx flushes its access log every second
    out = []
    for line in nginx.access_log.read_text(errors="replace").splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e["uri"] in paths:
            out.append("%(ts)s %(method)s %(uri)s %(status)s rt=%(rt)s" % e)
    return out


def access_log_wait_for(nginx, method, path, n, timeout):
    got = {}

    def enough():
        got["s"] = access_log(nginx, method, path)
        return len(got["s"]) >= n
    stack.wait_until(enough, timeout, "%s %s" % (method, path), 0.2)
    return got["s"]


def test_keyboard_only_and_a_narrow_window(ui_stack, admin, browser):
    browser("viewport", width=360, height=740)
    browser.open()
    # the login form takes the focus; Tab, type, Enter
    assert browser("focused")["id"] is not None
    browser("type", text=admin.username)
    browser("key", key="Tab")
    browser("type", text=admin.password)
    browser("key", key="Enter")
    browser("wait", selector="#logout")
    # Tab reaches the navigation; Enter on "MCP" opens it
    for _ in range(20):
        browser("key", key="Tab")
        if browser("focused")["text"] == "MCP":
            break
    else:
        pytest.fail("Tab never reached the MCP link")
    browser("key", key="Enter")
    browser("wait", selector="#screen-title", text="MCP")
    for screen in SCREENS:
        browser("nav", label=screen)
        size = browser("overflow")
        assert size["scroll"] <= size["client"], (screen, size)
    browser("nav", label="Dashboard")
    browser("wait", selector='figure[data-chart="queries"] canvas')
    browser.shot("narrow-dashboard")
    assert_clean(browser)
