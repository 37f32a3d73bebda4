//! Files: message create and edit bodies as JSON or `multipart/form-data`
//! (`payload_json` + `files[n]` / `file` parts), storing each upload under
//! `attachments_dir/{channel}/{attachment}/{filename}` — fsynced before the
//! message that names it is submitted — and serving them back at
//! `GET /attachments/{channel}/{attachment}/{filename}` (outside /api).
//!
//! Invariant: a stored filename is always a sanitized base name (no separators,
//! no control characters, never `.` or `..`), and a served path is built only
//! from two parsed snowflakes and a name that is its own sanitized form, so no
//! request can reach a file outside the attachments directory.

use std::path::{Path as FsPath, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use guildhall_domain::entity::Attachment;
use guildhall_model::Permissions;
use guildhall_model::error_code;
use guildhall_model::id::{AttachmentId, ChannelId};
use guildhall_runtime::{Error, ErrorKind, FormErrors};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult, ok_json};
use crate::extract::{DiscordJson, MAX_JSON_BYTES, message_path, parse_json, path_id};
use crate::routes::messages::{
    AttachmentRef, CreateMessageBody, EditMessageBody, apply_edit, send_message, validate_create, validate_edit,
};

/// Routes outside /api: the file server.
pub fn unversioned() -> Router<AppState> {
    Router::new().route("/attachments/{channel_id}/{attachment_id}/{filename}", get(serve))
}

/// A message as `multipart/form-data` (the OpenAPI document's view of what
/// [`read_multipart`] accepts): the JSON body in `payload_json` (or plain fields
/// such as `content`), and up to ten `files[n]` parts.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct MessageUpload {
    /// The JSON body, as a string.
    payload_json: Option<String>,
    #[schema(max_length = 2000)]
    content: Option<String>,
    #[schema(rename = "files[0]", value_type = Option<String>, format = Binary)]
    file0: Option<()>,
}

/// Files per message, as on Discord.
const MAX_FILES: usize = 10;

/// One uploaded file part, held in memory until it is written.
struct FilePart {
    index: usize,
    filename: Option<String>,
    content_type: Option<String>,
    bytes: bytes::Bytes,
}

/// A parsed multipart body.
struct Upload {
    payload: Option<bytes::Bytes>,
    /// Plain form fields (`content`, `nonce`, ...) when there is no payload_json.
    fields: serde_json::Map<String, serde_json::Value>,
    files: Vec<FilePart>,
}

fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("multipart/form-data"))
}

fn too_large() -> ApiError {
    ApiError(Error::new(ErrorKind::PayloadTooLarge, error_code::REQUEST_TOO_LARGE, "Request entity too large"))
}

/// 50035 with a request-level error (`errors._errors`).
fn bad_multipart() -> ApiError {
    let mut e = FormErrors::default().into_error();
    e.errors = Some(serde_json::json!({
        "_errors": [{ "code": "MULTIPART_INVALID", "message": "The multipart body could not be parsed." }]
    }));
    ApiError(e)
}

/// Reads a JSON body (the route has no default body limit, so cap it here).
async fn read_json<T: serde::de::DeserializeOwned>(s: &AppState, req: Request) -> ApiResult<T> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_JSON_BYTES).await.map_err(|_| too_large())?;
    let req = Request::from_parts(parts, Body::from(bytes));
    let DiscordJson(v) = DiscordJson::<T>::from_request(req, s).await?;
    Ok(v)
}

