// The activity channel over /ws (nchan; the token in ?token=, as a
// browser's WebSocket cannot send headers). The gateway closes a
// subscriber after a while (EVENTS_RECHECK) so that it shows a fresh
// token: we reconnect with the current one, and the feed reloads the
// list to fill any gap.
import { accessToken } from "./api.js";

export class Live {
    constructor(channel, { onEvent, onState }) {
        this.channel = channel;
        this.onEvent = onEvent;
        this.onState = onState || (() => {});
        this.ws = null;
        this.stopped = false;
        this.delay = 500;
        this.timer = null;
    }

    start() {
        this.stopped = false;
        this.connect();
        return this;
    }

    connect() {
        const token = accessToken();
        if (this.stopped || !token) return;
        const proto = location.protocol === "https:" ? "wss:" : "ws:";
        const url = `${proto}//${location.host}/ws/${this.channel}` +
            `?token=${encodeURIComponent(token)}`;
        let ws;
        try {
            ws = new WebSocket(url);
        } catch {
            this.retry();
            return;
        }
        this.ws = ws;
        ws.onopen = () => {
            this.delay = 500;
            this.onState("live");
        };
        ws.onmessage = (m) => {
            let msg;
            try {
                msg = JSON.parse(m.data);
            } catch {
                return;
            }
            if (msg && typeof msg === "object" && msg.type) this.onEvent(msg);
        };
        ws.onclose = () => {
            if (this.ws !== ws) return;
            this.ws = null;
            this.onState("reconnecting");
            this.retry();
        };
        // onclose follows an error; nothing else to do
        ws.onerror = () => {};
    }

    retry() {
        if (this.stopped) return;
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.connect(), this.delay);
        this.delay = Math.min(this.delay * 2, 15000);
    }

    stop() {
        this.stopped = true;
        clearTimeout(this.timer);
        if (this.ws) {
            const ws = this.ws;
            this.ws = null;
            ws.close();
        }
    }
}
