#!/usr/bin/env python3
"""discord.py 2.x scenario against a Guildhall server.

Run by compat/run.py with the compat/.venv interpreter. Environment:
  GH_BASE        http://127.0.0.1:PORT  (REST base is GH_BASE/api/v10)
  GH_GATEWAY     gateway URL from GET /api/v10/gateway
  GH_BOT_TOKEN, GH_GUILD_ID, GH_CHANNEL_ID, GH_BOT_ID,
  GH_USER1_ID, GH_USER2_ID, GH_USER2_TOKEN, GH_TIMEOUT (s), GH_DEBUG
stdout: one JSON line per check only; logs go to stderr.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, List, Optional

import discord
import discord.gateway
import discord.http
import yarl

LIB = "discord.py"
CHECKS = [
    "login", "ready", "message_create", "message_update", "reaction_add", "history",
    "members_chunk", "members_fetch", "user2_message", "message_delete", "resume",
    "resume_replay", "after_resume",
]
EVENT_TIMEOUT = 8.0

env = os.environ.get
BASE = env("GH_BASE", "http://127.0.0.1:8080").rstrip("/")
GATEWAY = env("GH_GATEWAY", "")
TOKEN = env("GH_BOT_TOKEN", "")
GUILD_ID = int(env("GH_GUILD_ID", "0") or 0)
CHANNEL_ID = int(env("GH_CHANNEL_ID", "0") or 0)
USER1_ID = int(env("GH_USER1_ID", "0") or 0)
USER2_ID = int(env("GH_USER2_ID", "0") or 0)
USER2_TOKEN = env("GH_USER2_TOKEN", "")
TIMEOUT = float(env("GH_TIMEOUT", "90"))

log = logging.getLogger("compat.dpy")
_reported: Dict[str, bool] = {}
_t0 = time.monotonic()


class _LibErrors(logging.Handler):
    """Keeps discord.py's own warnings/errors (e.g. a failed WS handshake) for failure details."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.items: List[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        msg = record.getMessage()
        if "voice will NOT be supported" in msg:
            return
        if record.exc_info and record.exc_info[1] is not None:
            msg += f" [{type(record.exc_info[1]).__name__}: {record.exc_info[1]}]"
        self.items.append(msg)


LIB_ERRORS = _LibErrors()


def last_lib_errors(n: int = 2) -> str:
    if not LIB_ERRORS.items:
        return ""
    return "; discord.py logged: " + " | ".join(LIB_ERRORS.items[-n:])


def report(check: str, ok: bool, detail: str = "") -> None:
    if check in _reported:
        return
    _reported[check] = ok
    line = {"lib": LIB, "check": check, "ok": bool(ok), "detail": detail,
            "t": round(time.monotonic() - _t0, 3)}
    sys.stdout.write(json.dumps(line) + "\n")
    sys.stdout.flush()
    log.info("%s %s: %s", "PASS" if ok else "FAIL", check, detail)


def report_missing(reason: str) -> None:
    for c in CHECKS:
        if c not in _reported:
            report(c, False, reason)


# ----------------------------------------------------------------- raw REST