/// Reads every part, counting file bytes against `max_upload_bytes` as they
/// arrive (413 / 40005 as soon as the sum is over).
async fn read_multipart(s: &AppState, req: Request) -> ApiResult<Upload> {
    let limit = s.config.max_upload_bytes;
    let mut mp = Multipart::from_request(req, s).await.map_err(|_| bad_multipart())?;
    let mut upload = Upload { payload: None, fields: serde_json::Map::new(), files: Vec::new() };
    let mut total = 0usize;
    let mut next_index = 0usize;
    while let Some(mut field) = mp.next_field().await.map_err(|_| bad_multipart())? {
        let name = field.name().unwrap_or("").to_string();
        let file_name = field.file_name().map(str::to_string);
        let content_type = field.content_type().map(str::to_string);
        let is_file = file_name.is_some() || name.starts_with("files[") || name.starts_with("file");
        let mut buf = bytes::BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(|_| bad_multipart())? {
            if is_file {
                total += chunk.len();
                if total > limit {
                    return Err(too_large());
                }
            } else if buf.len() + chunk.len() > MAX_JSON_BYTES {
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        if !is_file {
            if name == "payload_json" {
                upload.payload = Some(buf.freeze());
            } else if !name.is_empty() {
                upload.fields.insert(name, serde_json::Value::String(String::from_utf8_lossy(&buf).into_owned()));
            }
            continue;
        }
        let index = name
            .strip_prefix("files[")
            .and_then(|r| r.strip_suffix(']'))
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(next_index);
        next_index = next_index.max(index + 1);
        if upload.files.iter().any(|f| f.index == index) {
            return Err(
                Error::form_field(&format!("files.{index}"), "BASE_TYPE_DUPLICATE", "Duplicate file index.").into()
            );
        }
        upload.files.push(FilePart { index, filename: file_name, content_type, bytes: buf.freeze() });
        if upload.files.len() > MAX_FILES {
            return Err(Error::form_field("files", "BASE_TYPE_MAX_LENGTH", "Must be 10 or fewer in length.").into());
        }
    }
    upload.files.sort_by_key(|f| f.index);
    Ok(upload)
}

/// The JSON body of a multipart request: `payload_json`, or else the plain
/// form fields (`content`, `nonce`, `tts`, `flags`).
fn payload_of<T: serde::de::DeserializeOwned>(upload: &Upload) -> ApiResult<T> {
    match &upload.payload {
        Some(p) => parse_json(p),
        None => {
            let mut obj = upload.fields.clone();
            for key in ["tts"] {
                if let Some(serde_json::Value::String(v)) = obj.get(key) {
                    let b = matches!(v.as_str(), "true" | "True" | "1");
                    obj.insert(key.into(), serde_json::Value::Bool(b));
                }
            }
            if let Some(serde_json::Value::String(v)) = obj.get("flags") {
                let n = v.parse::<u64>().map(serde_json::Value::from).unwrap_or(serde_json::Value::Null);
                obj.insert("flags".into(), n);
            }
            parse_json(&serde_json::to_vec(&obj).unwrap_or_default())
        }
    }
}

/// Keeps a file name's base name, drops control characters, replaces
/// characters that would break a URL path with `_`, caps it at 200 bytes, and
/// never returns an empty name, `.` or `..` (→ "unknown").
pub fn sanitize_filename(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let mut out = String::with_capacity(base.len());
    for c in base.chars() {
        if c.is_control() {
            continue;
        }
        if c.is_whitespace() || matches!(c, '?' | '#' | '%' | '"' | '<' | '>' | ':' | '*' | '|') {
            out.push('_');
        } else {
            out.push(c);
        }
    }
    if out.len() > 200 {
        let ext = out.rfind('.').map(|i| out[i..].to_string()).filter(|e| e.len() <= 16).unwrap_or_default();
        let mut cut = 200 - ext.len();
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push_str(&ext);
    }
    if out.is_empty() || out.chars().all(|c| c == '.') { "unknown".to_string() } else { out }
}

/// A Content-Type for a file: the uploader's if it is well formed, else a guess
/// from the extension, else `application/octet-stream`.
fn content_type_for(filename: &str, given: Option<&str>) -> String {
    let well_formed = |t: &str| {
        let mut parts = t.split('/');
        let ok = |p: Option<&str>| {
            p.is_some_and(|p| {
                !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
            })
        };
        ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
    };
    if let Some(t) = given.map(|t| t.split(';').next().unwrap_or("").trim().to_ascii_lowercase())
        && well_formed(&t)
        && t != "application/octet-stream"
    {
        return t;
    }
    guess_content_type(filename).to_string()
}

fn guess_content_type(filename: &str) -> &'static str {
    let ext = filename.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "bmp" => "image/bmp",
        "svg" => "image/svg+xml",
        "txt" | "log" => "text/plain",
        "md" => "text/markdown",
        "csv" => "text/csv",
        "json" => "application/json",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "wav" => "audio/wav",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mov" => "video/quicktime",
        "html" | "htm" => "text/html",
        _ => "application/octet-stream",
    }
}

