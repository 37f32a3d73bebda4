//! Fuzz target: `guildhall_runtime::tokens::Tokens::verify` on arbitrary strings, with a
//! directory holding one user. Only that user's freshly minted token may verify; any other
//! input must return `None` without panicking.
#![no_main]

use std::sync::OnceLock;

use guildhall_domain::entity::User;
use guildhall_model::id::UserId;
use guildhall_runtime::Directory;
use guildhall_runtime::tokens::Tokens;
use libfuzzer_sys::fuzz_target;

struct Fixture {
    tokens: Tokens,
    directory: Directory,
    user: UserId,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let user = User {
            id: "175928847299117063".parse().expect("id"),
            username: "fuzz".into(),
            global_name: None,
            avatar: None,
            bot: false,
            email: Some("fuzz@example.com".into()),
            password_hash: None,
            token_generation: 3,
            flags: 0,
            locale: "en-US".into(),
        };
        let id = user.id;
        let directory = Directory::default();
        directory.put_user(user);
        Fixture { tokens: Tokens::new([7; 32]), directory, user: id }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Ok(token) = std::str::from_utf8(data) else { return };
    if let Some(user) = f.tokens.verify(token, &f.directory) {
        // Only a token carrying a valid MAC for the one user can get here.
        assert_eq!(user.id, f.user);
    }
    // The same string with a Bot / Bearer prefix, as in an Authorization header.
    let _ = f.tokens.verify(token.trim_start_matches("Bot "), &f.directory);
});
