#!/usr/bin/env python3
"""Guildhall compatibility harness: drives the real discord.py and discord.js
against a Guildhall server.

1. Prepares the world through REST as a human client would (register two
   users, a guild, a text channel, a bot application with privileged intents,
   OAuth2 bot authorisation into the guild, an invite accepted by user 2).
   Every step is a check of library "setup" (results/setup.jsonl).
2. Runs compat/dpy_bot.py (discord.py) and compat/djs_bot.js (discord.js) as
   subprocesses; each prints one JSON line per check on stdout.
3. Writes compat/results/<lib>.jsonl, prints "<lib>: N passed, M failed" per
   library and a final "compat: N passed, M failed"; exits 1 if anything failed.

Standard library only (the libraries under test live in compat/.venv and
compat/node_modules, installed by scripts/compat-setup).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, List, Optional, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_PY = os.path.join(HERE, ".venv", "bin", "python")

# Checks every bot must report (same names in dpy_bot.py and djs_bot.js).
BOT_CHECKS = [
    "login",
    "ready",
    "message_create",
    "message_update",
    "reaction_add",
    "history",
    "members_chunk",
    "members_fetch",
    "user2_message",
    "message_delete",
    "resume",
    "resume_replay",
    "after_resume",
]

LIBS = {
    "discord.py": {"short": "dpy", "script": "dpy_bot.py"},
    "discord.js": {"short": "djs", "script": "djs_bot.js"},
}

# Application flags: GATEWAY_PRESENCE | GATEWAY_GUILD_MEMBERS | GATEWAY_MESSAGE_CONTENT
APP_FLAGS = (1 << 12) | (1 << 14) | (1 << 18)


def log(msg: str) -> None:
    print(f"[compat] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------- REST


class RestError(Exception):
    def __init__(self, summary: str):
        super().__init__(summary)
        self.summary = summary


def _clip(s: str, n: int = 600) -> str:
    return s if len(s) <= n else s[:n] + f"...(+{len(s) - n} chars)"


class Rest:
    def __init__(self, base: str):
        self.base = base.rstrip("/")
        self.api = self.base + "/api/v10"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: Optional[str] = None,
        expect: Tuple[int, ...] = (200, 201),
        timeout: float = 15.0,
    ) -> Tuple[int, Any, Dict[str, str]]:
        """Performs a request; raises RestError (with the exact exchange) when
        the status is not in `expect` or the body is not the JSON expected."""
        url = self.api + path
        data = None
        headers = {"User-Agent": "GuildhallCompat (run.py, 1.0)"}
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if token:
            headers["Authorization"] = token
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        shown_body = "" if body is None else " " + json.dumps(body)
        shown_auth = ""
        if token:
            shown_auth = " [Authorization: Bot …]" if token.startswith("Bot ") else " [Authorization: <user token>]"
        where = f"{method} /api/v10{path}{shown_body}{shown_auth}"
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw, hdrs = resp.status, resp.read(), {k.lower(): v for k, v in resp.headers.items()}
        except urllib.error.HTTPError as e:
            status, raw, hdrs = e.code, e.read(), {k.lower(): v for k, v in (e.headers or {}).items()}
        except (urllib.error.URLError, OSError) as e:
            raise RestError(f"{where} -> transport error: {e}") from None
        text = raw.decode("utf-8", "replace")
        ctype = hdrs.get("content-type", "")
        if status not in expect:
            raise RestError(f"{where} -> HTTP {status} (Content-Type: {ctype!r}) {_clip(text)}")
        if status == 204 or not raw:
            return status, None, hdrs
        try:
            parsed = json.loads(text)
        except ValueError:
            raise RestError(f"{where} -> HTTP {status} but body is not JSON: {_clip(text)}") from None
        if ctype != "application/json":
            # discord.py compares this header for equality (protocol notes 0.1)
            raise RestError(
                f"{where} -> HTTP {status} with Content-Type {ctype!r}; discord.py requires exactly "
                f"'application/json' (body: {_clip(text, 200)})"
            )
        return status, parsed, hdrs


def need(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj or obj[key] in (None, ""):
        raise RestError(f"{where}: response lacks '{key}': {_clip(json.dumps(obj))}")
    return obj[key]


# ------------------------------------------------------------------- results


class Results:
    def __init__(self, results_dir: str):
        self.dir = results_dir
        os.makedirs(results_dir, exist_ok=True)
        self.by_lib: Dict[str, List[dict]] = {}

    def add(self, lib: str, check: str, ok: bool, detail: str = "", **extra: Any) -> dict:
        rec = {"lib": lib, "check": check, "ok": bool(ok), "detail": detail}
        rec.update(extra)
        self.by_lib.setdefault(lib, []).append(rec)
        mark = "PASS" if ok else "FAIL"
        log(f"{mark} {lib} {check}: {_clip(detail, 300)}")
        return rec

    def write(self) -> None:
        for lib, recs in self.by_lib.items():
            with open(os.path.join(self.dir, f"{lib}.jsonl"), "w") as f:
                for rec in recs:
                    f.write(json.dumps(rec) + "\n")

    def summary(self) -> int:
        total_p = total_f = 0
        for lib, recs in self.by_lib.items():
            p = sum(1 for r in recs if r["ok"])
            f = len(recs) - p
            total_p += p
            total_f += f
            for r in recs:
                if not r["ok"]:
                    print(f"  FAIL {lib} {r['check']}: {r['detail']}")
            print(f"{lib}: {p} passed, {f} failed")
        print(f"compat: {total_p} passed, {total_f} failed")
        return total_f


# --------------------------------------------------------------------- setup


def setup_world(rest: Rest, res: Results) -> Optional[Dict[str, str]]:
    """Creates users, guild, channel, bot; returns the env for the bots or None."""
    lib = "setup"
    env: Dict[str, str] = {}
    tag = secrets.token_hex(3)

    def step(check: str, fn):
        try:
            detail = fn()
        except RestError as e:
            res.add(lib, check, False, e.summary)
            return False
        except Exception as e:  # noqa: BLE001 - report anything as a failed check
            res.add(lib, check, False, f"{type(e).__name__}: {e}")
            return False
        res.add(lib, check, True, detail or "")
        return True

    users: Dict[int, Dict[str, str]] = {}

    def register(n: int):
        def go():
            uname = f"compat{n}_{tag}"
            body = {
                "username": uname,
                "password": f"pw-{tag}-{n}-Secret!",
                "email": f"{uname}@example.com",
                "consent": True,
                "date_of_birth": "1990-01-01",
            }
            _, data, _ = rest.call("POST", "/auth/register", body)
            token = need(data, "token", "POST /auth/register")
            _, me, _ = rest.call("GET", "/users/@me", token=token)
            uid = need(me, "id", "GET /users/@me")
            if not isinstance(uid, str):
                raise RestError(f"GET /users/@me: id must be a string snowflake, got {uid!r}")
            users[n] = {"token": token, "id": uid, "username": uname, "email": body["email"],
                        "password": body["password"]}
            return f"user {n}: {uname} id={uid}"
        return go

    if not step("register_user1", register(1)) or not step("register_user2", register(2)):
        return None
    u1, u2 = users[1], users[2]

    def login():
        _, data, _ = rest.call("POST", "/auth/login", {"login": u1["email"], "password": u1["password"]})
        tok = need(data, "token", "POST /auth/login")
        _, me, _ = rest.call("GET", "/users/@me", token=tok)
        if me.get("id") != u1["id"]:
            raise RestError(f"login token belongs to {me.get('id')}, expected {u1['id']}")
        return "login by email returns a working token"
    step("login_user1", login)

    def gateway():
        _, data, _ = rest.call("GET", "/gateway")
        url = need(data, "url", "GET /gateway")
        env["GH_GATEWAY"] = url
        return f"gateway url {url}"
    if not step("gateway", gateway):
        return None

    def guild():
        _, data, _ = rest.call("POST", "/guilds", {"name": f"Compat {tag}"}, token=u1["token"])
        env["GH_GUILD_ID"] = need(data, "id", "POST /guilds")
        return f"guild {env['GH_GUILD_ID']}"
    if not step("create_guild", guild):
        return None

    def channel():
        _, data, _ = rest.call("POST", f"/guilds/{env['GH_GUILD_ID']}/channels",
                               {"name": "compat", "type": 0}, token=u1["token"])
        env["GH_CHANNEL_ID"] = need(data, "id", "POST /guilds/{id}/channels")
        if data.get("type") != 0:
            raise RestError(f"created channel has type {data.get('type')!r}, expected 0")
        if data.get("guild_id") != env["GH_GUILD_ID"]:
            raise RestError(f"created channel has guild_id {data.get('guild_id')!r}")
        return f"channel {env['GH_CHANNEL_ID']}"
    if not step("create_channel", channel):
        # Keep going with a default text channel if the guild came with one,
        # so that one missing route does not hide everything else.
        def fallback():
            _, chans, _ = rest.call("GET", f"/guilds/{env['GH_GUILD_ID']}/channels", token=u1["token"])
            text = [c for c in chans or [] if isinstance(c, dict) and c.get("type") == 0]
            if not text:
                raise RestError(f"GET /guilds/{{id}}/channels has no text channel: {_clip(json.dumps(chans))}")
            env["GH_CHANNEL_ID"] = text[0]["id"]
            return f"continuing with the guild's existing text channel {text[0]['id']} ({text[0].get('name')})"
        if not step("existing_channel", fallback):
            return None

    app: Dict[str, str] = {}

    def application():
        _, data, _ = rest.call("POST", "/applications", {"name": f"CompatBot {tag}"}, token=u1["token"])
        app["id"] = need(data, "id", "POST /applications")
        return f"application {app['id']}"
    if not step("create_application", application):
        return None

    def bot_token():
        _, data, _ = rest.call("POST", f"/applications/{app['id']}/bot/reset", token=u1["token"])
        env["GH_BOT_TOKEN"] = need(data, "token", "POST /applications/{id}/bot/reset")
        _, me, _ = rest.call("GET", "/users/@me", token="Bot " + env["GH_BOT_TOKEN"])
        env["GH_BOT_ID"] = need(me, "id", "GET /users/@me (bot)")
        if not me.get("bot"):
            raise RestError(f"GET /users/@me with the bot token: 'bot' is {me.get('bot')!r}, expected true")
        return f"bot user {env['GH_BOT_ID']}"
    if not step("bot_token", bot_token):
        return None

    def flags():
        _, data, _ = rest.call("PATCH", f"/applications/{app['id']}", {"flags": APP_FLAGS}, token=u1["token"])
        got = data.get("flags") if isinstance(data, dict) else None
        if not isinstance(got, int) or (got & APP_FLAGS) != APP_FLAGS:
            raise RestError(f"PATCH /applications/{{id}} flags={APP_FLAGS}: response flags={got!r}")
        return f"flags={got}"
    step("app_intent_flags", flags)

    def gateway_bot():
        _, data, _ = rest.call("GET", "/gateway/bot", token="Bot " + env["GH_BOT_TOKEN"])
        need(data, "url", "GET /gateway/bot")
        ssl = need(data, "session_start_limit", "GET /gateway/bot")
        for k in ("total", "remaining", "reset_after", "max_concurrency"):
            need(ssl, k, "GET /gateway/bot session_start_limit")
        need(data, "shards", "GET /gateway/bot")
        if data["url"] != env["GH_GATEWAY"]:
            return f"note: /gateway/bot url {data['url']} differs from /gateway url {env['GH_GATEWAY']}"
        return f"url {data['url']}, shards {data['shards']}"
    step("gateway_bot", gateway_bot)

    def authorize():
        q = urllib.parse.urlencode({"client_id": app["id"], "scope": "bot"})
        _, data, _ = rest.call("POST", f"/oauth2/authorize?{q}",
                               {"guild_id": env["GH_GUILD_ID"], "permissions": "8", "authorize": True},
                               token=u1["token"])
        need(data, "location", "POST /oauth2/authorize")
        _, member, _ = rest.call("GET", f"/guilds/{env['GH_GUILD_ID']}/members/{env['GH_BOT_ID']}",
                                 token="Bot " + env["GH_BOT_TOKEN"])
        return f"bot joined; location={data['location']}; member roles={member.get('roles')}"
    if not step("oauth2_add_bot", authorize):
        return None

    def invite():
        _, data, _ = rest.call("POST", f"/channels/{env['GH_CHANNEL_ID']}/invites", {}, token=u1["token"])
        code = need(data, "code", "POST /channels/{id}/invites")
        rest.call("POST", f"/invites/{urllib.parse.quote(code)}", {}, token=u2["token"])
        _, member, _ = rest.call("GET", f"/guilds/{env['GH_GUILD_ID']}/members/{u2['id']}", token=u1["token"])
        if (member.get("user") or {}).get("id") != u2["id"]:
            raise RestError(f"member object of user 2 has user {member.get('user')!r}")
        return f"invite {code} accepted by user 2"
    if not step("invite_user2", invite):
        return None

    env.update({
        "GH_APP_ID": app["id"],
        "GH_USER1_ID": u1["id"],
        "GH_USER2_ID": u2["id"],
        "GH_USER2_TOKEN": u2["token"],
        "GH_USER1_TOKEN": u1["token"],
    })
    return env


# ---------------------------------------------------------------- bot runner


def bot_command(lib: str) -> Optional[List[str]]:
    script = os.path.join(HERE, LIBS[lib]["script"])
    if lib == "discord.py":
        if not os.path.exists(VENV_PY):
            return None
        return [VENV_PY, script]
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(HERE, "node_modules", "discord.js")):
        return None
    return [node, script]


def run_bot(lib: str, env_extra: Dict[str, str], res: Results, timeout: float, verbose: bool) -> None:
    cmd = bot_command(lib)
    if cmd is None:
        res.add(lib, "installed", False, "library not installed: run scripts/compat-setup")
        for c in BOT_CHECKS:
            res.add(lib, c, False, "not run: library not installed")
        return
    env = dict(os.environ)
    env.update(env_extra)
    env["GH_TIMEOUT"] = str(timeout)
    env["PYTHONUNBUFFERED"] = "1"
    log_path = os.path.join(res.dir, f"{lib}.log")
    log(f"running {lib}: {' '.join(cmd)} (stderr -> {log_path})")
    started = time.monotonic()
    with open(log_path, "w") as errf:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, env=env, cwd=HERE,
                                text=True, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout + 20)
            killed = False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            killed = True
    seen = set()
    for line in out.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
            check = rec["check"]
        except (ValueError, KeyError, TypeError):
            log(f"{lib}: ignoring non-JSON stdout line: {_clip(line, 200)}")
            continue
        if check in seen:
            continue
        seen.add(check)
        extra = {k: v for k, v in rec.items() if k not in ("lib", "check", "ok", "detail")}
        res.add(lib, check, bool(rec.get("ok")), str(rec.get("detail", "")), **extra)
    for c in BOT_CHECKS:
        if c not in seen:
            res.add(lib, c, False, "no result reported (bot crashed or hung; see results/%s.log)" % lib)
    elapsed = time.monotonic() - started
    if killed:
        res.add(lib, "exit", False, f"killed after {elapsed:.0f}s (did not exit on its own)")
    else:
        res.add(lib, "exit", proc.returncode == 0, f"exit code {proc.returncode} after {elapsed:.1f}s")
    if verbose:
        with open(log_path) as f:
            sys.stderr.write(f.read())


# ------------------------------------------------------------------- spawning


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: Optional[subprocess.Popen], deadline: float) -> Optional[str]:
    last = "no answer"
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return f"server exited with code {proc.returncode} before becoming healthy"
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
                if r.status == 200:
                    return None
                last = f"HTTP {r.status}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}"
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        time.sleep(0.2)
    return f"GET /healthz never returned 200 ({last})"


def main() -> int:
    ap = argparse.ArgumentParser(
        description="Run discord.py and discord.js, unmodified, against a Guildhall server.",
        epilog="Install the libraries first with scripts/compat-setup.",
    )
    where = ap.add_mutually_exclusive_group(required=True)
    where.add_argument("--server", metavar="URL", help="base URL of a running server, e.g. http://127.0.0.1:8080")
    where.add_argument("--spawn", metavar="BINARY",
                       help="start BINARY serve --listen 127.0.0.1:PORT --data-dir TMPDIR on a free port")
    ap.add_argument("--lib", action="append", choices=sorted(LIBS) + ["dpy", "djs"],
                    help="library to run (repeatable; default: all)")
    ap.add_argument("--timeout", type=float, default=90.0, help="hard timeout per bot in seconds (default 90)")
    ap.add_argument("--results", default=os.path.join(HERE, "results"), help="results directory")
    ap.add_argument("--keep-data", action="store_true", help="with --spawn: keep the temp data dir")
    ap.add_argument("--debug", action="store_true", help="library debug logging (to the .log files)")
    ap.add_argument("-v", "--verbose", action="store_true", help="copy bot stderr logs to stderr")
    args = ap.parse_args()

    libs: List[str] = []
    for name in args.lib or list(LIBS):
        full = {"dpy": "discord.py", "djs": "discord.js"}.get(name, name)
        if full not in libs:
            libs.append(full)

    res = Results(args.results)
    for f in os.listdir(res.dir):
        if f.endswith(".jsonl") or f.endswith(".log"):
            os.remove(os.path.join(res.dir, f))

    server: Optional[subprocess.Popen] = None
    data_dir: Optional[str] = None
    server_log = None
    try:
        if args.spawn:
            binary = os.path.abspath(args.spawn) if os.path.exists(args.spawn) else shutil.which(args.spawn)
            if not binary:
                print(f"compat: binary not found: {args.spawn}", file=sys.stderr)
                return 2
            port = free_port()
            data_dir = tempfile.mkdtemp(prefix="guildhall-compat-")
            base = f"http://127.0.0.1:{port}"
            server_log = open(os.path.join(res.dir, "server.log"), "w")
            cmd = [binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir]
            log(f"spawning {' '.join(cmd)} (log -> {server_log.name})")
            server = subprocess.Popen(cmd, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True)
            err = wait_healthy(base, server, time.monotonic() + 30)
            if err:
                res.add("setup", "server_start", False, err)
                res.write()
                res.summary()
                return 1
            res.add("setup", "server_start", True, f"{base} healthy")
        else:
            base = args.server.rstrip("/")
            err = wait_healthy(base, None, time.monotonic() + 5)
            if err:
                log(f"warning: {err}; trying anyway")

        rest = Rest(base)
        env = setup_world(rest, res)
        if env is None:
            for lib in libs:
                res.add(lib, "setup", False, "not run: world setup through REST failed (see setup checks)")
        else:
            env["GH_BASE"] = base
            # For re-running one bot by hand: env $(cat results/env) python dpy_bot.py
            with open(os.path.join(res.dir, "env"), "w") as f:
                f.write("".join(f"{k}={v}\n" for k, v in sorted(env.items())))
            if args.debug:
                env["GH_DEBUG"] = "1"
            for lib in libs:
                run_bot(lib, env, res, args.timeout, args.verbose)
    finally:
        if server is not None:
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    os.killpg(server.pid, signal.SIGKILL)
                    server.wait()
            else:
                res.add("setup", "server_alive", False,
                        f"server exited during the run with code {server.returncode} (see results/server.log)")
        if server_log:
            server_log.close()
        if data_dir and not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)

    res.write()
    failed = res.summary()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