/// Pixel size of PNG and GIF images (from their headers); `None` otherwise.
fn image_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() >= 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        let w = u32::from_be_bytes(bytes[16..20].try_into().ok()?);
        let h = u32::from_be_bytes(bytes[20..24].try_into().ok()?);
        return Some((w, h));
    }
    if bytes.len() >= 10 && (bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a")) {
        let w = u16::from_le_bytes([bytes[6], bytes[7]]) as u32;
        let h = u16::from_le_bytes([bytes[8], bytes[9]]) as u32;
        return Some((w, h));
    }
    None
}

/// Where an attachment's file lives.
fn file_path(root: &FsPath, channel: ChannelId, id: AttachmentId, filename: &str) -> PathBuf {
    root.join(channel.to_string()).join(id.to_string()).join(filename)
}

/// The side file holding an attachment's Content-Type (outside the
/// attachment's own directory, so no URL can name it).
fn type_path(root: &FsPath, channel: ChannelId, id: AttachmentId) -> PathBuf {
    root.join(channel.to_string()).join(format!("{id}.type"))
}

fn fsync_dir(dir: &FsPath) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Writes one file and its type side file, fsyncing both and their directories.
fn write_durably(root: &FsPath, channel: ChannelId, a: &Attachment, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let path = file_path(root, channel, a.id, &a.filename);
    let dir = path.parent().expect("a file path has a parent");
    std::fs::create_dir_all(dir)?;
    let mut f = std::fs::File::create(&path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    let tpath = type_path(root, channel, a.id);
    let mut t = std::fs::File::create(&tpath)?;
    t.write_all(a.content_type.as_deref().unwrap_or("application/octet-stream").as_bytes())?;
    t.sync_all()?;
    fsync_dir(dir)?;
    let channel_dir = dir.parent().expect("the attachment directory has a parent");
    fsync_dir(channel_dir)?;
    fsync_dir(root)
}

/// Removes files written for a message that was then refused.
fn remove_files(root: &FsPath, channel: ChannelId, attachments: &[Attachment]) {
    for a in attachments {
        let _ = std::fs::remove_dir_all(root.join(channel.to_string()).join(a.id.to_string()));
        let _ = std::fs::remove_file(type_path(root, channel, a.id));
    }
}

/// Turns uploaded parts into attachments (ids, sanitized names, types) and
/// writes them durably. `refs` is the JSON's `attachments` (matched by index).
async fn store_files(
    s: &AppState,
    channel: ChannelId,
    files: Vec<FilePart>,
    refs: &[AttachmentRef],
) -> ApiResult<Vec<Attachment>> {
    let mut out = Vec::with_capacity(files.len());
    let mut blobs = Vec::with_capacity(files.len());
    for f in files {
        let r = refs.iter().find(|r| r.id_u64() == Some(f.index as u64));
        let raw_name = r.and_then(|r| r.filename.clone()).or(f.filename).unwrap_or_default();
        let filename = sanitize_filename(&raw_name);
        let content_type = content_type_for(&filename, f.content_type.as_deref());
        let (width, height) = match image_size(&f.bytes) {
            Some((w, h)) => (Some(w), Some(h)),
            None => (None, None),
        };
        let description = r.and_then(|r| r.description.clone()).filter(|d| !d.is_empty());
        if description.as_ref().is_some_and(|d| d.chars().count() > 1024) {
            return Err(Error::form_field(
                &format!("attachments.{}.description", f.index),
                "BASE_TYPE_MAX_LENGTH",
                "Must be 1024 or fewer in length.",
            )
            .into());
        }
        out.push(Attachment {
            id: s.rt.next_id(),
            filename,
            description,
            content_type: Some(content_type),
            size: f.bytes.len() as u64,
            width,
            height,
        });
        blobs.push(f.bytes);
    }
    if out.is_empty() {
        return Ok(out);
    }
    let root = s.rt.config.attachments_dir.clone();
    let list = out.clone();
    let written = tokio::task::spawn_blocking(move || {
        for (a, b) in list.iter().zip(blobs.iter()) {
            if let Err(e) = write_durably(&root, channel, a, b) {
                remove_files(&root, channel, &list);
                return Err(e);
            }
        }
        Ok(())
    })
    .await;
    match written {
        Ok(Ok(())) => Ok(out),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "writing an attachment failed");
            Err(Error::internal().into())
        }
        Err(_) => Err(Error::internal().into()),
    }
}

