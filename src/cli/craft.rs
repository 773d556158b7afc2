//! `sonde craft SPEC`: build one packet (or its fragments), then dump it,
//! write it to a pcap, or send it through the scope gate and show replies.

use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use clap::Args;

use super::write_err;
use crate::analyze::describe::{describe, hex_dump};
use crate::craft::{Crafted, FragmentError, Fragmenting, craft};
use crate::error::Error;
use crate::net::route;
use crate::pcap::LinkType;

#[derive(Debug, Args)]
pub struct CraftArgs {
    /// The packet: layers joined by '/', e.g.
    /// 'ip(dst=198.18.1.5,ttl=3)/tcp(dport=80,flags=S,options=mss:1460;sackok)'
    /// (docs/craft.md has the grammar and every field).
    #[arg(value_name = "SPEC")]
    pub spec: String,

    /// Print a layered dissection (the analyzer's own) and a hex dump
    /// (the default when neither --write nor --send is given).
    #[arg(long)]
    pub dump: bool,

    /// Write the packet(s) to this pcap without sending.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,

    /// Send through the scope gate and show the replies (needs --scope and root).
    #[arg(long, requires = "scope")]
    pub send: bool,

    /// The scope file authorizing --send.
    #[arg(long, value_name = "FILE")]
    pub scope: Option<PathBuf>,

    /// How many times to send (with --send).
    #[arg(long, short = 'c', default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub count: u64,

    /// Seconds between sends (with --send).
    #[arg(
        long,
        short = 'i',
        default_value_t = 1.0,
        value_name = "SECS",
        allow_hyphen_values = true
    )]
    pub interval: f64,

    /// Seconds to wait for replies after the last send.
    #[arg(
        long,
        default_value_t = 1.0,
        value_name = "SECS",
        allow_hyphen_values = true
    )]
    pub wait: f64,

    /// Evidence of --send: every packet sent and every reply.
    #[arg(long, value_name = "FILE", requires = "send")]
    pub pcap: Option<PathBuf>,

    /// Split the IP payload into fragments of SIZE bytes (a multiple of 8).
    #[arg(long, value_name = "SIZE", conflicts_with = "fragments")]
    pub fragment: Option<usize>,

    /// Explicit fragments as byte ranges of the IP payload, OFF:LEN,...
    /// (overlapping and tiny fragments allowed).
    #[arg(long, value_name = "OFF:LEN,...")]
    pub fragments: Option<String>,
}

pub fn run_craft(args: CraftArgs, out: &mut dyn Write) -> Result<i32, Error> {
    super::seconds("--interval", args.interval, "e.g. --interval 0.5")?;
    super::seconds("--wait", args.wait, "e.g. --wait 2")?;
    let source_for = |dst: IpAddr| route::route_to(dst).ok().map(|(_, _, s)| s);
    let crafted = craft(&args.spec, &source_for).map_err(|e| Error::Usage {
        message: format!("bad packet spec: {e}"),
        hint: "docs/craft.md lists every layer and field".into(),
    })?;
    let packets = fragments_of(&crafted, &args)?;

    if args.dump || (args.write.is_none() && !args.send) {
        for (i, p) in packets.iter().enumerate() {
            if packets.len() > 1 {
                writeln!(out, "fragment {} of {}", i + 1, packets.len()).map_err(write_err)?;
            }
            dump(out, crafted.ethernet, p).map_err(write_err)?;
        }
    }
    if let Some(path) = &args.write {
        crate::scan::craft_send::write_pcap(path, crafted.ethernet, &packets)?;
        writeln!(
            out,
            "wrote {} packet(s) to {}",
            packets.len(),
            path.display()
        )
        .map_err(write_err)?;
    }
    if args.send {
        return send(&args, &crafted, &packets, out);
    }
    Ok(0)
}

/// The packet itself, or its fragments.
fn fragments_of(c: &Crafted, args: &CraftArgs) -> Result<Vec<Vec<u8>>, Error> {
    let how = match (args.fragment, &args.fragments) {
        (Some(size), _) => Some(Fragmenting::Even(size)),
        (None, Some(list)) => Some(Fragmenting::List(list)),
        (None, None) => None,
    };
    c.fragmented(how).map_err(|e| {
        let hint = match e {
            FragmentError::NotIp => "start the spec with ip(...) or ipv6(...)",
            FragmentError::Pieces(_) => "docs/craft.md: Fragments",
        };
        Error::usage(e.to_string(), hint)
    })
}

/// The analyzer's dissection of `bytes`, then a hex dump.
fn dump(out: &mut dyn Write, ethernet: bool, bytes: &[u8]) -> std::io::Result<()> {
    let link = if ethernet {
        LinkType::Ethernet
    } else {
        LinkType::Raw
    };
    for line in describe(link, bytes).iter().chain(&hex_dump(bytes)) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// `--send`: the library sends; each reply is printed as it comes, as
/// hping3 prints them.
fn send(
    args: &CraftArgs,
    crafted: &Crafted,
    packets: &[Vec<u8>],
    out: &mut dyn Write,
) -> Result<i32, Error> {
    use crate::scan::craft_send::{CraftEvent, CraftSend};
    let scope = args.scope.as_deref().expect("clap requires --scope");
    let what = CraftSend {
        scope,
        crafted,
        packets,
        count: args.count,
        interval: args.interval,
        wait: args.wait,
        pcap: args.pcap.clone(),
    };
    let o = crate::scan::craft_send::send(&what, &mut |e| {
        match e {
            CraftEvent::Reply { n, answer: a, rtt } => writeln!(
                out,
                "len={} ip={} ttl={} {} seq={} rtt={:.2} ms",
                a.len,
                a.from,
                a.ttl,
                a.summary,
                n,
                rtt.as_secs_f64() * 1000.0
            ),
            CraftEvent::NoReply { n, waited } => writeln!(
                out,
                "no reply to packet {n} within {:.2} s",
                waited.as_secs_f64()
            ),
        }
        .map_err(write_err)
    })?;
    writeln!(
        out,
        "--- {}: {} packet(s) sent, {} repl{} (scope {}, {})",
        o.dst,
        o.sent,
        o.replies,
        if o.replies == 1 { "y" } else { "ies" },
        o.engagement_id,
        o.scope_path.display()
    )
    .map_err(write_err)?;
    Ok(0)
}
