//! The REST API's OpenAPI 3.1 document, served without authentication at
//! `GET /api/v10/openapi.json` (and under `/api/v9` and `/api`, like every route).
//!
//! Every operation comes from a `#[utoipa::path]` annotation on the real handler
//! (each routes module lists its own in a `Doc`), and request bodies and query
//! strings are the handlers' own structs deriving `ToSchema` / `IntoParams`, so
//! the document moves with the code. The response objects are rendered by
//! `guildhall_domain::wire` (a crate that knows nothing of OpenAPI), so their
//! schemas are written out here in [`schema`]: only fields the server really
//! sends, `required` only where it always sends them, nullable where it sends
//! `null`.
//!
//! [`document`] then applies what is common to every operation: the `/api/v10`
//! prefix, snowflake path parameters, Discord's error body for every 4xx, and the
//! `Authorization` header (`Bot <token>`, `Bearer <token>` or a bare user token).

use std::sync::OnceLock;

use axum::response::Response;
use utoipa::OpenApi;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, ResponseBuilder};

use crate::error::ok_json_bytes;
use crate::routes;

/// Where the REST API lives; the document's paths carry it.
pub const PREFIX: &str = "/api/v10";

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json",
        body = Object)))]
pub async fn openapi_json() -> Response {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes = BYTES.get_or_init(|| serde_json::to_vec(&document()).expect("the document serializes"));
    ok_json_bytes(bytes.as_slice())
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Guildhall REST API",
        description = "Discord's REST API v10 as Guildhall serves it. Errors use Discord's body \
            `{code, message, errors?}` (`errors` holds the per-field tree of a 50035 error). \
            Snowflakes are strings of decimal digits.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(openapi_json),
    components(schemas(
        schema::Error,
        schema::Snowflake,
        schema::Cursor,
        schema::PermissionBits,
        schema::Null,
        schema::ArchiveDuration,
        schema::AfkTimeout,
        schema::CreatableChannelType,
    )),
    security(("bot" = []), ("bearer" = []), ("user" = [])),
)]
struct Root;

/// The whole document (built on each call; [`openapi_json`] serves a cached copy).
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Root::openapi();
    for part in [
        routes::meta::Doc::openapi(),
        routes::auth::Doc::openapi(),
        routes::applications::Doc::openapi(),
        routes::oauth2::Doc::openapi(),
        routes::users::Doc::openapi(),
        routes::guilds::Doc::openapi(),
        routes::messages::Doc::openapi(),
        routes::reactions::Doc::openapi(),
        routes::pins::Doc::openapi(),
        routes::threads::Doc::openapi(),
        routes::invites::Doc::openapi(),
        routes::members::Doc::openapi(),
        routes::roles::Doc::openapi(),
        routes::channels::Doc::openapi(),
        routes::bans::Doc::openapi(),
        routes::dms::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    finish(&mut doc);
    doc
}

/// The parts every operation shares, applied after the modules' docs are merged.
fn finish(doc: &mut utoipa::openapi::OpenApi) {
    let components = doc.components.get_or_insert_with(Default::default);
    let header = |d: &str| ApiKey::Header(ApiKeyValue::with_description("Authorization", d));
    components.add_security_scheme("bot", SecurityScheme::ApiKey(header("A bot token: `Bot <token>`.")));
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("`Bearer <token>`.")).build(),
        ),
    );
    components.add_security_scheme(
        "user",
        SecurityScheme::ApiKey(header("A user account's token as `POST /auth/login` returns it, sent bare.")),
    );
    let paths = std::mem::take(&mut doc.paths.paths);
    for (path, mut item) in paths {
        let full = format!("{PREFIX}{path}");
        let names: Vec<&str> =
            path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
        for op in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ]
        .into_iter()
        .flatten()
        {
            let params = op.parameters.get_or_insert_with(Vec::new);
            for name in &names {
                let declared = |p: &RefOr<Parameter>| matches!(p, RefOr::T(p) if p.name == *name && p.parameter_in == ParameterIn::Path);
                if !params.iter().any(declared) {
                    params.push(RefOr::T(path_param(&path, name)));
                }
            }
            if !op.responses.responses.contains_key("4XX") {
                op.responses.responses.insert(
                    "4XX".into(),
                    RefOr::T(
                        ResponseBuilder::new()
                            .description("Discord's error body (also for 429, with `retry_after` and `global`)")
                            .content(
                                "application/json",
                                ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build(),
                            )
                            .build(),
                    ),
                );
            }
        }
        doc.paths.paths.insert(full, item);
    }
}

