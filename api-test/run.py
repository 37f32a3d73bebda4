"""Runs schemathesis against a live Guildhall server (started by `scripts/schemathesis`).

Starts the given server binary on a free port with a temporary data directory,
creates the objects the path parameters point at, writes a schemathesis config
that binds them, runs `schemathesis run` and stops the server. Exits with
schemathesis's status (non-zero on any failure).
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "run")
CHECKS = os.environ.get(
    "CHECKS", "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Api:
    def __init__(self, base: str):
        self.base = base

    def call(self, method: str, path: str, token: str | None = None, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if token:
            req.add_header("Authorization", token)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                raw = res.read()
                return res.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            raise SystemExit(f"setup: {method} {path} answered {e.code}: {raw[:500]!r}")

    def register(self, name: str) -> tuple[str, str]:
        _, body = self.call(
            "POST",
            "/auth/register",
            body={"username": name, "password": "correct horse battery", "email": f"{name}@example.test", "consent": True},
        )
        token = body["token"]
        _, me = self.call("GET", "/users/@me", token)
        return token, me["id"]


def setup(api: Api) -> dict:
    """The objects every operation's path parameters name."""
    owner, owner_id = api.register("owner")
    member, member_id = api.register("member")
    victim, victim_id = api.register("victim")
    _, guild = api.call("POST", "/guilds", owner, {"name": "Schemathesis"})
    gid, channel = guild["id"], guild["system_channel_id"]
    _, spare_guild = api.call("POST", "/guilds", owner, {"name": "Deleted by the run"})
    _, spare_channel = api.call("POST", f"/guilds/{gid}/channels", owner, {"name": "deleted-by-the-run"})
    _, message = api.call("POST", f"/channels/{channel}/messages", owner, {"content": "hello"})
    thumbs = urllib.parse.quote("\N{THUMBS UP SIGN}")
    api.call("PUT", f"/channels/{channel}/messages/{message['id']}/reactions/{thumbs}/@me", owner)
    _, role = api.call("POST", f"/guilds/{gid}/roles", owner, {"name": "tester"})
    _, invite = api.call("POST", f"/channels/{channel}/invites", owner, {})
    api.call("POST", f"/invites/{invite['code']}", member)
    api.call("POST", f"/invites/{invite['code']}", victim)
    _, spare_invite = api.call("POST", f"/channels/{channel}/invites", owner, {"unique": True})
    _, spare_role = api.call("POST", f"/guilds/{gid}/roles", owner, {"name": "deleted by the run"})
    _, spare_message = api.call("POST", f"/channels/{channel}/messages", owner, {"content": "deleted by the run"})
    _, thread = api.call("POST", f"/channels/{channel}/threads", owner, {"name": "a thread", "type": 11})
    _, app = api.call("POST", "/applications", owner, {"name": "schemathesis app"})
    _, bot = api.call("POST", f"/applications/{app['id']}/bot", owner)
    # The bot joins the guild, so a run as the bot (AS=bot) reaches guild routes.
    api.call("POST", f"/oauth2/authorize?client_id={app['id']}&scope=bot&permissions=8", owner,
             {"guild_id": gid, "authorize": True})
    return {
        "token": owner,
        "bot_token": "Bot " + bot["token"],
        "owner_id": owner_id,
        "member_id": member_id,
        "victim_id": victim_id,
        "spare_invite": spare_invite["code"],
        "spare_role_id": spare_role["id"],
        "spare_message_id": spare_message["id"],
        "guild_id": gid,
        "channel_id": channel,
        "thread_id": thread["id"],
        "spare_guild_id": spare_guild["id"],
        "spare_channel_id": spare_channel["id"],
        "message_id": message["id"],
        "role_id": role["id"],
        "code": invite["code"],
        "application_id": app["id"],
    }


def toml_str(v: str) -> str:
    return json.dumps(v, ensure_ascii=False)


