//! Service identification (issue 28): what runs on an open port, named
//! from what it says. The pure core: rules (`rules.rs`, data in
//! `rules.toml`) matched over bytes a connection heard; no sockets here.

pub mod dns;
pub mod http;
pub mod probe;
pub mod rules;
pub mod tls;

pub use rules::{Field, Named, Rules, RulesError};
