//! masscan's list output (`-oL`): `#masscan`, then one line per finding,
//! `open tcp 22 198.18.1.1 1764464523` (state, protocol, port, address,
//! seconds since the epoch), then `# end`. As masscan, findings only:
//! open ports, echo replies (`open icmp 0`) and DNS answers (`open udp 53`).

use std::io::{self, Write};

use super::{ScanView, epoch};

pub(super) fn write(scan: &ScanView, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "#masscan")?;
    for host in &scan.hosts {
        for r in &host.results {
            let (proto, port) = match (r.probe.as_str(), r.state.as_str(), r.port) {
                ("syn", "open", Some(p)) => ("tcp", p),
                ("icmp", "up", _) => ("icmp", 0),
                ("dns", _, _) => ("udp", 53),
                _ => continue,
            };
            writeln!(out, "open {proto} {port} {} {}", r.target, epoch(&r.time))?;
        }
    }
    writeln!(out, "# end")
}
