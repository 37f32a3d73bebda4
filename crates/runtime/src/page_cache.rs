//! Rendered latest-history pages: the JSON bytes of a channel's latest page as
//! REST sends it, so a hot `GET /channels/{id}/messages` is a copy of bytes.
//!
//! An entry is valid only at the versions it was rendered at: the store's write
//! version of the channel's messages (the same key as the store's latest-page
//! cache) and the directory's user version (authors and mentions are rendered
//! from it). A page that shows reactions depends on the viewer (`me`), so it is
//! kept for that viewer only.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use guildhall_model::id::{ChannelId, UserId};

/// Channels whose rendered page is kept (about 36 KiB each for 50 messages).
const CHANNELS: usize = 1024;

/// What a rendered page depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageKey {
    pub store_version: u64,
    pub users_version: u64,
    pub limit: usize,
    /// The viewer, for a page whose rendering depends on it; `None` otherwise.
    pub viewer: Option<UserId>,
}

#[derive(Default)]
pub struct PageCache {
    pages: Mutex<HashMap<ChannelId, (PageKey, Bytes)>>,
}

impl PageCache {
    /// The page rendered at `key`, or at `key` without a viewer.
    pub fn get(&self, channel: ChannelId, key: PageKey) -> Option<Bytes> {
        let pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        let (k, bytes) = pages.get(&channel)?;
        let same = k.store_version == key.store_version && k.users_version == key.users_version && k.limit == key.limit;
        (same && (k.viewer.is_none() || k.viewer == key.viewer)).then(|| bytes.clone())
    }

    pub fn put(&self, channel: ChannelId, key: PageKey, bytes: Bytes) {
        let mut pages = self.pages.lock().unwrap_or_else(|p| p.into_inner());
        if pages.len() >= CHANNELS && !pages.contains_key(&channel) {
            pages.clear();
        }
        pages.insert(channel, (key, bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guildhall_model::id::Id;

    fn key(store_version: u64, users_version: u64, limit: usize, viewer: Option<u64>) -> PageKey {
        PageKey { store_version, users_version, limit, viewer: viewer.map(Id::new) }
    }

    #[test]
    fn hits_only_at_the_same_versions_limit_and_viewer() {
        let c = PageCache::default();
        let ch = Id::new(5);
        c.put(ch, key(3, 7, 50, None), Bytes::from_static(b"[1]"));
        assert_eq!(c.get(ch, key(3, 7, 50, Some(1))).as_deref(), Some(&b"[1]"[..]));
        assert!(c.get(ch, key(4, 7, 50, Some(1))).is_none());
        assert!(c.get(ch, key(3, 8, 50, Some(1))).is_none());
        assert!(c.get(ch, key(3, 7, 49, Some(1))).is_none());
        assert!(c.get(Id::new(6), key(3, 7, 50, Some(1))).is_none());
        // A viewer-dependent page serves only its viewer.
        c.put(ch, key(3, 7, 50, Some(1)), Bytes::from_static(b"[2]"));
        assert_eq!(c.get(ch, key(3, 7, 50, Some(1))).as_deref(), Some(&b"[2]"[..]));
        assert!(c.get(ch, key(3, 7, 50, Some(2))).is_none());
    }

    #[test]
    fn bounded() {
        let c = PageCache::default();
        for i in 1..=(CHANNELS as u64 + 10) {
            c.put(Id::new(i), key(0, 0, 50, None), Bytes::new());
        }
        assert!(c.pages.lock().unwrap().len() <= CHANNELS);
    }
}
