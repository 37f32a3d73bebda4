//! Applications, bot users and tokens, and the OAuth2 add-to-server flow.

use reqwest::StatusCode;
use serde_json::json;

use crate::common::TestServer;

const GATEWAY_GUILD_MEMBERS_LIMITED: u64 = 1 << 15;
const GATEWAY_MESSAGE_CONTENT_LIMITED: u64 = 1 << 19;

/// Creates an application; returns (application id, "Bot <token>").
async fn bot_app(s: &TestServer, owner: &str, name: &str) -> (String, String) {
    let (status, app) = s.post("/applications", owner, json!({ "name": name })).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    let id = app["id"].as_str().unwrap().to_string();
    let (status, t) = s.post(&format!("/applications/{id}/bot"), owner, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    (id, format!("Bot {}", t["token"].as_str().unwrap()))
}

#[tokio::test]
async fn application_creates_a_bot_whose_token_works() {
    let s = TestServer::start().await;
    let (owner, owner_id) = s.user("appowner").await;
    let (status, app) = s.post("/applications", &owner, json!({ "name": "Helper Bot", "description": "helps" })).await;
    assert_eq!(status, StatusCode::CREATED, "{app}");
    assert_eq!(app["bot"]["bot"], true);
    assert_eq!(app["bot"]["username"], "helper_bot");
    assert_eq!(app["bot"]["id"], app["id"], "the bot user shares the application's id");
    assert_eq!(app["owner"]["id"], owner_id.as_str());
    let id = app["id"].as_str().unwrap();

    let (status, t) = s.post(&format!("/applications/{id}/bot"), &owner, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let bot = format!("Bot {}", t["token"].as_str().unwrap());
    assert_eq!(bot.split('.').count(), 3);
    let (status, me) = s.get("/users/@me", &bot).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["bot"], true);
    assert_eq!(me["id"], id);

    // What discord.py's login() and application_info() read.
    for path in ["/oauth2/applications/@me", "/applications/@me"] {
        let (status, info) = s.get(path, &bot).await;
        assert_eq!(status, StatusCode::OK, "{path}: {info}");
        assert_eq!(info["id"], id);
        assert_eq!(info["name"], "Helper Bot");
        assert!(info["icon"].is_null());
        assert_eq!(info["description"], "helps");
        assert_eq!(info["bot_public"], true);
        assert_eq!(info["bot_require_code_grant"], false);
        let key = info["verify_key"].as_str().unwrap();
        assert!(key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()), "{key}");
        assert_eq!(info["owner"]["id"], owner_id.as_str());
        assert_eq!(info["owner"]["username"], "appowner");
        assert_eq!(info["flags"], 0);
        assert_eq!(info["bot"]["id"], id);
    }
    // A user token is not a bot.
    let (status, body) = s.get("/oauth2/applications/@me", &owner).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 20002);

    // The owner's list; other users cannot see it.
    let (status, list) = s.get("/applications", &owner).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["id"], id);
    let (other, _) = s.user("stranger").await;
    let (status, body) = s.get(&format!("/applications/{id}"), &other).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 10002);
    let (status, body) = s.post(&format!("/applications/{id}/bot/reset"), &other, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], 10002);
    let (status, body) = s.get("/applications/12345", &owner).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::NOT_FOUND, json!(10002)));
    let (status, body) = s.get("/applications/nope", &owner).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::BAD_REQUEST, json!(50035)));

    // Bots cannot create applications.
    let (status, body) = s.post("/applications", &bot, json!({ "name": "Another" })).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["code"], 20001);

    // Bad names are form errors; a second app with the same name gets a free username.
    let (status, body) = s.post("/applications", &owner, json!({ "name": "x" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["name"]["_errors"][0]["code"], "BASE_TYPE_BAD_LENGTH");
    let (status, body) = s.post("/applications", &owner, json!({})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["name"]["_errors"][0]["code"], "BASE_TYPE_REQUIRED");
    let (status, second) = s.post("/applications", &owner, json!({ "name": "Helper Bot" })).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(second["bot"]["username"], "helper_bot1");
}

#[tokio::test]
async fn reset_invalidates_old_tokens_and_patches_apply() {
    let s = TestServer::start().await;
    let owner = s.register("resetowner").await;
    let (id, bot) = bot_app(&s, &owner, "Reset Me").await;
    let (status, _) = s.get("/users/@me", &bot).await;
    assert_eq!(status, StatusCode::OK);

    let (status, t) = s.post(&format!("/applications/{id}/bot/reset"), &owner, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let new_bot = format!("Bot {}", t["token"].as_str().unwrap());
    let (status, body) = s.get("/users/@me", &bot).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old token stops working: {body}");
    let (status, me) = s.get("/users/@me", &new_bot).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["bot"], true);
    // A bot cannot reset its own token.
    let (status, body) = s.post(&format!("/applications/{id}/bot/reset"), &new_bot, json!({})).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::FORBIDDEN, json!(20001)));

    // Privileged-intent flags are the owner's to set; other bits are not.
    let flags = GATEWAY_GUILD_MEMBERS_LIMITED | GATEWAY_MESSAGE_CONTENT_LIMITED;
    let (status, app) =
        s.patch(&format!("/applications/{id}"), &owner, json!({ "flags": flags, "name": "Renamed" })).await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["flags"], flags);
    assert_eq!(app["name"], "Renamed");
    let (status, body) = s.patch(&format!("/applications/{id}"), &owner, json!({ "flags": flags | (1 << 23) })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["code"], 50035);
    assert!(body["errors"]["flags"]["_errors"].is_array(), "{body}");
    let (_, info) = s.get("/oauth2/applications/@me", &new_bot).await;
    assert_eq!(info["flags"], flags, "a rejected patch changes nothing");
    assert_eq!(info["name"], "Renamed");

    // The bot edits its own application through @me.
    let (status, app) =
        s.patch("/applications/@me", &new_bot, json!({ "description": "now described", "flags": 0 })).await;
    assert_eq!(status, StatusCode::OK, "{app}");
    assert_eq!(app["description"], "now described");
    assert_eq!(app["flags"], 0);

    // The bot user's name and avatar.
    let (status, user) =
        s.patch(&format!("/applications/{id}/bot"), &owner, json!({ "username": "renamed_bot" })).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["username"], "renamed_bot");
    assert_eq!(user["bot"], true);
    let (_, me) = s.get("/users/@me", &new_bot).await;
    assert_eq!(me["username"], "renamed_bot");
    let (status, body) = s.patch(&format!("/applications/{id}/bot"), &owner, json!({ "username": "resetowner" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["username"]["_errors"][0]["code"], "USERNAME_ALREADY_TAKEN");
    let (status, body) = s.patch(&format!("/applications/{id}/bot"), &owner, json!({ "avatar": "not an image" })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["avatar"]["_errors"][0]["code"], "IMAGE_INVALID");
    let (status, user) = s
        .patch(&format!("/applications/{id}/bot"), &owner, json!({ "avatar": "data:image/png;base64,iVBORw0KGgo=" }))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["avatar"].as_str().unwrap().len(), 32);

    // Everything survives a restart, the reset included.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let (status, _) = s.get("/users/@me", &bot).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, info) = s.get("/oauth2/applications/@me", &new_bot).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["description"], "now described");
    assert_eq!(info["bot"]["username"], "renamed_bot");
}

