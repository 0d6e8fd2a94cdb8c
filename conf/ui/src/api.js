// The public API, with both tokens held in this module's memory only
// (SPEC 12: never in web storage or a script-readable cookie). The access
// token is refreshed ahead of its expiry; a 401 gets one refresh and retry.

export class ApiError extends Error {
    constructor(status, body) {
        super((body && body.message) || `HTTP ${status}`);
        this.status = status;
        this.code = (body && body.error) || "http_" + status;
        this.field = body && body.field;
    }
}

const session = { access: null, refresh: null, expiresAt: 0, user: null };
let refreshTimer = null;
let refreshing = null;
const listeners = new Set();

export function onSession(fn) {
    listeners.add(fn);
}

function changed() {
    for (const fn of listeners) fn(session.user);
}

export function user() {
    return session.user;
}

export function accessToken() {
    return session.access;
}

export function isAdmin() {
    return session.user && session.user.role === "admin";
}

const RANK = { viewer: 1, user: 2, developer: 3, admin: 4 };

export function hasRank(role) {
    return session.user && (RANK[session.user.role] || 0) >= RANK[role];
}

async function send(method, path, body, token) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (token) headers.Authorization = "Bearer " + token;
    const res = await fetch(path, {
        method, headers, credentials: "omit", cache: "no-store",
        body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    const text = await res.text();
    if (text) {
        try {
            data = JSON.parse(text);
        } catch {
            data = { error: "bad_response", message: text.slice(0, 200) };
        }
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return data;
}

function take(tokens) {
    session.access = tokens.access_token;
    session.refresh = tokens.refresh_token;
    const ttl = Math.max(Number(tokens.expires_in) || 60, 10);
    session.expiresAt = Date.now() + ttl * 1000;
    clearTimeout(refreshTimer);
    // well before expiry: at 80% of the lifetime, at most a minute early
    const ahead = Math.min(60, ttl * 0.2);
    refreshTimer = setTimeout(() => {
        refresh().catch(() => {});
    }, (ttl - ahead) * 1000);
}

export async function login(name, password) {
    const body = name.includes("@") ? { email: name, password }
        : { username: name, password };
    take(await send("POST", "/auth/login", body));
    session.user = await send("GET", "/auth/me", undefined, session.access);
    changed();
    return session.user;
}

export function refresh() {
    if (!refreshing) {
        const token = session.refresh;
        refreshing = (async () => {
            if (!token) throw new ApiError(401, { error: "unauthorized",
                message: "not logged in" });
            try {
                take(await send("POST", "/auth/refresh",
                    { refresh_token: token }));
            } catch (e) {
                if (e.status === 401 || e.status === 400) forget();
                throw e;
            }
        })().finally(() => { refreshing = null; });
    }
    return refreshing;
}

function forget() {
    clearTimeout(refreshTimer);
    session.access = session.refresh = null;
    session.expiresAt = 0;
    const had = session.user;
    session.user = null;
    if (had) changed();
}

export async function logout() {
    const token = session.access;
    try {
        if (token) await send("POST", "/auth/logout", {}, token);
    } finally {
        forget();
    }
}

export async function api(method, path, body) {
    if (!session.access) {
        throw new ApiError(401, { error: "unauthorized",
            message: "not logged in" });
    }
    if (Date.now() > session.expiresAt - 5000) {
        await refresh();
    }
    try {
        return await send(method, path, body, session.access);
    } catch (e) {
        if (e.status !== 401 || !session.refresh) throw e;
        await refresh();
        return send(method, path, body, session.access);
    }
}

export const get = (path) => api("GET", path);
