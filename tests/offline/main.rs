//! The tests that need no root: the analysis against tshark's counts on
//! real captures, packets against Scapy's bytes, scope files and the gate,
//! the command line, reports and their schemas, the layer rule. `cargo
//! test --test offline` runs them anywhere.

mod analyze_cli;
mod analyze_corpus;
mod analyze_detectors;
mod analyze_http;
mod analyze_link_types;
mod analyze_tls;
mod analyze_tunnels;
mod cli_packaging;
mod cli_scope;
mod craft;
mod deploy_manifests;
mod layers;
mod probe_packets;
mod report_schema;
mod robustness;
mod scan_dry_run;
mod scan_report_types;
mod scan_session;
mod scope_file_errors;
mod scope_gate;
mod service_connections;