/// `POST /channels/{id}/messages`, JSON or multipart.
#[utoipa::path(post, path = "/channels/{channel_id}/messages", tag = "messages", request_body(content((crate::routes::messages::CreateMessageBody = "application/json"), (MessageUpload = "multipart/form-data"))), responses((status = 200, description = "The new message", body = crate::openapi::schema::Message)))]
pub async fn create_message(
    State(s): State<AppState>,
    caller: Caller,
    Path(channel_id): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let channel: ChannelId = path_id(&channel_id, "channel_id")?;
    if !is_multipart(req.headers()) {
        let body: CreateMessageBody = read_json(&s, req).await?;
        let new = validate_create(body)?;
        return send_message(&s, &caller, channel, new).await;
    }
    let upload = read_multipart(&s, req).await?;
    let mut body: CreateMessageBody = payload_of(&upload)?;
    let refs = body.attachments.take().unwrap_or_default();
    let mut new = validate_create(body)?;
    if upload.files.is_empty() {
        return send_message(&s, &caller, channel, new).await;
    }
    // Check before writing anything, so a refused upload leaves no files.
    let required = Permissions::SEND_MESSAGES | Permissions::ATTACH_FILES;
    crate::access::channel_access(&s.rt, caller.id(), channel, required).await?;
    new.attachments = store_files(&s, channel, upload.files, &refs).await?;
    let written = new.attachments.clone();
    let result = send_message(&s, &caller, channel, new).await;
    if result.is_err() {
        let root = s.rt.config.attachments_dir.clone();
        let _ = tokio::task::spawn_blocking(move || remove_files(&root, channel, &written)).await;
    }
    result
}

/// `PATCH /channels/{id}/messages/{msg}`, JSON or multipart (new files).
#[utoipa::path(patch, path = "/channels/{channel_id}/messages/{message_id}", tag = "messages", request_body(content((crate::routes::messages::EditMessageBody = "application/json"), (MessageUpload = "multipart/form-data"))), responses((status = 200, description = "The edited message", body = crate::openapi::schema::Message)))]
pub async fn edit_message(
    State(s): State<AppState>,
    caller: Caller,
    Path((channel_id, message_id)): Path<(String, String)>,
    req: Request,
) -> ApiResult<Response> {
    let (channel, id) = message_path(&channel_id, &message_id)?;
    if !is_multipart(req.headers()) {
        let body: EditMessageBody = read_json(&s, req).await?;
        let edit = validate_edit(body)?;
        return Ok(ok_json(&apply_edit(&s, &caller, channel, id, edit).await?));
    }
    let upload = read_multipart(&s, req).await?;
    let body: EditMessageBody = payload_of(&upload)?;
    let refs = body.attachments.clone().flatten().unwrap_or_default();
    let mut edit = validate_edit(body)?;
    if upload.files.is_empty() {
        return Ok(ok_json(&apply_edit(&s, &caller, channel, id, edit).await?));
    }
    let access = crate::access::channel_access(&s.rt, caller.id(), channel, Permissions::ATTACH_FILES).await?;
    drop(access);
    edit.author_fields = true;
    edit.new_attachments = store_files(&s, channel, upload.files, &refs).await?;
    let written = edit.new_attachments.clone();
    match apply_edit(&s, &caller, channel, id, edit).await {
        Ok(v) => Ok(ok_json(&v)),
        Err(e) => {
            let root = s.rt.config.attachments_dir.clone();
            let _ = tokio::task::spawn_blocking(move || remove_files(&root, channel, &written)).await;
            Err(e)
        }
    }
}

