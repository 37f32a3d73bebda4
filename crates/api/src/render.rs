//! Rendering helpers that need the directory (users) and the public URL.

use std::collections::HashMap;
use std::sync::Arc;

use guildhall_domain::entity::User;
use guildhall_domain::wire::MessageContext;
use guildhall_model::id::UserId;

/// A message-render context over the directory's user map.
pub struct Ctx<'a> {
    pub users: &'a HashMap<UserId, Arc<User>>,
    pub base: &'a str,
}

impl MessageContext for Ctx<'_> {
    fn user(&self, id: UserId) -> Option<&User> {
        self.users.get(&id).map(|u| &**u)
    }
    fn base_url(&self) -> &str {
        self.base
    }
}
