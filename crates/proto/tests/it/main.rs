//! Integration tests of guildhall-proto's public API, driven the way the gateway shell
//! drives it: bytes and virtual time in, commands, frames and close codes out.

mod session;
