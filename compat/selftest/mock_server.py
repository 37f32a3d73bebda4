#!/usr/bin/env python3
"""A deliberately tiny fake of the Guildhall server, only for testing the
compat harness itself (compat/run.py and the bots) without the real server.

    compat/selftest/mock-guildhall serve --listen 127.0.0.1:PORT --data-dir DIR

It implements just the routes and gateway behaviour the scenario touches,
in memory, and is NOT a reference for the real server. Needs aiohttp (from
compat/.venv).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import json
import secrets
import time
import zlib
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from aiohttp import WSMsgType, web

_ids = itertools.count(1)
EPOCH = 1420070400000


def snow() -> str:
    return str(((int(time.time() * 1000) - EPOCH) << 22) | (next(_ids) & 0xFFF))


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def J(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})


def err(status: int, code: int, message: str) -> web.Response:
    return J({"code": code, "message": message}, status)


class State:
    def __init__(self, base: str) -> None:
        self.base = base
        self.users: Dict[str, dict] = {}
        self.tokens: Dict[str, str] = {}  # token -> user id (bots: "Bot x")
        self.guilds: Dict[str, dict] = {}
        self.channels: Dict[str, dict] = {}
        self.messages: Dict[str, List[dict]] = {}
        self.apps: Dict[str, dict] = {}
        self.invites: Dict[str, str] = {}
        self.sessions: Dict[str, "Session"] = {}

    def user_pub(self, uid: str) -> dict:
        u = self.users[uid]
        return {"id": uid, "username": u["username"], "discriminator": "0", "global_name": None,
                "avatar": None, "bot": u.get("bot", False), "public_flags": 0}

    def me(self, uid: str) -> dict:
        d = self.user_pub(uid)
        d.update({"mfa_enabled": False, "verified": True, "flags": 0, "locale": "en-US", "email": None})
        return d

    def member(self, gid: str, uid: str) -> dict:
        m = self.guilds[gid]["members"][uid]
        return {"user": self.user_pub(uid), "roles": [], "joined_at": m["joined_at"], "deaf": False,
                "mute": False, "flags": 0, "nick": None, "avatar": None, "premium_since": None,
                "pending": False}

    def guild_obj(self, gid: str) -> dict:
        g = self.guilds[gid]
        return {"id": gid, "name": g["name"], "icon": None, "splash": None, "discovery_splash": None,
                "owner_id": g["owner_id"], "afk_channel_id": None, "afk_timeout": 300,
                "verification_level": 0, "default_message_notifications": 0, "explicit_content_filter": 0,
                "roles": [{"id": gid, "name": "@everyone", "permissions": "1071698660929", "position": 0,
                           "color": 0, "hoist": False, "managed": False, "mentionable": False, "flags": 0}],
                "emojis": [], "features": [], "mfa_level": 0, "application_id": None,
                "system_channel_id": None, "system_channel_flags": 0, "rules_channel_id": None,
                "vanity_url_code": None, "description": None, "banner": None, "premium_tier": 0,
                "preferred_locale": "en-US", "public_updates_channel_id": None, "nsfw_level": 0,
                "stickers": [], "premium_progress_bar_enabled": False}

    def guild_create(self, gid: str) -> dict:
        g = self.guilds[gid]
        d = self.guild_obj(gid)
        d.update({"joined_at": now_iso(), "large": False, "unavailable": False,
                  "member_count": len(g["members"]), "voice_states": [],
                  "members": [self.member(gid, u) for u in g["members"]],
                  "channels": [self.channels[c] for c in g["channels"]], "threads": [], "presences": [],
                  "stage_instances": [], "guild_scheduled_events": [], "soundboard_sounds": []})
        return d

    async def dispatch(self, gid: str, t: str, d: dict) -> None:
        for s in list(self.sessions.values()):
            if gid in self.guilds and s.uid in self.guilds[gid]["members"]:
                await s.dispatch(t, d)


class Session:
    def __init__(self, st: State, uid: str, intents: int) -> None:
        self.st, self.uid, self.intents = st, uid, intents
        self.id = secrets.token_hex(16)
        self.seq = 0
        self.buffer: List[dict] = []
        self.conn: Optional["Conn"] = None

    async def dispatch(self, t: str, d: Any) -> None:
        self.seq += 1
        p = {"op": 0, "t": t, "s": self.seq, "d": d}
        self.buffer.append(p)
        if self.conn is not None:
            await self.conn.send(p)


class Conn:
    def __init__(self, ws: web.WebSocketResponse, zlib_stream: bool) -> None:
        self.ws = ws
        self.z = zlib.compressobj() if zlib_stream else None

    async def send(self, p: dict) -> None:
        data = json.dumps(p)
        try:
            if self.z:
                await self.ws.send_bytes(self.z.compress(data.encode()) + self.z.flush(zlib.Z_SYNC_FLUSH))
            else:
                await self.ws.send_str(data)
        except Exception:  # noqa: BLE001
            pass


def make_app(base: str) -> web.Application:
    st = State(base)
    r = web.RouteTableDef()

    def auth(req: web.Request) -> Optional[str]:
        return st.tokens.get(req.headers.get("Authorization", ""))

    @r.get("/healthz")
    async def healthz(req):
        return web.Response(text="ok")

    @r.post("/api/v10/auth/register")
    async def register(req):
        b = await req.json()
        uid = snow()
        st.users[uid] = {"username": b["username"], "email": b.get("email"), "password": b.get("password")}
        tok = "u." + secrets.token_hex(16)
        st.tokens[tok] = uid
        return J({"token": tok}, 201)

    @r.post("/api/v10/auth/login")
    async def login(req):
        b = await req.json()
        for uid, u in st.users.items():
            if u.get("email") == b.get("login") and u.get("password") == b.get("password"):
                tok = "u." + secrets.token_hex(16)
                st.tokens[tok] = uid
                return J({"user_id": uid, "token": tok, "user_settings": {"locale": "en-US", "theme": "dark"}})
        return err(400, 50035, "Invalid Form Body")

    @r.get("/api/v10/users/@me")
    async def me(req):
        uid = auth(req)
        return J(st.me(uid)) if uid else err(401, 0, "401: Unauthorized")

    @r.get("/api/v10/oauth2/applications/@me")
    async def app_me(req):
        uid = auth(req)
        for a in st.apps.values():
            if a["bot_id"] == uid:
                return J({"id": a["id"], "name": a["name"], "icon": None, "description": "",
                          "bot_public": True, "bot_require_code_grant": False, "verify_key": "00",
                          "owner": st.user_pub(a["owner_id"]), "flags": a["flags"], "team": None,
                          "summary": "", "rpc_origins": []})
        return err(401, 0, "401: Unauthorized")

    @r.get("/api/v10/gateway")
    async def gateway(req):
        return J({"url": st.base.replace("http://", "ws://")})

    @r.get("/api/v10/gateway/bot")
    async def gateway_bot(req):
        if not auth(req):
            return err(401, 0, "401: Unauthorized")
        return J({"url": st.base.replace("http://", "ws://"), "shards": 1,
                  "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 86400000,
                                          "max_concurrency": 1}})

    @r.post("/api/v10/guilds")
    async def create_guild(req):
        uid = auth(req)
        b = await req.json()
        gid = snow()
        st.guilds[gid] = {"name": b["name"], "owner_id": uid, "members": {uid: {"joined_at": now_iso()}},
                          "channels": []}
        return J(st.guild_obj(gid), 201)

    @r.post("/api/v10/guilds/{gid}/channels")
    async def create_channel(req):
        gid = req.match_info["gid"]
        b = await req.json()
        cid = snow()
        ch = {"id": cid, "type": b.get("type", 0), "guild_id": gid, "name": b["name"], "position": 0,
              "permission_overwrites": [], "topic": None, "nsfw": False, "last_message_id": None,
              "rate_limit_per_user": 0, "parent_id": None, "flags": 0}
        st.channels[cid] = ch
        st.messages[cid] = []
        st.guilds[gid]["channels"].append(cid)
        await st.dispatch(gid, "CHANNEL_CREATE", ch)
        return J(ch, 201)

    @r.get("/api/v10/guilds/{gid}/members")
    async def list_members(req):
        gid = req.match_info["gid"]
        return J([st.member(gid, u) for u in st.guilds[gid]["members"]])

    @r.get("/api/v10/guilds/{gid}/members/{uid}")
    async def get_member(req):
        gid, uid = req.match_info["gid"], req.match_info["uid"]
        if uid not in st.guilds[gid]["members"]:
            return err(404, 10007, "Unknown Member")
        return J(st.member(gid, uid))

    @r.post("/api/v10/applications")
    async def create_app(req):
        uid = auth(req)
        b = await req.json()
        aid = snow()
        st.users[aid] = {"username": b["name"], "bot": True}
        st.apps[aid] = {"id": aid, "name": b["name"], "owner_id": uid, "bot_id": aid, "flags": 0}
        return J({"id": aid, "name": b["name"], "flags": 0, "bot": st.user_pub(aid)}, 201)

    @r.post("/api/v10/applications/{aid}/bot/reset")
    async def reset(req):
        aid = req.match_info["aid"]
        tok = "b." + secrets.token_hex(16)
        st.tokens["Bot " + tok] = aid
        return J({"token": tok})

    @r.patch("/api/v10/applications/{aid}")
    async def patch_app(req):
        a = st.apps[req.match_info["aid"]]
        b = await req.json()
        a["flags"] = b.get("flags", a["flags"])
        return J({"id": a["id"], "name": a["name"], "flags": a["flags"]})

    @r.post("/api/v10/oauth2/authorize")
    async def authorize(req):
        b = await req.json()
        aid = req.query["client_id"]
        gid = b["guild_id"]
        st.guilds[gid]["members"][aid] = {"joined_at": now_iso()}
        return J({"location": "https://example.invalid/oauth2/authorized"})

    @r.post("/api/v10/channels/{cid}/invites")
    async def invite(req):
        code = secrets.token_hex(4)
        st.invites[code] = st.channels[req.match_info["cid"]]["guild_id"]
        return J({"code": code, "type": 0}, 200)

    @r.post("/api/v10/invites/{code}")
    async def accept(req):
        uid = auth(req)
        gid = st.invites[req.match_info["code"]]
        st.guilds[gid]["members"][uid] = {"joined_at": now_iso()}
        await st.dispatch(gid, "GUILD_MEMBER_ADD", dict(st.member(gid, uid), guild_id=gid))
        return J({"code": req.match_info["code"], "guild": {"id": gid}})

    def msg_obj(cid: str, m: dict) -> dict:
        return m

    @r.post("/api/v10/channels/{cid}/messages")
    async def post_msg(req):
        uid = auth(req)
        cid = req.match_info["cid"]
        b = await req.json()
        gid = st.channels[cid]["guild_id"]
        m = {"id": snow(), "channel_id": cid, "author": st.user_pub(uid), "content": b.get("content", ""),
             "timestamp": now_iso(), "edited_timestamp": None, "tts": False, "mention_everyone": False,
             "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "pinned": False,
             "type": 0, "flags": 0, "reactions": [], "nonce": b.get("nonce")}
        st.messages[cid].append(m)
        ev = dict(m, guild_id=gid, member={k: v for k, v in st.member(gid, uid).items() if k != "user"})
        await st.dispatch(gid, "MESSAGE_CREATE", ev)
        return J(m)

    def find(cid: str, mid: str) -> dict:
        return next(m for m in st.messages[cid] if m["id"] == mid)

    @r.patch("/api/v10/channels/{cid}/messages/{mid}")
    async def edit_msg(req):
        cid, mid = req.match_info["cid"], req.match_info["mid"]
        m = find(cid, mid)
        b = await req.json()
        if "content" in b:
            m["content"] = b["content"]
        m["edited_timestamp"] = now_iso()
        await st.dispatch(st.channels[cid]["guild_id"], "MESSAGE_UPDATE",
                          dict(m, guild_id=st.channels[cid]["guild_id"]))
        return J(m)

    @r.delete("/api/v10/channels/{cid}/messages/{mid}")
    async def del_msg(req):
        cid, mid = req.match_info["cid"], req.match_info["mid"]
        st.messages[cid] = [m for m in st.messages[cid] if m["id"] != mid]
        await st.dispatch(st.channels[cid]["guild_id"], "MESSAGE_DELETE",
                          {"id": mid, "channel_id": cid, "guild_id": st.channels[cid]["guild_id"]})
        return web.Response(status=204)

    @r.get("/api/v10/channels/{cid}/messages")
    async def history(req):
        cid = req.match_info["cid"]
        limit = int(req.query.get("limit", 50))
        return J(list(reversed(st.messages[cid]))[:limit])

    @r.put("/api/v10/channels/{cid}/messages/{mid}/reactions/{emoji}/@me")
    async def react(req):
        uid = auth(req)
        cid, mid, emoji = req.match_info["cid"], req.match_info["mid"], req.match_info["emoji"]
        m = find(cid, mid)
        m["reactions"] = [{"count": 1, "count_details": {"burst": 0, "normal": 1}, "me": True,
                           "me_burst": False, "burst_colors": [], "emoji": {"id": None, "name": emoji}}]
        gid = st.channels[cid]["guild_id"]
        await st.dispatch(gid, "MESSAGE_REACTION_ADD",
                          {"user_id": uid, "channel_id": cid, "message_id": mid, "guild_id": gid,
                           "emoji": {"id": None, "name": emoji}, "type": 0, "burst": False,
                           "member": st.member(gid, uid), "message_author_id": m["author"]["id"]})
        return web.Response(status=204)

    @r.get("/")
    async def gw(req):
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(req)
        conn = Conn(ws, req.query.get("compress") == "zlib-stream")
        await conn.send({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        sess: Optional[Session] = None
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            p = json.loads(msg.data)
            op, d = p["op"], p.get("d")
            if op == 1:
                await conn.send({"op": 11, "d": None, "s": None, "t": None})
            elif op == 2:
                uid = st.tokens.get("Bot " + d["token"].removeprefix("Bot "))
                if not uid:
                    await ws.close(code=4004)
                    break
                sess = Session(st, uid, d.get("intents", 0))
                st.sessions[sess.id] = sess
                sess.conn = conn
                gids = [g for g, gg in st.guilds.items() if uid in gg["members"]]
                app = st.apps.get(uid, {"id": uid, "flags": 0})
                await sess.dispatch("READY", {
                    "v": 10, "user": st.me(uid), "guilds": [{"id": g, "unavailable": True} for g in gids],
                    "session_id": sess.id, "resume_gateway_url": st.base.replace("http://", "ws://"),
                    "application": {"id": app["id"], "flags": app["flags"]}, "private_channels": [],
                    "relationships": [], "shard": d.get("shard", [0, 1])})
                for g in gids:
                    await sess.dispatch("GUILD_CREATE", st.guild_create(g))
            elif op == 6:
                s = st.sessions.get(d["session_id"])
                if s is None or os.environ.get("MOCK_NO_RESUME"):
                    await conn.send({"op": 9, "d": False, "s": None, "t": None})
                    continue
                sess = s
                for pl in s.buffer:
                    if pl["s"] > d["seq"]:
                        await conn.send(pl)
                s.conn = conn
                await s.dispatch("RESUMED", {})
            elif op == 8:
                gid = str(d["guild_id"])  # discord.py sends an integer here
                await sess.dispatch("GUILD_MEMBERS_CHUNK", {
                    "guild_id": gid, "members": [st.member(gid, u) for u in st.guilds[gid]["members"]],
                    "chunk_index": 0, "chunk_count": 1, "nonce": d.get("nonce"), "not_found": []})
        if sess is not None and sess.conn is conn:
            sess.conn = None
        return ws

    app = web.Application()
    app.add_routes(r)
    return app


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["serve"])
    ap.add_argument("--listen", default="127.0.0.1:8080")
    ap.add_argument("--data-dir")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    web.run_app(make_app(f"http://{host}:{port}"), host=host, port=int(port), print=None)


if __name__ == "__main__":
    main()