fn plain_not_found() -> Response {
    crate::error::json_response(StatusCode::NOT_FOUND, &serde_json::json!({ "message": "404: Not Found", "code": 0 }))
}

/// `GET /attachments/{channel}/{attachment}/{filename}`: the stored bytes, or 404.
async fn serve(
    State(s): State<AppState>,
    Path((channel, attachment, filename)): Path<(String, String, String)>,
) -> Response {
    let (Ok(channel), Ok(attachment)) = (channel.parse::<ChannelId>(), attachment.parse::<AttachmentId>()) else {
        return plain_not_found();
    };
    if sanitize_filename(&filename) != filename {
        return plain_not_found();
    }
    let root = &s.rt.config.attachments_dir;
    let path = file_path(root, channel, attachment, &filename);
    let bytes = match tokio::fs::metadata(&path).await {
        Ok(m) if m.is_file() => match tokio::fs::read(&path).await {
            Ok(b) => b,
            Err(_) => return plain_not_found(),
        },
        _ => return plain_not_found(),
    };
    let stored = tokio::fs::read_to_string(type_path(root, channel, attachment)).await.ok();
    let content_type = content_type_for(&filename, stored.as_deref());
    // Active content never renders inline from our origin.
    let inline = !matches!(content_type.as_str(), "text/html" | "image/svg+xml" | "application/xhtml+xml")
        && (content_type.starts_with("image/")
            || content_type.starts_with("video/")
            || content_type.starts_with("audio/")
            || content_type == "text/plain"
            || content_type == "application/pdf");
    let disposition = format!(
        "{}; filename=\"{}\"",
        if inline { "inline" } else { "attachment" },
        filename.replace(['"', '\\'], "_").chars().filter(char::is_ascii).collect::<String>()
    );
    let mut res = (StatusCode::OK, bytes).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&content_type).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitizes_names() {
        assert_eq!(sanitize_filename("../../etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(sanitize_filename(".."), "unknown");
        assert_eq!(sanitize_filename("."), "unknown");
        assert_eq!(sanitize_filename(""), "unknown");
        assert_eq!(sanitize_filename("dir/"), "unknown");
        assert_eq!(sanitize_filename("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(sanitize_filename("my file?.png"), "my_file_.png");
        assert_eq!(sanitize_filename("ümlaut.txt"), "ümlaut.txt");
        let long = format!("{}.png", "x".repeat(300));
        let s = sanitize_filename(&long);
        assert!(s.len() <= 200 && s.ends_with(".png"));
        // A sanitized name is its own sanitized form.
        for n in ["../x", "a b", "...", "x\\y", long.as_str()] {
            let once = sanitize_filename(n);
            assert_eq!(sanitize_filename(&once), once);
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type_for("a.png", None), "image/png");
        assert_eq!(content_type_for("a.bin", Some("text/plain; charset=utf-8")), "text/plain");
        assert_eq!(content_type_for("a.png", Some("application/octet-stream")), "image/png");
        assert_eq!(content_type_for("a", Some("not a type")), "application/octet-stream");
        assert_eq!(image_size(b"GIF89a\x02\x00\x03\x00rest"), Some((2, 3)));
    }
}
