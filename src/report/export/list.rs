//! masscan's list output (`-oL`): `#masscan`, then one line per finding,
//! `open tcp 22 198.18.1.1 1764464523` (state, protocol, port, address,
//! seconds since the epoch), then `# end`. As masscan, findings only:
//! open ports, echo replies (`open icmp 0`) and DNS answers (`open udp 53`).

use std::io::{self, Write};

use crate::probe::Verdict;
use crate::results::ScanReport;
use crate::scope::ProbeKind;

pub(super) fn write(scan: &ScanReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "#masscan")?;
    for host in &scan.hosts {
        for r in &host.results {
            let (proto, port) = match (r.probe, r.verdict, r.port) {
                (ProbeKind::Syn, Verdict::Open, Some(p)) => ("tcp", p),
                (ProbeKind::Icmp, Verdict::Up, _) => ("icmp", 0),
                (ProbeKind::Dns, _, _) => ("udp", 53),
                _ => continue,
            };
            writeln!(out, "open {proto} {port} {} {}", r.target, r.time.seconds())?;
        }
    }
    writeln!(out, "# end")
}
