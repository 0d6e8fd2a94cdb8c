// The activity feed shared by the dashboard and the Activity screen: the
// recent events from /api/v1/dashboard/activity, then each new one as it
// arrives on /ws/activity.
import { get } from "./api.js";
import { Live } from "./live.js";

const KEEP = 200;

// one shape for a listed event and a channel message
function normalize(e, fromChannel) {
    if (fromChannel) {
        const d = e.data || {};
        return { id: d.id, type: e.type, at: e.ts, actor: d.actor,
            summary: d.summary, detail: d.detail || {} };
    }
    return { id: e.id, type: e.type, at: e.created_at, actor: e.actor,
        summary: e.summary, detail: e.detail || {} };
}

// what the event is about: the configuration key, the server, the tool...
export function subject(ev) {
    const d = ev.detail || {};
    for (const k of ["key", "server", "tool", "name", "username", "email"]) {
        if (typeof d[k] === "string" && d[k]) return d[k];
    }
    return "";
}

export class Activity {
    constructor() {
        this.items = [];
        this.state = "connecting";
        this.error = null;
        this.listeners = new Set();
        this.live = new Live("activity", {
            onEvent: (m) => this.add(normalize(m, true)),
            onState: (s) => {
                const was = this.state;
                this.state = s;
                // a reconnect may have missed events: list them again
                if (s === "live" && was === "reconnecting") this.load();
                this.emit();
            },
        });
    }

    start() {
        this.load();
        this.live.start();
        return this;
    }

    stop() {
        this.live.stop();
        this.listeners.clear();
    }

    async load() {
        try {
            const r = await get("/api/v1/dashboard/activity?limit=100");
            const seen = new Set(this.items.map((e) => e.id));
            const listed = r.items.map((e) => normalize(e, false));
            this.items = this.items.concat(listed.filter((e) => !seen.has(e.id)));
            this.sort();
            this.error = null;
        } catch (e) {
            this.error = e.message;
        }
        this.emit();
    }

    add(ev) {
        if (ev.id !== undefined && this.items.some((e) => e.id === ev.id)) {
            return;
        }
        this.items.unshift(ev);
        this.sort();
        this.emit();
    }

    sort() {
        this.items.sort((a, b) => (b.id || 0) - (a.id || 0));
        this.items.length = Math.min(this.items.length, KEEP);
    }

    subscribe(fn) {
        this.listeners.add(fn);
        fn();
        return () => this.listeners.delete(fn);
    }

    emit() {
        for (const fn of this.listeners) fn();
    }
}
