"""What the memory tests share: a caller acting as one user on the worker,
and an OpenAI-compatible /v1/embeddings double that answers each text of
a batch with its own fixed vector (aimock answers one vector per request,
see TESTING.md), so the expected cosine ranking is known exactly."""

import json
import math
import random
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# each model maps words to axes of a 4-dimension space; the same
# dimension for both models, so only the model's name keeps them apart
AXES = {
    "embed-a": {"cat": 0, "dog": 0, "kitten": 0, "puppy": 0, "pet": 0,
                "rocket": 1, "orbit": 1, "moon": 1, "planet": 1,
                "bake": 2, "bread": 2, "recipe": 2, "soup": 2,
                "guitar": 3, "song": 3, "piano": 3},
    "embed-b": {"cat": 3, "dog": 3, "kitten": 3, "puppy": 3, "pet": 3,
                "rocket": 2, "orbit": 2, "moon": 2, "planet": 2,
                "bake": 1, "bread": 1, "recipe": 1, "soup": 1,
                "guitar": 0, "song": 0, "piano": 0},
}
DIM = 4


def vector(model, text):
    """The double's vector for text under model ("embed-a-..." or
    "embed-b-..."): word counts per axis, plus a small constant so no
    vector is zero. A "bench-..." model answers 384 pseudo-random floats
    seeded by the text."""
    if model.startswith("bench"):
        rnd = random.Random(text)
        return [rnd.uniform(-1, 1) for _ in range(384)]
    v = [0.01] * DIM
    for word in text.lower().replace(".", " ").split():
        axis = AXES[model[:7]].get(word)
        if axis is not None:
            v[axis] += 1.0
    return v


def cosine(a, b):
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a))
                  * math.sqrt(sum(y * y for y in b)))


class EmbeddingsDouble:
    """POST /v1/embeddings {model, input:[...]} -> one vector per input.
    Records (model, inputs, authorization) per request; a request holding
    a text in `stall` waits until release(), one holding a text in
    `refuse` is answered 400."""

    def __init__(self):
        self.requests = []
        self.stall = set()
        self.refuse = set()    # texts answered 400, as a provider would
        self.released = threading.Event()
        self.released.set()
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n))
                inputs = body["input"]
                if isinstance(inputs, str):
                    inputs = [inputs]
                double.requests.append(
                    (body.get("model"), list(inputs),
                     self.headers.get("Authorization")))
                if self.path != "/v1/embeddings" or \
                        (str(body.get("model"))[:7] not in AXES
                         and not str(body.get("model")).startswith("bench")):
                    self.send_response(404)
                    self.end_headers()
                    return
                if double.stall.intersection(inputs):
                    double.released.wait(20)
                if double.refuse.intersection(inputs):
                    out = json.dumps({"error": {
                        "message": "input too long", "type":
                        "invalid_request_error"}}).encode()
                    self.send_response(400)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(out)))
                    self.end_headers()
                    self.wfile.write(out)
                    return
                out = json.dumps({
                    "object": "list", "model": body["model"],
                    "data": [{"object": "embedding", "index": i,
                              "embedding": vector(body["model"], t)}
                             for i, t in enumerate(inputs)],
                    "usage": {"prompt_tokens": 1, "total_tokens": 1},
                }).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_port
        threading.Thread(target=self.server.serve_forever,
                         daemon=True).start()

    def hold(self, *texts):
        self.stall.update(texts)
        self.released.clear()

    def release(self):
        self.stall.clear()
        self.released.set()

    def close(self):
        self.release()
        self.server.shutdown()
        self.server.server_close()


def register_provider(worker, model, base_url, key_env):
    """An openai-type provider serving `model` (output price 0)."""
    r = User(worker, role="admin").call("POST", "/api/v1/llm/providers", {
        "name": "emb-%s" % uuid.uuid4().hex[:8], "type": "openai",
        "base_url": base_url, "api_key_env": key_env,
        "models": [{"name": model, "context_window": 8192,
                    "max_output_tokens": 1,
                    "price": {"input": 0.02, "output": 0, "cached": 0}}]})
    assert r.status == 201, r.body


class User:
    """Calls the worker as one user (the gateway's identity headers)."""

    def __init__(self, worker, role="user"):
        self.w, self.id, self.role = worker, str(uuid.uuid4()), role

    def call(self, method, path, body=None, raw=None):
        h = {"X-User-Id": self.id, "X-User-Role": self.role,
             "X-User-Username": "mem-" + self.role,
             "Content-Type": "application/json"}
        data = raw if raw is not None else (
            None if body is None else json.dumps(body))
        return self.w.request(method, path, h, data, timeout=30)

    def ok(self, method, path, body=None, status=200):
        r = self.call(method, path, body)
        assert r.status == status, (method, path, r.status, r.body)
        return r.json() if r.body else None

    def add(self, ns, *contents):
        out = self.ok("POST", "/api/v1/memories",
                      {"items": [{"namespace": ns, "content": c}
                                 for c in contents]}, status=201)
        return [m["id"] for m in out["items"]]

    def search(self, **body):
        return self.ok("POST", "/api/v1/memories/search", body)


def unique(prefix="ns"):
    return "%s-%s" % (prefix, uuid.uuid4().hex[:10])