def user2_post(content: str) -> Dict[str, Any]:
    """POST a message as user 2 with plain urllib (blocking; run in a thread)."""
    url = f"{BASE}/api/v10/channels/{CHANNEL_ID}/messages"
    req = urllib.request.Request(
        url, method="POST", data=json.dumps({"content": content}).encode(),
        headers={"Authorization": USER2_TOKEN, "Content-Type": "application/json",
                 "User-Agent": "GuildhallCompat (user2, 1.0)"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"POST /api/v10/channels/{CHANNEL_ID}/messages as user 2 -> "
                           f"HTTP {e.code}: {e.read()[:400]!r}") from None


# ------------------------------------------------------------ event journal


class Journal:
    """Records every event from the start so that waits never race the event."""

    def __init__(self) -> None:
        self.events: Dict[str, List[Any]] = {}
        self.cond = asyncio.Condition()

    async def add(self, kind: str, item: Any) -> None:
        async with self.cond:
            self.events.setdefault(kind, []).append(item)
            self.cond.notify_all()

    def all(self, kind: str) -> List[Any]:
        return self.events.get(kind, [])

    async def wait(self, kind: str, pred: Callable[[Any], bool] = lambda _: True,
                   timeout: float = EVENT_TIMEOUT) -> Optional[Any]:
        def find():
            for it in self.events.get(kind, []):
                if pred(it):
                    return it
            return None

        async def waiter():
            async with self.cond:
                await self.cond.wait_for(lambda: find() is not None)
                return find()
        try:
            return await asyncio.wait_for(waiter(), timeout)
        except asyncio.TimeoutError:
            return None


# ----------------------------------------------------------------- scenario


def make_client(journal: Journal) -> discord.Client:
    intents = discord.Intents.default()
    intents.members = True
    intents.message_content = True
    kwargs: Dict[str, Any] = {}
    if env("GH_DPY_NO_KEEPALIVE"):
        # Diagnostic only: a fresh TCP connection per request, so the gateway
        # handshake never reuses a REST keep-alive connection.
        import aiohttp
        kwargs["connector"] = aiohttp.TCPConnector(force_close=True)
    client = discord.Client(intents=intents, enable_debug_events=True, **kwargs)

    @client.event
    async def on_socket_event_type(t: str):
        await journal.add("dispatch", t)

    @client.event
    async def on_ready():
        await journal.add("ready", time.monotonic())

    @client.event
    async def on_resumed():
        await journal.add("resumed", time.monotonic())

    @client.event
    async def on_disconnect():
        await journal.add("disconnect", time.monotonic())

    @client.event
    async def on_message(m: discord.Message):
        await journal.add("message", m)

    @client.event
    async def on_message_edit(before: discord.Message, after: discord.Message):
        await journal.add("message_edit", after)

    @client.event
    async def on_raw_message_edit(p: discord.RawMessageUpdateEvent):
        await journal.add("raw_message_edit", p)

    @client.event
    async def on_raw_reaction_add(p: discord.RawReactionActionEvent):
        await journal.add("raw_reaction_add", p)

    @client.event
    async def on_raw_message_delete(p: discord.RawMessageDeleteEvent):
        await journal.add("raw_message_delete", p)

    @client.event
    async def on_error(event: str, *args: Any, **kwargs: Any):
        log.exception("exception in event handler %s", event)
        await journal.add("error", f"{event}: {sys.exc_info()[1]!r}")

    return client


def errtext(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


async def scenario(client: discord.Client, journal: Journal) -> None:
    # ---- login: GET /users/@me, GET /oauth2/applications/@me
    try:
        await client.login(TOKEN)
    except Exception as e:  # noqa: BLE001
        report("login", False, errtext(e))
        report_missing("not run: login failed")
        return
    report("login", True, f"logged in as {client.user} ({client.user.id if client.user else '?'}), "
                          f"application_id={client.application_id}")
    bot_id = client.user.id if client.user else 0

    # ---- ready
    connect_task = asyncio.create_task(client.connect(reconnect=True), name="connect")
    started = time.monotonic()
    ready_wait = asyncio.create_task(journal.wait("ready", timeout=30))
    done, _ = await asyncio.wait({connect_task, ready_wait}, return_when=asyncio.FIRST_COMPLETED)
    if connect_task in done:
        exc = connect_task.exception()
        ready_wait.cancel()
        report("ready", False, f"gateway connection ended before on_ready: "
                               f"{errtext(exc) if exc else 'returned'}; "
                               f"dispatches received: {journal.all('dispatch')[:20]}{last_lib_errors()}")
        report_missing("not run: no gateway session")
        return
    if ready_wait.result() is None:
        report("ready", False, "on_ready did not fire within 30 s "
                               f"(guilds cached: {[g.id for g in client.guilds]}; "
                               f"dispatches received: {journal.all('dispatch')[:20]}){last_lib_errors()}")
        report_missing("not run: no on_ready")
        return
    took = time.monotonic() - started
    guild = client.get_guild(GUILD_ID)
    channel = guild.get_channel(CHANNEL_ID) if guild else None
    if guild is None:
        report("ready", False, f"on_ready after {took:.1f}s but guild {GUILD_ID} not in client.guilds "
                               f"({[g.id for g in client.guilds]})")
        report_missing("not run: guild missing")
        return
    if not isinstance(channel, discord.TextChannel):
        report("ready", False, f"guild {GUILD_ID} cached but channel {CHANNEL_ID} is {channel!r}; "
                               f"channels: {[(c.id, str(c.type)) for c in guild.channels]}")
        report_missing("not run: channel missing")
        return
    report("ready", True, f"on_ready after {took:.1f}s; guild '{guild.name}' members cached="
                          f"{len(guild.members)} member_count={guild.member_count}; channel #{channel.name}")

    def by_id(mid: int) -> Callable[[Any], bool]:
        return lambda m: m.id == mid

    # ---- message_create
    msg: Optional[discord.Message] = None
    try:
        content = f"dpy hello {int(time.time() * 1000)}"
        msg = await channel.send(content)
        got = await journal.wait("message", by_id(msg.id))
        if got is None:
            report("message_create", False, f"sent message {msg.id} but on_message did not fire within "
                                            f"{EVENT_TIMEOUT}s")
        else:
            problems = []
            if got.content != content:
                problems.append(f"content {got.content!r} != {content!r}")
            if got.author.id != bot_id:
                problems.append(f"author {got.author.id} != bot {bot_id}")
            if got.guild is None or got.guild.id != GUILD_ID:
                problems.append(f"message.guild is {got.guild!r} (MESSAGE_CREATE lacks guild_id?)")
            if not isinstance(got.author, discord.Member):
                problems.append("author is not a Member (MESSAGE_CREATE lacks member?)")
            report("message_create", not problems, "; ".join(problems) or f"on_message for {msg.id}")
    except Exception as e:  # noqa: BLE001
        report("message_create", False, errtext(e))

    # ---- message_update
    if msg is not None:
        try:
            new = msg.content + " (edited)"
            edited = await msg.edit(content=new)
            got = await journal.wait("raw_message_edit", lambda p: p.message_id == msg.id)
            if got is None:
                report("message_update", False, f"edited {msg.id} (REST ok, edited_at={edited.edited_at}) "
                                                f"but on_raw_message_edit did not fire")
            else:
                dcontent = got.data.get("content")
                cooked = await journal.wait("message_edit", by_id(msg.id), timeout=1)
                problems = []
                if dcontent != new:
                    problems.append(f"MESSAGE_UPDATE content {dcontent!r} != {new!r}")
                if edited.edited_at is None:
                    problems.append("PATCH response has edited_timestamp null")
                report("message_update", not problems,
                       "; ".join(problems) or f"on_raw_message_edit ok; on_message_edit "
                                              f"{'fired' if cooked else 'did not fire'}")
        except Exception as e:  # noqa: BLE001
            report("message_update", False, errtext(e))
    else:
        report("message_update", False, "not run: no message")

    # ---- reaction_add
    if msg is not None:
        try:
            await msg.add_reaction("\N{THUMBS UP SIGN}")
            got = await journal.wait("raw_reaction_add", lambda p: p.message_id == msg.id)
            if got is None:
                report("reaction_add", False, "PUT reaction ok but on_raw_reaction_add did not fire")
            else:
                problems = []
                if got.user_id != bot_id:
                    problems.append(f"user_id {got.user_id} != bot {bot_id}")
                if got.emoji.name != "\N{THUMBS UP SIGN}":
                    problems.append(f"emoji {got.emoji!r}")
                if got.guild_id != GUILD_ID:
                    problems.append(f"guild_id {got.guild_id}")
                report("reaction_add", not problems, "; ".join(problems) or "on_raw_reaction_add ok")
        except Exception as e:  # noqa: BLE001
            report("reaction_add", False, errtext(e))
    else:
        report("reaction_add", False, "not run: no message")

    # ---- history
    if msg is not None:
        try:
            hist = [m async for m in channel.history(limit=10)]
            ids = [m.id for m in hist]
            problems = []
            if msg.id not in ids:
                problems.append(f"message {msg.id} not in history {ids}")
            if ids != sorted(ids, reverse=True):
                problems.append(f"history not newest-first: {ids}")
            else:
                found = next((m for m in hist if m.id == msg.id), None)
                if found is not None and not found.reactions:
                    problems.append("fetched message has no reactions[] after the reaction was added")
            report("history", not problems, "; ".join(problems) or f"{len(ids)} messages, newest first")
        except Exception as e:  # noqa: BLE001
            report("history", False, errtext(e))
    else:
        report("history", False, "not run: no message")

    want = {USER1_ID, USER2_ID, bot_id}

    # ---- members_chunk (gateway op 8)
    try:
        members = await asyncio.wait_for(guild.chunk(), EVENT_TIMEOUT)
        ids = {m.id for m in members}
        missing = want - ids
        report("members_chunk", not missing,
               f"missing {sorted(missing)} from {sorted(ids)}" if missing else f"{len(ids)} members via op 8")
    except asyncio.TimeoutError:
        report("members_chunk", False, f"guild.chunk() got no complete GUILD_MEMBERS_CHUNK within {EVENT_TIMEOUT}s")
    except Exception as e:  # noqa: BLE001
        report("members_chunk", False, errtext(e))

    # ---- members_fetch (REST list members)
    try:
        members = [m async for m in guild.fetch_members(limit=1000)]
        ids = {m.id for m in members}
        missing = want - ids
        report("members_fetch", not missing,
               f"missing {sorted(missing)} from {sorted(ids)}" if missing else f"{len(ids)} members via REST")
    except Exception as e:  # noqa: BLE001
        report("members_fetch", False, errtext(e))

    # ---- user2_message
    try:
        content = f"hello from user 2 at {int(time.time() * 1000)}"
        posted = await asyncio.to_thread(user2_post, content)
        pid = int(posted["id"])
        got = await journal.wait("message", by_id(pid))
        if got is None:
            report("user2_message", False, f"user 2 posted {pid} but on_message did not fire")
        else:
            problems = []
            if got.author.id != USER2_ID:
                problems.append(f"author {got.author.id} != user 2 {USER2_ID}")
            if got.content != content:
                problems.append(f"content {got.content!r} != {content!r} (message_content intent?)")
            if got.author.bot:
                problems.append("author.bot is true")
            report("user2_message", not problems, "; ".join(problems) or "seen with author and content")
    except Exception as e:  # noqa: BLE001
        report("user2_message", False, errtext(e))

    # ---- message_delete
    if msg is not None:
        try:
            await msg.delete()
            got = await journal.wait("raw_message_delete", lambda p: p.message_id == msg.id)
            if got is None:
                report("message_delete", False, "DELETE ok but on_raw_message_delete did not fire")
            else:
                ok = got.channel_id == CHANNEL_ID and got.guild_id == GUILD_ID
                report("message_delete", ok, "on_raw_message_delete ok" if ok else
                       f"channel_id={got.channel_id} guild_id={got.guild_id}")
        except Exception as e:  # noqa: BLE001
            report("message_delete", False, errtext(e))
    else:
        report("message_delete", False, "not run: no message")

    # ---- resume: close abnormally with 4000; discord.py reconnects to
    # resume_gateway_url and sends RESUME (op 6); RESUMED -> on_resumed.
    try:
        ws = client.ws
        n_ready = len(journal.all("ready"))
        n_resumed = len(journal.all("resumed"))
        old_session = ws.session_id
        log.info("forcing disconnect: ws.close(code=4000), session %s seq %s", old_session, ws.sequence)
        await ws.close(code=4000)
        # A message created while the bot is (possibly) disconnected: must be
        # delivered exactly once, live or replayed by the RESUME.
        replay_content = f"while disconnected {int(time.time() * 1000)}"
        replay_post: Optional[Dict[str, Any]] = None
        try:
            replay_post = await asyncio.to_thread(user2_post, replay_content)
        except Exception as e:  # noqa: BLE001
            report("resume_replay", False, errtext(e))
        got = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if len(journal.all("resumed")) > n_resumed:
                got = True
                break
            if len(journal.all("ready")) > n_ready:
                await asyncio.sleep(0.5)  # a late RESUMED would still count
                got = True if len(journal.all("resumed")) > n_resumed else None
                break
            await asyncio.sleep(0.05)
        if got is not None:
            report("resume", True, f"on_resumed fired; session {client.ws.session_id} "
                                   f"(was {old_session}); resume_gateway_url={client.ws.gateway}")
        else:
            again = len(journal.all("ready")) > n_ready
            new_ws = client.ws
            report("resume", False,
                   "on_resumed did not fire; " +
                   ("the client re-IDENTIFIED instead (on_ready fired again: RESUME rejected / INVALID_SESSION)"
                    if again else f"no READY either; ws open={new_ws is not None and not new_ws.socket.closed}")
                   + last_lib_errors())
        if replay_post is not None:
            rid = int(replay_post["id"])
            seen = await journal.wait("message", by_id(rid), timeout=EVENT_TIMEOUT)
            await asyncio.sleep(1.0)
            count = sum(1 for m in journal.all("message") if m.id == rid)
            if seen is None:
                report("resume_replay", False, f"message {rid} posted during the disconnect never reached on_message")
            else:
                report("resume_replay", count == 1,
                       "received once" if count == 1 else f"received {count} times (duplicate replay)")
    except Exception as e:  # noqa: BLE001
        report("resume", False, errtext(e))

    # ---- after_resume
    try:
        content = f"dpy after resume {int(time.time() * 1000)}"
        m2 = await asyncio.wait_for(channel.send(content), EVENT_TIMEOUT)
        got = await journal.wait("message", by_id(m2.id))
        report("after_resume", got is not None,
               "on_message after reconnect" if got else f"sent {m2.id} but on_message did not fire")
    except Exception as e:  # noqa: BLE001
        report("after_resume", False, errtext(e))

    errors = journal.all("error")
    if errors:
        log.warning("event handler errors: %s", errors)


async def amain() -> int:
    journal = Journal()
    client = make_client(journal)
    try:
        await asyncio.wait_for(scenario(client, journal), TIMEOUT)
    except asyncio.TimeoutError:
        report_missing(f"not run: overall timeout of {TIMEOUT:.0f}s reached")
    except Exception as e:  # noqa: BLE001
        log.exception("scenario crashed")
        report_missing(f"not run: scenario crashed: {errtext(e)}")
    finally:
        try:
            await asyncio.wait_for(client.close(), 10)
        except Exception:  # noqa: BLE001
            log.exception("client.close() failed")
    report_missing("not run")
    return 0


def main() -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if env("GH_DEBUG") else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("discord").addHandler(LIB_ERRORS)
    if not (TOKEN and GATEWAY and GUILD_ID and CHANNEL_ID):
        print("dpy_bot.py: GH_BOT_TOKEN, GH_GATEWAY, GH_GUILD_ID, GH_CHANNEL_ID are required "
              "(run it through compat/run.py)", file=sys.stderr)
        return 2
    # Point discord.py at the server (protocol notes section 7).
    discord.http.Route.BASE = f"{BASE}/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(GATEWAY)
    log.info("discord.py %s; REST %s; gateway %s", discord.__version__, discord.http.Route.BASE, GATEWAY)

    # Hard stop even if the event loop wedges.
    def watchdog():
        time.sleep(TIMEOUT + 15)
        report_missing(f"not run: hard timeout ({TIMEOUT + 15:.0f}s), process killed itself")
        os._exit(3)
    threading.Thread(target=watchdog, daemon=True).start()

    return asyncio.run(amain())


if __name__ == "__main__":
    sys.exit(main())
