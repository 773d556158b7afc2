//! Helpers shared by the integration tests.
pub mod capture;
pub mod cli;
pub mod evidence;
pub mod lab;