#[tokio::test]
async fn authorize_adds_the_bot_with_a_managed_role() {
    let s = TestServer::start().await;
    let (owner, owner_id) = s.user("guildowner").await;
    let (gid, general) = s.guild(&owner, "Bot Home").await;
    let (app_id, bot) = bot_app(&s, &owner, "Role Bot").await;

    // The consent screen lists guilds the caller manages.
    let (status, screen) =
        s.get(&format!("/oauth2/authorize?client_id={app_id}&scope=bot&permissions=3072"), &owner).await;
    assert_eq!(status, StatusCode::OK, "{screen}");
    assert_eq!(screen["application"]["id"], app_id.as_str());
    assert_eq!(screen["application"]["name"], "Role Bot");
    assert_eq!(screen["bot"]["id"], app_id.as_str());
    assert_eq!(screen["bot"]["bot"], true);
    assert_eq!(screen["user"]["id"], owner_id.as_str());
    let guilds = screen["guilds"].as_array().unwrap();
    assert_eq!(guilds.len(), 1);
    assert_eq!(guilds[0]["id"], gid.as_str());
    assert!(guilds[0]["permissions"].is_string());

    let (status, _) = s.get(&format!("/guilds/{gid}"), &bot).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not a member yet");

    let path = format!("/oauth2/authorize?client_id={app_id}&scope=bot");
    let (status, body) =
        s.post(&path, &owner, json!({ "guild_id": gid, "permissions": "3072", "authorize": true })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["location"].as_str().unwrap().ends_with("/oauth2/authorized"), "{body}");

    let (status, guild) = s.get(&format!("/guilds/{gid}"), &bot).await;
    assert_eq!(status, StatusCode::OK, "{guild}");
    let roles = guild["roles"].as_array().unwrap();
    let managed: Vec<_> = roles.iter().filter(|r| r["managed"] == true).collect();
    assert_eq!(managed.len(), 1, "{roles:?}");
    assert_eq!(managed[0]["name"], "Role Bot");
    assert_eq!(managed[0]["permissions"], "3072");
    assert_eq!(managed[0]["tags"]["bot_id"], app_id.as_str());
    assert_eq!(managed[0]["position"], 1);

    let (status, msg) = s.post(&format!("/channels/{general}/messages"), &bot, json!({ "content": "beep" })).await;
    assert_eq!(status, StatusCode::OK, "{msg}");
    assert_eq!(msg["author"]["bot"], true);

    // Authorizing again is fine and adds nothing.
    let (status, _) = s.post(&path, &owner, json!({ "guild_id": gid, "permissions": 8, "authorize": true })).await;
    assert_eq!(status, StatusCode::OK);
    let (_, guild) = s.get(&format!("/guilds/{gid}"), &owner).await;
    assert_eq!(guild["roles"].as_array().unwrap().len(), roles.len());
    let (_, apps) = s.get(&format!("/applications/{app_id}"), &owner).await;
    assert_eq!(apps["approximate_guild_count"], 1);

    // A user without MANAGE_GUILD there cannot add it; nor can a bot; nor with a bad body.
    let (other, _) = s.user("outsider").await;
    let (status, body) = s.post(&path, &other, json!({ "guild_id": gid, "permissions": "0", "authorize": true })).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::FORBIDDEN, json!(50013)));
    let (status, body) = s.post(&path, &bot, json!({ "guild_id": gid, "authorize": true })).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::FORBIDDEN, json!(20001)));
    let (status, body) = s.post(&path, &owner, json!({ "authorize": true })).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"]["guild_id"]["_errors"][0]["code"], "BASE_TYPE_REQUIRED");
    let (status, body) = s
        .post("/oauth2/authorize?client_id=1234&scope=bot", &owner, json!({ "guild_id": gid, "authorize": true }))
        .await;
    assert_eq!((status, body["code"].clone()), (StatusCode::NOT_FOUND, json!(10002)));
    let (status, body) = s.get(&format!("/oauth2/authorize?client_id={app_id}&scope=identify"), &owner).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["errors"]["scope"]["_errors"].is_array(), "{body}");

    // A private bot can only be added by its owner.
    let (other_owner, _) = s.user("privateowner").await;
    let (other_gid, _) = s.guild(&other_owner, "Elsewhere").await;
    let (status, _) = s.patch(&format!("/applications/{app_id}"), &owner, json!({ "bot_public": false })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = s.post(&path, &other_owner, json!({ "guild_id": other_gid, "authorize": true })).await;
    assert_eq!((status, body["code"].clone()), (StatusCode::FORBIDDEN, json!(50001)));

    // With no permissions requested the bot joins without a role.
    let (status, _) = s.patch(&format!("/applications/{app_id}"), &owner, json!({ "bot_public": true })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = s.post(&path, &other_owner, json!({ "guild_id": other_gid, "authorize": true })).await;
    assert_eq!(status, StatusCode::OK);
    let (status, guild) = s.get(&format!("/guilds/{other_gid}"), &bot).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(guild["roles"].as_array().unwrap().len(), 1, "only @everyone");

    // Membership persists.
    let dir = s.stop().await;
    let s = TestServer::start_in(dir).await;
    let (status, _) = s.get(&format!("/guilds/{gid}"), &bot).await;
    assert_eq!(status, StatusCode::OK);
}

/// A bare gateway client: connect, IDENTIFY, and read payloads as JSON.
mod gw {
    use futures_util::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use tokio_tungstenite::tungstenite::Message;

    pub type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

    /// The next payload, or `None` when the connection ends (close frame or EOF).
    pub async fn next(ws: &mut Ws) -> Option<Value> {
        loop {
            let msg =
                tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await.expect("the gateway answers");
            match msg {
                Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Reads until a dispatch named `name` arrives.
    pub async fn until(ws: &mut Ws, name: &str) -> Value {
        loop {
            let p = next(ws).await.unwrap_or_else(|| panic!("connection ended before {name}"));
            if p["t"] == name {
                return p["d"].clone();
            }
        }
    }

    pub async fn identify(url: &str, token: &str, intents: u64) -> Ws {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/?v=10&encoding=json")).await.unwrap();
        let hello = next(&mut ws).await.unwrap();
        assert_eq!(hello["op"], 10);
        let identify = json!({ "op": 2, "d": {
            "token": token, "intents": intents,
            "properties": { "os": "linux", "browser": "test", "device": "test" },
        }});
        ws.send(Message::Text(identify.to_string().into())).await.unwrap();
        until(&mut ws, "READY").await;
        ws
    }
}

#[tokio::test]
async fn bot_sessions_see_the_join_and_are_invalidated_by_reset() {
    const GUILDS: u64 = 1 << 0;
    const GUILD_MEMBERS: u64 = 1 << 1;
    let s = TestServer::start().await;
    let owner = s.register("liveowner").await;
    let (gid, _) = s.guild(&owner, "Live").await;
    let (app_id, bot) = bot_app(&s, &owner, "Live Bot").await;
    let raw_token = bot.strip_prefix("Bot ").unwrap();
    let mut owner_ws = gw::identify(&s.gateway_url(), &owner, GUILDS | GUILD_MEMBERS).await;
    gw::until(&mut owner_ws, "GUILD_CREATE").await;
    let mut bot_ws = gw::identify(&s.gateway_url(), raw_token, GUILDS).await;

    let path = format!("/oauth2/authorize?client_id={app_id}&scope=bot");
    let (status, _) = s.post(&path, &owner, json!({ "guild_id": gid, "permissions": "8", "authorize": true })).await;
    assert_eq!(status, StatusCode::OK);
    // The guild's members see the role and the member arrive; the bot gets the guild.
    let role = gw::until(&mut owner_ws, "GUILD_ROLE_CREATE").await;
    assert_eq!(role["guild_id"], gid.as_str());
    assert_eq!(role["role"]["managed"], true);
    assert_eq!(role["role"]["permissions"], "8");
    assert_eq!(role["role"]["tags"]["bot_id"], app_id.as_str());
    let member = gw::until(&mut owner_ws, "GUILD_MEMBER_ADD").await;
    assert_eq!(member["guild_id"], gid.as_str());
    assert_eq!(member["user"]["id"], app_id.as_str());
    assert_eq!(member["roles"][0], role["role"]["id"]);
    let guild = gw::until(&mut bot_ws, "GUILD_CREATE").await;
    assert_eq!(guild["id"], gid.as_str());

    // Resetting the token ends the bot's live session.
    let (status, _) = s.post(&format!("/applications/{app_id}/bot/reset"), &owner, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    loop {
        match gw::next(&mut bot_ws).await {
            None => break,
            Some(p) if p["op"] == 9 => break,
            Some(_) => continue,
        }
    }
}