def write_config(ids: dict, path: str) -> None:
    params = {
        "path.guild_id": ids["guild_id"],
        "path.channel_id": ids["channel_id"],
        "path.message_id": ids["message_id"],
        "path.user_id": ids["member_id"],
        "path.user": "@me",
        "path.role_id": ids["role_id"],
        "path.overwrite_id": ids["role_id"],
        "path.code": ids["code"],
        "path.application_id": ids["application_id"],
        "path.emoji": "\N{THUMBS UP SIGN}",
    }
    caller = ids["bot_token"] if os.environ.get("AS") == "bot" else ids["token"]
    lines = ["[headers]", f"Authorization = {toml_str(caller)}", "", "[parameters]"] + [f"{toml_str(k)} = {toml_str(v)}" for k, v in params.items()]
    # Destructive operations get objects of their own, so the rest of the run
    # still finds the guild, channel, member, role, invite and message;
    # thread-member routes get the thread.
    victim = {"path.user_id": ids["victim_id"]}
    per_op = [
        ("delete_guild", {"path.guild_id": ids["spare_guild_id"]}),
        ("delete_channel", {"path.channel_id": ids["spare_channel_id"]}),
        ("kick_member", victim),
        ("ban", victim),
        ("unban", victim),
        ("get_ban", victim),
        ("delete_role", {"path.role_id": ids["spare_role_id"]}),
        ("delete_invite", {"path.code": ids["spare_invite"]}),
        ("delete_message", {"path.message_id": ids["spare_message_id"]}),
        ("list_thread_members", {"path.channel_id": ids["thread_id"]}),
        ("get_thread_member", {"path.channel_id": ids["thread_id"], "path.user_id": "@me"}),
        ("add_thread_member", {"path.channel_id": ids["thread_id"]}),
        ("remove_thread_member", {"path.channel_id": ids["thread_id"]}),
    ]
    for op, p in per_op:
        lines += ["", "[[operations]]", f"include-operation-id = {toml_str(op)}", "[operations.parameters]"]
        lines += [f"{toml_str(k)} = {toml_str(v)}" for k, v in p.items()]
    # Routes only a bot may use: the user token would only ever get 403.
    for op in ["get_current", "get_current_oauth2", "patch_current"]:
        lines += ["", "[[operations]]", f"include-operation-id = {toml_str(op)}", "[operations.headers]"]
        lines += [f"Authorization = {toml_str(ids['bot_token'])}"]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    args, extra = ap.parse_known_args()
    max_examples = os.environ.get("MAX_EXAMPLES", "30")
    max_time = os.environ.get("MAX_TIME", "240")
    # One worker: with two, hypothesis sometimes trips over a Python 3.11 `ast`
    # race (a "Runtime Error" in the report that is not the server's).
    workers = os.environ.get("WORKERS", "1")
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    data = tempfile.mkdtemp(prefix="guildhall-schemathesis-")
    env = dict(
        os.environ,
        GUILDHALL_LISTEN=f"127.0.0.1:{port}",
        GUILDHALL_PUBLIC_URL=origin,
        GUILDHALL_DATA_DIR=data,
        GUILDHALL_PASSWORD_MEMORY_KIB="64",
        GUILDHALL_PASSWORD_ITERATIONS="1",
        GUILDHALL_RATELIMIT_ROUTE_LIMIT="0",
        GUILDHALL_RATELIMIT_GLOBAL_PER_SECOND="0",
        GUILDHALL_LOGIN_LIMIT_PER_ACCOUNT="0",
        GUILDHALL_LOGIN_LIMIT_PER_IP="0",
        RUST_BACKTRACE="1",
    )
    log = open(os.path.join(OUT, "server.log"), "w")
    server = subprocess.Popen([args.server, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(origin + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.time() > deadline:
                print("schemathesis: the server did not start; see api-test/run/server.log", file=sys.stderr)
                return 2
            time.sleep(0.2)
        ids = setup(Api(origin + "/api/v10"))
        config = os.path.join(OUT, "schemathesis.toml")
        write_config(ids, config)
        cmd = [
            os.path.join(os.path.dirname(sys.executable), "schemathesis"),
            "--config-file", config,
            "run", f"{origin}/api/v10/openapi.json",
            "--url", origin,
            "--checks", CHECKS,
            "--max-examples", max_examples,
            "--max-time", max_time,
            "--workers", workers,
            "--request-timeout", "30",
            "--report", "junit",
            "--report-dir", OUT,
            *extra,
        ]
        print("schemathesis: " + " ".join(cmd[1:]), file=sys.stderr)
        # schemathesis keeps a cache in its working directory: keep it in run/.
        code = subprocess.call(cmd, cwd=OUT)
        if server.poll() is not None:
            print(f"schemathesis: the server exited ({server.returncode}) during the run", file=sys.stderr)
            code = code or 3
        with open(os.path.join(OUT, "server.log")) as f:
            panics = [line for line in f if "panicked" in line]
        if panics:
            print("schemathesis: the server panicked:\n" + "".join(panics[:20]), file=sys.stderr)
            code = code or 4
        return code
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