/// A path parameter the annotation did not spell out, by its name.
fn path_param(path: &str, name: &str) -> Parameter {
    let me_too = name == "user" || (name == "user_id" && path.contains("/thread-members/"));
    let (schema, description): (RefOr<utoipa::openapi::schema::Schema>, &str) = match name {
        "emoji" => (schema::string(None, 1, 128), "A Unicode emoji, or a custom emoji as `name:id`, URL-encoded."),
        "code" => (schema::string(None, 1, 64), "An invite code."),
        _ if me_too => (schema::string(Some("^([1-9][0-9]{0,18}|@me)$"), 1, 19), "A user's snowflake, or `@me`."),
        _ => (RefOr::Ref(Ref::from_schema_name("Snowflake")), "A snowflake."),
    };
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// Schemas of the objects the server renders (`guildhall_domain::wire` and the
/// routes' own `json!` bodies), and the shared scalar types.
pub mod schema {
    #![allow(dead_code)]

    use std::borrow::Cow;

    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    use utoipa::{PartialSchema, ToSchema};

    pub(crate) fn string(pattern: Option<&str>, min: usize, max: usize) -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(pattern)
            .min_length(Some(min))
            .max_length(Some(max))
            .into()
    }

    /// A named scalar schema: `$name` in components, built by `$schema`.
    macro_rules! scalar {
        ($(#[$doc:meta])* $ty:ident, $schema:expr) => {
            $(#[$doc])*
            pub struct $ty;
            impl PartialSchema for $ty {
                fn schema() -> RefOr<Schema> {
                    $schema.into()
                }
            }
            impl ToSchema for $ty {
                fn name() -> Cow<'static, str> {
                    stringify!($ty).into()
                }
            }
        };
    }

    fn integer_choices(values: &[u32], description: &str) -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::Integer)
            .enum_values(Some(values.iter().copied()))
            .description(Some(description))
    }

    scalar!(
        /// A Discord id: a positive 64-bit number written as a string of digits.
        Snowflake,
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[1-9][0-9]{0,18}$"))
            .description(Some("A snowflake: a 64-bit id as a string of digits."))
    );
    scalar!(
        /// A paging cursor: a snowflake, or `0` for "from the start".
        Cursor,
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]{1,19}$"))
            .description(Some("A snowflake to page after/before; `0` pages from the start."))
    );
    scalar!(
        /// Minutes of inactivity before a thread is archived.
        ArchiveDuration,
        integer_choices(&[60, 1440, 4320, 10080], "Minutes of inactivity before the thread is archived.")
    );
    scalar!(
        /// Seconds before an idle voice member is moved to the AFK channel.
        AfkTimeout,
        integer_choices(&[60, 300, 900, 1800, 3600], "Seconds before an idle voice member is moved to the AFK channel.")
    );
    scalar!(
        /// The channel types `POST /guilds/{id}/channels` creates.
        CreatableChannelType,
        integer_choices(&[0, 2, 4, 5, 13, 15], "Text 0, voice 2, category 4, announcement 5, stage 13, forum 15.")
    );
    scalar!(
        /// A field that is always `null` (Discord has it; Guildhall has no value for it).
        Null,
        ObjectBuilder::new().schema_type(Type::Null)
    );
    scalar!(
        /// A permission bit set, as a string of digits.
        PermissionBits,
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some("^[0-9]{1,19}$"))
            .description(Some("Permission bits as a decimal string."))
    );

    /// Discord's error body.
    #[derive(ToSchema)]
    pub struct Error {
        /// Discord's JSON error code (0 for plain HTTP errors such as 401 and 404).
        pub code: i64,
        pub message: String,
        /// Per-field errors of a 50035 (Invalid Form Body): `{field: {_errors: [{code, message}]}}`.
        #[schema(nullable = false)]
        pub errors: Option<serde_json::Value>,
        /// 429 only: seconds to wait.
        #[schema(nullable = false)]
        pub retry_after: Option<f64>,
        /// 429 only: whether the global limit was hit.
        #[schema(nullable = false)]
        pub global: Option<bool>,
    }

    /// A user as others see them. A deleted account renders with the first five
    /// fields only.
    #[derive(ToSchema)]
    pub struct User {
        #[schema(value_type = Snowflake)]
        pub id: (),
        pub username: String,
        pub discriminator: String,
        #[schema(required)]
        pub global_name: Option<String>,
        #[schema(required)]
        pub avatar: Option<String>,
        #[schema(nullable = false)]
        pub bot: Option<bool>,
        #[schema(nullable = false)]
        pub system: Option<bool>,
        #[schema(nullable = false)]
        pub public_flags: Option<u64>,
        #[schema(nullable = false)]
        pub flags: Option<u64>,
        #[schema(value_type = Null, required = false)]
        pub banner: Option<()>,
        pub accent_color: Option<u32>,
        #[schema(value_type = Null, required = false)]
        pub avatar_decoration_data: Option<()>,
    }

    /// The authenticated user (`GET /users/@me`).
    #[derive(ToSchema)]
    pub struct CurrentUser {
        #[schema(value_type = Snowflake)]
        pub id: (),
        pub username: String,
        pub discriminator: String,
        #[schema(required)]
        pub global_name: Option<String>,
        #[schema(required)]
        pub avatar: Option<String>,
        pub bot: bool,
        pub system: bool,
        pub public_flags: u64,
        pub flags: u64,
        pub mfa_enabled: bool,
        pub verified: bool,
        #[schema(required)]
        pub email: Option<String>,
        pub locale: String,
        pub premium_type: u8,
        /// Only after a password change: the new token (every older one is revoked).
        #[schema(nullable = false)]
        pub token: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct RoleColors {
        pub primary_color: u32,
        #[schema(required)]
        pub secondary_color: Option<u32>,
        #[schema(required)]
        pub tertiary_color: Option<u32>,
    }

    #[derive(ToSchema)]
    pub struct RoleTags {
        #[schema(value_type = Snowflake)]
        pub bot_id: (),
    }

    #[derive(ToSchema)]
    pub struct Role {
        #[schema(value_type = Snowflake)]
        pub id: (),
        pub name: String,
        pub color: u32,
        pub colors: RoleColors,
        pub hoist: bool,
        #[schema(required)]
        pub icon: Option<String>,
        #[schema(required)]
        pub unicode_emoji: Option<String>,
        pub position: i32,
        #[schema(value_type = PermissionBits)]
        pub permissions: (),
        pub managed: bool,
        pub mentionable: bool,
        pub flags: u64,
        #[schema(nullable = false)]
        pub tags: Option<RoleTags>,
    }

    #[derive(ToSchema)]
    pub struct Overwrite {
        #[schema(value_type = Snowflake)]
        pub id: (),
        /// 0 role, 1 member.
        #[serde(rename = "type")]
        #[schema(minimum = 0, maximum = 1)]
        pub kind: u8,
        #[schema(value_type = PermissionBits)]
        pub allow: (),
        #[schema(value_type = PermissionBits)]
        pub deny: (),
    }

    #[derive(ToSchema)]
    pub struct ThreadMetadata {
        pub archived: bool,
        pub auto_archive_duration: u32,
        #[schema(format = DateTime)]
        pub archive_timestamp: String,
        pub locked: bool,
        #[schema(nullable = false)]
        pub invitable: Option<bool>,
        #[schema(nullable = false, format = DateTime)]
        pub create_timestamp: Option<String>,
    }

    /// A channel of any type; which optional fields appear depends on `type`
    /// (DMs: `recipients`; guild channels: `guild_id`, `name`, `position`...;
    /// threads: `owner_id`, `thread_metadata`...).
    #[derive(ToSchema)]
    pub struct Channel {
        #[schema(value_type = Snowflake)]
        pub id: (),
        #[serde(rename = "type")]
        pub kind: u8,
        pub flags: u64,
        #[schema(required, value_type = Option<Snowflake>)]
        pub last_message_id: Option<()>,
        #[schema(nullable = false)]
        pub recipients: Option<Vec<User>>,
        #[schema(value_type = Option<Snowflake>)]
        pub guild_id: Option<()>,
        pub name: Option<String>,
        #[schema(value_type = Null, required = false)]
        pub icon: Option<()>,
        #[schema(value_type = Option<Snowflake>)]
        pub owner_id: Option<()>,
        #[schema(value_type = Option<Snowflake>)]
        pub parent_id: Option<()>,
        #[schema(nullable = false)]
        pub nsfw: Option<bool>,
        #[schema(nullable = false)]
        pub rate_limit_per_user: Option<u32>,
        #[schema(nullable = false, format = DateTime)]
        pub last_pin_timestamp: Option<String>,
        #[schema(nullable = false)]
        pub message_count: Option<u32>,
        #[schema(nullable = false)]
        pub member_count: Option<u32>,
        #[schema(nullable = false)]
        pub total_message_sent: Option<u32>,
        #[schema(nullable = false)]
        pub thread_metadata: Option<ThreadMetadata>,
        #[schema(nullable = false)]
        pub newly_created: Option<bool>,
        #[schema(nullable = false)]
        pub position: Option<i32>,
        #[schema(nullable = false)]
        pub permission_overwrites: Option<Vec<Overwrite>>,
        pub topic: Option<String>,
        #[schema(nullable = false)]
        pub bitrate: Option<u32>,
        #[schema(nullable = false)]
        pub user_limit: Option<u32>,
        #[schema(value_type = Null, required = false)]
        pub rtc_region: Option<()>,
        #[schema(nullable = false)]
        pub default_auto_archive_duration: Option<u32>,
    }

    #[derive(ToSchema)]
    pub struct Member {
        #[schema(nullable = false)]
        pub user: Option<User>,
        #[schema(required)]
        pub nick: Option<String>,
        #[schema(required)]
        pub avatar: Option<String>,
        #[schema(required, value_type = Null)]
        pub banner: Option<()>,
        #[schema(value_type = Vec<Snowflake>)]
        pub roles: (),
        #[schema(format = DateTime)]
        pub joined_at: String,
        #[schema(required, value_type = Null)]
        pub premium_since: Option<()>,
        pub deaf: bool,
        pub mute: bool,
        pub flags: u64,
        pub pending: bool,
        #[schema(required, format = DateTime)]
        pub communication_disabled_until: Option<String>,
        #[schema(nullable = false, value_type = Option<PermissionBits>)]
        pub permissions: Option<()>,
    }

    /// The guild object.
    #[derive(ToSchema)]
    pub struct Guild {
        #[schema(value_type = Snowflake)]
        pub id: (),
        pub name: String,
        #[schema(required)]
        pub icon: Option<String>,
        #[schema(required)]
        pub icon_hash: Option<String>,
        #[schema(required, value_type = Null)]
        pub splash: Option<()>,
        #[schema(required, value_type = Null)]
        pub discovery_splash: Option<()>,
        #[schema(value_type = Snowflake)]
        pub owner_id: (),
        pub region: String,
        #[schema(required, value_type = Option<Snowflake>)]
        pub afk_channel_id: Option<()>,
        pub afk_timeout: u32,
        pub widget_enabled: bool,
        #[schema(required, value_type = Null)]
        pub widget_channel_id: Option<()>,
        pub verification_level: u8,
        pub default_message_notifications: u8,
        pub explicit_content_filter: u8,
        pub roles: Vec<Role>,
        #[schema(value_type = Vec<Object>)]
        pub emojis: (),
        #[schema(value_type = Vec<Object>)]
        pub stickers: (),
        pub features: Vec<String>,
        pub mfa_level: u8,
        #[schema(required, value_type = Null)]
        pub application_id: Option<()>,
        #[schema(required, value_type = Option<Snowflake>)]
        pub system_channel_id: Option<()>,
        pub system_channel_flags: u64,
        #[schema(required, value_type = Option<Snowflake>)]
        pub rules_channel_id: Option<()>,
        #[schema(required, value_type = Null)]
        pub max_presences: Option<()>,
        pub max_members: u32,
        #[schema(required, value_type = Null)]
        pub vanity_url_code: Option<()>,
        #[schema(required)]
        pub description: Option<String>,
        #[schema(required, value_type = Null)]
        pub banner: Option<()>,
        pub premium_tier: u8,
        pub premium_subscription_count: u32,
        pub preferred_locale: String,
        #[schema(required, value_type = Option<Snowflake>)]
        pub public_updates_channel_id: Option<()>,
        pub max_video_channel_users: u32,
        pub max_stage_video_channel_users: u32,
        pub nsfw_level: u8,
        pub nsfw: bool,
        pub premium_progress_bar_enabled: bool,
        #[schema(required, value_type = Null)]
        pub safety_alerts_channel_id: Option<()>,
        #[schema(required, value_type = Null)]
        pub incidents_data: Option<()>,
        /// `with_counts=true` only.
        #[schema(nullable = false)]
        pub approximate_member_count: Option<u64>,
        #[schema(nullable = false)]
        pub approximate_presence_count: Option<u64>,
    }

    /// A guild in `GET /users/@me/guilds`.
    #[derive(ToSchema)]
    pub struct PartialGuild {
        #[schema(value_type = Snowflake)]
        pub id: (),
        pub name: String,
        #[schema(required)]
        pub icon: Option<String>,
        #[schema(required, value_type = Null)]
        pub banner: Option<()>,
        pub owner: bool,
        #[schema(value_type = PermissionBits)]
        pub permissions: (),
        pub features: Vec<String>,
    }

    #[derive(ToSchema)]
    pub struct Attachment {
        #[schema(value_type = Snowflake)]
        pub id: (),
        pub filename: String,
        #[schema(nullable = false)]
        pub description: Option<String>,
        #[schema(nullable = false)]
        pub content_type: Option<String>,
        pub size: u64,
        pub url: String,
        pub proxy_url: String,
        #[schema(nullable = false)]
        pub width: Option<u32>,
        #[schema(nullable = false)]
        pub height: Option<u32>,
    }

    #[derive(ToSchema)]
    pub struct ReactionEmoji {
        #[schema(required, value_type = Option<Snowflake>)]
        pub id: Option<()>,
        pub name: String,
        #[schema(nullable = false)]
        pub animated: Option<bool>,
    }

    #[derive(ToSchema)]
    pub struct CountDetails {
        pub burst: u64,
        pub normal: u64,
    }

    #[derive(ToSchema)]
    pub struct Reaction {
        pub count: u64,
        pub count_details: CountDetails,
        pub me: bool,
        pub me_burst: bool,
        pub burst_me: bool,
        pub emoji: ReactionEmoji,
        #[schema(value_type = Vec<String>)]
        pub burst_colors: (),
    }

    #[derive(ToSchema)]
    pub struct MessageReference {
        #[serde(rename = "type")]
        pub kind: u8,
        #[schema(nullable = false, value_type = Option<Snowflake>)]
        pub message_id: Option<()>,
        #[schema(nullable = false, value_type = Option<Snowflake>)]
        pub channel_id: Option<()>,
        #[schema(nullable = false, value_type = Option<Snowflake>)]
        pub guild_id: Option<()>,
    }

    #[derive(ToSchema)]
    pub struct ThreadRef {
        #[schema(value_type = Snowflake)]
        pub id: (),
    }

    /// A message. `member` rides along in guild channels when the author is a
    /// member; `referenced_message` on replies (`null` when the original is gone).
    #[derive(ToSchema)]
    pub struct Message {
        #[schema(value_type = Snowflake)]
        pub id: (),
        #[schema(value_type = Snowflake)]
        pub channel_id: (),
        #[schema(nullable = false, value_type = Option<Snowflake>)]
        pub guild_id: Option<()>,
        pub author: User,
        #[schema(nullable = false)]
        pub member: Option<Member>,
        pub content: String,
        #[schema(format = DateTime)]
        pub timestamp: String,
        #[schema(required, format = DateTime)]
        pub edited_timestamp: Option<String>,
        pub tts: bool,
        pub mention_everyone: bool,
        pub mentions: Vec<User>,
        #[schema(value_type = Vec<Snowflake>)]
        pub mention_roles: (),
        pub attachments: Vec<Attachment>,
        #[schema(value_type = Vec<Object>)]
        pub embeds: (),
        #[schema(nullable = false)]
        pub reactions: Option<Vec<Reaction>>,
        /// Echoed on the create response when the request carried one.
        #[schema(nullable = false)]
        pub nonce: Option<serde_json::Value>,
        pub pinned: bool,
        #[serde(rename = "type")]
        pub kind: u8,
        pub flags: u64,
        #[schema(value_type = Vec<Object>)]
        pub components: (),
        #[schema(nullable = false, value_type = Option<Snowflake>)]
        pub application_id: Option<()>,
        #[schema(nullable = false)]
        pub message_reference: Option<MessageReference>,
        #[schema(no_recursion)]
        pub referenced_message: Option<Box<Message>>,
        #[schema(nullable = false)]
        pub thread: Option<ThreadRef>,
    }

    #[derive(ToSchema)]
    pub struct PinnedMessage {
        #[schema(required, format = DateTime)]
        pub pinned_at: Option<String>,
        pub message: Message,
    }

    #[derive(ToSchema)]
    pub struct PinsPage {
        pub items: Vec<PinnedMessage>,
        pub has_more: bool,
    }

    #[derive(ToSchema)]
    pub struct InviteGuild {
        #[schema(value_type = Snowflake)]
        pub id: (),
        pub name: String,
        #[schema(required)]
        pub icon: Option<String>,
        #[schema(required)]
        pub description: Option<String>,
        pub features: Vec<String>,
        pub verification_level: u8,
        pub nsfw_level: u8,
    }

    #[derive(ToSchema)]
    pub struct InviteChannel {
        #[schema(value_type = Snowflake)]
        pub id: (),
        #[serde(rename = "type")]
        pub kind: u8,
        #[schema(required)]
        pub name: Option<String>,
    }

    /// An invite; `uses`..`created_at` only where its metadata is shown (create,
    /// lists); `new_member` on accept.
    #[derive(ToSchema)]
    pub struct Invite {
        #[serde(rename = "type")]
        pub kind: u8,
        pub code: String,
        #[schema(nullable = false)]
        pub guild: Option<InviteGuild>,
        #[schema(nullable = false, value_type = Option<Snowflake>)]
        pub guild_id: Option<()>,
        pub channel: InviteChannel,
        #[schema(nullable = false)]
        pub inviter: Option<User>,
        #[schema(nullable = false)]
        pub approximate_member_count: Option<u64>,
        #[schema(nullable = false)]
        pub approximate_presence_count: Option<u64>,
        #[schema(required, format = DateTime)]
        pub expires_at: Option<String>,
        pub flags: u64,
        #[schema(nullable = false)]
        pub uses: Option<u32>,
        #[schema(nullable = false)]
        pub max_uses: Option<u32>,
        #[schema(nullable = false)]
        pub max_age: Option<u32>,
        #[schema(nullable = false)]
        pub temporary: Option<bool>,
        #[schema(nullable = false, format = DateTime)]
        pub created_at: Option<String>,
        #[schema(nullable = false)]
        pub new_member: Option<bool>,
    }

    #[derive(ToSchema)]
    pub struct Application {
        #[schema(value_type = Snowflake)]
        pub id: (),
        pub name: String,
        #[schema(required)]
        pub icon: Option<String>,
        pub description: String,
        pub summary: String,
        #[serde(rename = "type")]
        #[schema(required, value_type = Null)]
        pub kind: Option<()>,
        pub bot_public: bool,
        pub bot_require_code_grant: bool,
        pub verify_key: String,
        pub flags: u64,
        pub owner: User,
        pub bot: User,
        #[schema(required, value_type = Null)]
        pub team: Option<()>,
        pub approximate_guild_count: u64,
    }

    #[derive(ToSchema)]
    pub struct Ban {
        #[schema(required)]
        pub reason: Option<String>,
        pub user: User,
    }

    #[derive(ToSchema)]
    pub struct ThreadMember {
        #[schema(value_type = Snowflake)]
        pub id: (),
        #[schema(value_type = Snowflake)]
        pub user_id: (),
        #[schema(format = DateTime)]
        pub join_timestamp: String,
        pub flags: u64,
        /// `with_member=true` only.
        #[schema(nullable = false)]
        pub member: Option<Member>,
    }

    #[derive(ToSchema)]
    pub struct ThreadList {
        pub threads: Vec<Channel>,
        pub members: Vec<ThreadMember>,
        /// Archived lists only.
        #[schema(nullable = false)]
        pub has_more: Option<bool>,
    }

    #[derive(ToSchema)]
    pub struct Token {
        pub token: String,
    }

    #[derive(ToSchema)]
    pub struct UserSettings {
        pub locale: String,
        pub theme: String,
    }

    #[derive(ToSchema)]
    pub struct LoginResponse {
        #[schema(value_type = Snowflake)]
        pub user_id: (),
        pub token: String,
        pub user_settings: UserSettings,
    }

    #[derive(ToSchema)]
    pub struct Gateway {
        pub url: String,
    }

    #[derive(ToSchema)]
    pub struct SessionStartLimit {
        pub total: u32,
        pub remaining: u32,
        /// Milliseconds until the limit resets.
        pub reset_after: u64,
        pub max_concurrency: u32,
    }

    #[derive(ToSchema)]
    pub struct GatewayBot {
        pub url: String,
        pub shards: u32,
        pub session_start_limit: SessionStartLimit,
    }

    #[derive(ToSchema)]
    pub struct ConsentApplication {
        #[schema(value_type = Snowflake)]
        pub id: (),
        pub name: String,
        #[schema(required)]
        pub icon: Option<String>,
        pub description: String,
        pub bot_public: bool,
        pub bot_require_code_grant: bool,
        pub verify_key: String,
        pub flags: u64,
    }

    #[derive(ToSchema)]
    pub struct ConsentGuild {
        #[schema(value_type = Snowflake)]
        pub id: (),
        pub name: String,
        #[schema(required)]
        pub icon: Option<String>,
        pub mfa_level: u8,
        #[schema(value_type = PermissionBits)]
        pub permissions: (),
    }

    /// What the consent screen shows before a bot is added to a guild.
    #[derive(ToSchema)]
    pub struct Consent {
        pub application: ConsentApplication,
        pub bot: User,
        pub user: CurrentUser,
        /// Guilds the caller may add the bot to (MANAGE_GUILD).
        pub guilds: Vec<ConsentGuild>,
        #[schema(value_type = PermissionBits)]
        pub permissions: (),
        pub authorized: bool,
        #[schema(required, value_type = Null)]
        pub redirect_uri: Option<()>,
    }

    #[derive(ToSchema)]
    pub struct Location {
        pub location: String,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_path_carries_the_prefix_and_every_operation_its_error_body() {
        let doc = super::document();
        assert!(doc.paths.paths.len() > 40);
        for (path, item) in &doc.paths.paths {
            assert!(path.starts_with(super::PREFIX), "{path}");
            for op in [&item.get, &item.post, &item.put, &item.patch, &item.delete].into_iter().flatten() {
                assert!(op.responses.responses.contains_key("4XX"), "{path}");
            }
        }
    }
}
