//! The one error type operations return. Each carries Discord's JSON code and a
//! kind; the REST layer maps the kind to an HTTP status in one place.

use guildhall_model::error_code as code;
use guildhall_store::StoreError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    /// Too much work queued (a full actor mailbox or store queue): retry later.
    Overloaded,
    Internal,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Error {
    pub kind: ErrorKind,
    pub code: u32,
    pub message: String,
    /// Discord's field-by-field `errors` tree for 50035.
    pub errors: Option<serde_json::Value>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, code: u32, message: impl Into<String>) -> Error {
        Error { kind, code, message: message.into(), errors: None }
    }
    pub fn unknown_guild() -> Error {
        Self::new(ErrorKind::NotFound, code::UNKNOWN_GUILD, "Unknown Guild")
    }
    pub fn unknown_channel() -> Error {
        Self::new(ErrorKind::NotFound, code::UNKNOWN_CHANNEL, "Unknown Channel")
    }
    pub fn unknown_message() -> Error {
        Self::new(ErrorKind::NotFound, code::UNKNOWN_MESSAGE, "Unknown Message")
    }
    pub fn unknown_user() -> Error {
        Self::new(ErrorKind::NotFound, code::UNKNOWN_USER, "Unknown User")
    }
    pub fn unknown_member() -> Error {
        Self::new(ErrorKind::NotFound, code::UNKNOWN_MEMBER, "Unknown Member")
    }
    pub fn unknown_role() -> Error {
        Self::new(ErrorKind::NotFound, code::UNKNOWN_ROLE, "Unknown Role")
    }
    pub fn unknown_invite() -> Error {
        Self::new(ErrorKind::NotFound, code::UNKNOWN_INVITE, "Unknown Invite")
    }
    pub fn unknown_ban() -> Error {
        Self::new(ErrorKind::NotFound, code::UNKNOWN_BAN, "Unknown Ban")
    }
    pub fn unknown_application() -> Error {
        Self::new(ErrorKind::NotFound, code::UNKNOWN_APPLICATION, "Unknown Application")
    }
    pub fn unknown_emoji() -> Error {
        Self::new(ErrorKind::BadRequest, code::UNKNOWN_EMOJI, "Unknown Emoji")
    }
    pub fn missing_access() -> Error {
        Self::new(ErrorKind::Forbidden, code::MISSING_ACCESS, "Missing Access")
    }
    pub fn missing_permissions() -> Error {
        Self::new(ErrorKind::Forbidden, code::MISSING_PERMISSIONS, "Missing Permissions")
    }
    pub fn unauthorized() -> Error {
        Self::new(ErrorKind::Unauthorized, code::GENERAL, "401: Unauthorized")
    }
    pub fn bad_request(code: u32, message: impl Into<String>) -> Error {
        Self::new(ErrorKind::BadRequest, code, message)
    }
    pub fn overloaded() -> Error {
        Self::new(ErrorKind::Overloaded, code::GENERAL, "Service is overloaded, retry later")
    }
    pub fn internal() -> Error {
        Self::new(ErrorKind::Internal, code::GENERAL, "500: Internal Server Error")
    }

    /// 50035 with one field error, e.g. `form_field("content", "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")`.
    /// `path` may be dotted (`"embeds.0.title"`) for nested fields.
    pub fn form_field(path: &str, error_code: &str, message: &str) -> Error {
        let mut form = FormErrors::default();
        form.add(path, error_code, message);
        form.into_error()
    }
}

/// Collects field errors into Discord's nested `errors` tree.
#[derive(Default, Debug)]
pub struct FormErrors {
    tree: serde_json::Map<String, serde_json::Value>,
}

impl FormErrors {
    /// Adds an error at `path` (dotted for nested fields); the path `_errors` is the
    /// request-level list itself.
    pub fn add(&mut self, path: &str, error_code: &str, message: &str) {
        let mut node = &mut self.tree;
        for part in path.split('.').filter(|p| *p != "_errors") {
            let entry = node.entry(part.to_string()).or_insert_with(|| serde_json::Value::Object(Default::default()));
            node = match entry {
                serde_json::Value::Object(m) => m,
                _ => unreachable!("form error nodes are always objects"),
            };
        }
        let list = node.entry("_errors").or_insert_with(|| serde_json::Value::Array(Vec::new()));
        if let serde_json::Value::Array(a) = list {
            a.push(serde_json::json!({ "code": error_code, "message": message }));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tree.is_empty()
    }

    pub fn into_error(self) -> Error {
        Error {
            kind: ErrorKind::BadRequest,
            code: code::INVALID_FORM_BODY,
            message: "Invalid Form Body".into(),
            errors: Some(serde_json::Value::Object(self.tree)),
        }
    }

    /// `Ok(())` when no field failed, else the 50035 error.
    pub fn finish(self) -> Result<()> {
        if self.is_empty() { Ok(()) } else { Err(self.into_error()) }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        match e {
            StoreError::Overloaded => Error::overloaded(),
            other => {
                tracing::error!(error = %other, "store failure");
                Error::internal()
            }
        }
    }
}
