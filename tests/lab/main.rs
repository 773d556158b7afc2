//! The lab tests: scans, crafted packets and services in network
//! namespaces the tests build (`support::lab::Lab`: 198.18.0.0/15 and
//! 2001:db8::/32, nothing reaches out) and tear down. They need root, and
//! without it they fail, loudly: `sudo cargo test --test lab`.

mod craft_send;
mod evidence_compact;
mod harness;
mod net_packet;
mod net_route;
mod report_html;
mod scan_cli;
mod scan_faults;
mod scan_lab;
mod scan_links;
mod scan_locks;
mod scan_merge;
mod scan_onlink;
mod scan_outputs;
mod scan_resume;
mod scope_limits;
mod service_lab;
