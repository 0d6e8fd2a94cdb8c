"""The chat turn's tool calls are recorded in mcp_performance.tool_calls as
POST /api/v1/mcp/tools/call records its own: a real turn against the
provider double (fixtures/llm_double.py, behaviour "loop") calling the
legacy.cjs MCP fixture through the MCP service."""

import json

import pytest

import stack
from test_chat_turn import Chat, Providers, direct, register_mcp
from test_chat_turn import double, key_file, legacy_mcp, tool_worker  # noqa: F401


def _records(pg, server_id, n):
    """The server's records once there are n (written in batches)."""
    def got():
        rows = pg.sql("SELECT tool, outcome, user_id, latency_us, bytes_in,"
                      " bytes_out, at FROM mcp_performance.tool_calls"
                      " WHERE server_id = %s ORDER BY at, id", (server_id,),
                      dbname="omni")
        return rows if len(rows) >= n else None
    return stack.wait_until(got, 10, "%d tool call records" % n,
                            interval=0.2)


def _server_id(worker, name):
    r = direct(worker, "GET", "/api/v1/mcp/servers/" + name, role="admin")
    assert r.status == 200, r.body
    return json.loads(r.body)["id"]


@pytest.mark.parametrize("stream", [False, True])
def test_the_turns_tool_calls_are_recorded_like_rest_calls(
        pg, tool_worker, double, key_file, legacy_mcp, stream):  # noqa: F811
    server = register_mcp(tool_worker, legacy_mcp)
    sid = _server_id(tool_worker, server)
    m = Providers(tool_worker, double, key_file).model("loop")
    chat = Chat(tool_worker)
    conv = chat.conversation(m["model"], max_tool_rounds=3)
    r = chat.send(conv, "use your tools", stream=stream,
                  tools=[server + "__echo", server + "__count"])
    assert r.status == (200 if stream else 201), r.body

    # round 1: echo and count (the third call's arguments are not JSON: it
    # never reaches the server), round 2: echo and count
    rows = _records(pg, sid, 4)
    assert sorted((t, o) for t, o, *_ in rows) == [
        ("count", "ok"), ("count", "ok"), ("echo", "ok"), ("echo", "ok")]
    for _, _, user, latency_us, bytes_in, bytes_out, _ in rows:
        assert 0 <= latency_us < 10_000_000
        assert bytes_in > 0 and bytes_out > 0

    # a REST call of the same tool lands in the same table, as before
    r = direct(tool_worker, "POST", "/api/v1/mcp/tools/call",
               {"server": server, "tool": "echo",
                "arguments": {"text": "rest"}}, user=chat.id)
    assert r.status == 200, r.body
    rows = _records(pg, sid, 5)
    assert rows[-1][:3] == ("echo", "ok", chat.id)

