//! The test lab: a scanner and a target network namespace joined by a veth
//! pair, built per test and torn down when the [`Lab`] is dropped (also when
//! the test panics).
//!
//! ```text
//!  scanner ns                       target ns
//!  vs 198.18.0.2/24  <-- veth -->  vt 198.18.0.1/24      on-link hosts 198.18.0.10-19
//!     2001:db8::2/64                  2001:db8::1/64
//!  default via 198.18.0.1          lo: routed hosts 198.18.1.1-254 (less the down ones)
//!          via 2001:db8::1                 2001:db8:1::1-20, dnsmasq on 198.18.1.53
//! ```
//!
//! Nothing here reaches any address outside the two namespaces: the scanner
//! namespace's only routes lead into the veth, and the target namespace has
//! no route out.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// TCP ports with a listener on every up host.
pub const OPEN_EVERYWHERE: [u16; 3] = [22, 80, 443];
/// A port open only on [`WEB_HOST_V4`] and [`WEB_HOST_V6`].
pub const OPEN_ON_WEB_HOST: u16 = 8080;
/// A port dropped by iptables on every host: no answer at all.
pub const FILTERED_DROP: u16 = 8081;
/// A port rejected with ICMP port unreachable on [`REJECT_HOST`].
pub const FILTERED_ICMP: u16 = 3306;
pub const WEB_HOST_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 10);
pub const WEB_HOST_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10);
pub const REJECT_HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 11);
/// Up, but drops ICMP echo requests.
pub const ICMP_SILENT_HOST: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 9);
pub const DNS_SERVER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 53);
pub const DNS_SERVER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x53);
pub const SCANNER_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
pub const SCANNER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2);
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The record dnsmasq serves: `www.lab.sonde.test` A and AAAA.
pub const DNS_NAME: &str = "www.lab.sonde.test";

/// What a TCP SYN to a port should find, as nmap -sS would say it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortState {
    Open,
    Closed,
    Filtered,
}

/// The lab's hosts and what each should answer: the ground truth.
#[derive(Clone, Debug)]
pub struct GroundTruth {
    pub up: BTreeSet<IpAddr>,
    pub down: BTreeSet<IpAddr>,
}

impl GroundTruth {
    fn build() -> GroundTruth {
        let mut up = BTreeSet::new();
        let mut down = BTreeSet::new();
        for i in 10..20u8 {
            up.insert(IpAddr::V4(Ipv4Addr::new(198, 18, 0, i)));
        }
        for i in 1..=254u8 {
            let ip = IpAddr::V4(Ipv4Addr::new(198, 18, 1, i));
            if (200..210).contains(&i) {
                down.insert(ip)
            } else {
                up.insert(ip)
            };
        }
        for i in 1..=0x2fu16 {
            let ip = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i));
            if i > 0x20 && i != 0x53 {
                down.insert(ip)
            } else {
                up.insert(ip)
            };
        }
        up.insert(IpAddr::V6(DNS_SERVER_V6));
        GroundTruth { up, down }
    }

    pub fn tcp(&self, ip: IpAddr, port: u16) -> PortState {
        if !self.up.contains(&ip) || port == FILTERED_DROP {
            return PortState::Filtered;
        }
        if ip == IpAddr::V4(REJECT_HOST) && port == FILTERED_ICMP {
            return PortState::Filtered;
        }
        let web = ip == IpAddr::V4(WEB_HOST_V4) || ip == IpAddr::V6(WEB_HOST_V6);
        if OPEN_EVERYWHERE.contains(&port) || (web && port == OPEN_ON_WEB_HOST) {
            PortState::Open
        } else {
            PortState::Closed
        }
    }

    /// Whether the host answers an ICMP echo request.
    pub fn answers_ping(&self, ip: IpAddr) -> bool {
        self.up.contains(&ip) && ip != IpAddr::V4(ICMP_SILENT_HOST)
    }
}

static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);
const PREFIX: &str = "sdl";

pub struct Lab {
    pub scanner_ns: String,
    pub target_ns: String,
    pub truth: GroundTruth,
    stop: Arc<AtomicBool>,
    listener: Option<JoinHandle<()>>,
    dnsmasq: Option<Child>,
    /// Run directories of scans that name none (removed with the lab).
    runs: tempfile::TempDir,
    /// More scanner namespaces ([`Lab::add_scanner`]), torn down with the lab.
    extra: Vec<String>,
}

/// Run `ip` (or another tool) and fail loudly with its output.
fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {cmd}: {e} (the test command installs iproute2 and iptables)")
    });
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_stdin(cmd: &str, args: &[&str], input: &str) {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Move the calling thread into a named network namespace.
pub fn enter_netns(name: &str) {
    let f = File::open(format!("/var/run/netns/{name}"))
        .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
    // SAFETY: setns on a valid namespace fd affects only this thread's network namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns({name}): {}", std::io::Error::last_os_error());
}

/// Delete namespaces left by lab runs whose process no longer exists.
fn remove_stale_namespaces() {
    let Ok(entries) = std::fs::read_dir("/var/run/netns") else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let pid: u32 = rest
            .split('x')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if pid != 0 && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).status();
        }
    }
}

impl Lab {
    /// Build a new lab. Needs root (CAP_NET_ADMIN); fails loudly without it.
    // Building a lab creates namespaces and processes: not a `Default`.
    #[allow(clippy::new_without_default)]
    pub fn new() -> Lab {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            panic!(
                "lab tests need root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to build network namespaces: run the README's test command as root"
            );
        }
        remove_stale_namespaces();
        let n = NEXT_LAB.fetch_add(1, Ordering::SeqCst);
        let id = format!("{PREFIX}{}x{n}", std::process::id());
        let (s, t) = (format!("{id}s"), format!("{id}t"));
        run("ip", &["netns", "add", &s]);
        let mut lab = Lab {
            scanner_ns: s.clone(),
            target_ns: t.clone(),
            truth: GroundTruth::build(),
            runs: tempfile::tempdir().expect("a temporary directory for run directories"),
            stop: Arc::new(AtomicBool::new(false)),
            listener: None,
            dnsmasq: None,
            extra: Vec::new(),
        };
        // From here on, Drop tears down whatever was built.
        run("ip", &["netns", "add", &t]);
        run(
            "ip",
            &[
                "link", "add", "vs", "netns", &s, "type", "veth", "peer", "name", "vt", "netns", &t,
            ],
        );
        let mut scanner = String::from(
            "link set lo up\nlink set vs up\naddr add 198.18.0.2/24 dev vs\naddr add 2001:db8::2/64 dev vs nodad\n",
        );
        scanner.push_str("route add default via 198.18.0.1\nroute add default via 2001:db8::1\n");
        run_stdin("ip", &["-n", &s, "-batch", "-"], &scanner);
        let mut target = String::from(
            "link set lo up\nlink set vt up\naddr add 198.18.0.1/24 dev vt\naddr add 2001:db8::1/64 dev vt nodad\n",
        );
        for ip in &lab.truth.up {
            match ip {
                IpAddr::V4(a) if a.octets()[2] == 0 => {
                    target.push_str(&format!("addr add {a}/24 dev vt\n"))
                }
                IpAddr::V4(a) => target.push_str(&format!("addr add {a}/32 dev lo\n")),
                IpAddr::V6(a) => target.push_str(&format!("addr add {a}/128 dev lo nodad\n")),
            }
        }
        // Down hosts: nothing answers, not even an ICMP unreachable.
        target.push_str("route add blackhole 198.18.1.0/24\nroute add blackhole 2001:db8:1::/64\n");
        run_stdin("ip", &["-n", &t, "-batch", "-"], &target);
        let rules = format!(
            "*filter\n-A INPUT -p tcp --dport {FILTERED_DROP} -j DROP\n\
             -A INPUT -d {REJECT_HOST} -p tcp --dport {FILTERED_ICMP} -j REJECT --reject-with icmp-port-unreachable\n\
             -A INPUT -d {ICMP_SILENT_HOST} -p icmp --icmp-type echo-request -j DROP\nCOMMIT\n"
        );
        run_stdin("ip", &["netns", "exec", &t, "iptables-restore"], &rules);
        run_stdin(
            "ip",
            &["netns", "exec", &t, "ip6tables-restore"],
            &format!("*filter\n-A INPUT -p tcp --dport {FILTERED_DROP} -j DROP\nCOMMIT\n"),
        );
        lab.start_listeners();
        lab.start_dnsmasq();
        lab
    }

    fn start_listeners(&mut self) {
        let ns = self.target_ns.clone();
        let stop = self.stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        self.listener = Some(std::thread::spawn(move || {
            enter_netns(&ns);
            let mut addrs: Vec<SocketAddr> = OPEN_EVERYWHERE
                .iter()
                .map(|&p| SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), p))
                .collect();
            addrs.push(SocketAddr::new(IpAddr::V4(WEB_HOST_V4), OPEN_ON_WEB_HOST));
            addrs.push(SocketAddr::new(IpAddr::V6(WEB_HOST_V6), OPEN_ON_WEB_HOST));
            // [::] is dual-stack here (bindv6only is 0 in a new namespace).
            let listeners: Vec<TcpListener> = addrs
                .iter()
                .map(|a| {
                    let l = TcpListener::bind(a).unwrap_or_else(|e| panic!("listen on {a}: {e}"));
                    l.set_nonblocking(true).unwrap();
                    l
                })
                .collect();
            ready_tx.send(()).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let mut idle = true;
                for l in &listeners {
                    while let Ok((conn, _)) = l.accept() {
                        idle = false;
                        drop(conn);
                    }
                }
                if idle {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }));
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("listeners started");
    }

    fn start_dnsmasq(&mut self) {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.target_ns,
                "dnsmasq",
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--no-dhcp-interface=",
                "--bind-interfaces",
                "--pid-file=",
                "--user=root",
                "--group=root",
            ])
            .arg(format!("--listen-address={DNS_SERVER_V4}"))
            .arg(format!("--listen-address={DNS_SERVER_V6}"))
            .arg(format!(
                "--host-record={DNS_NAME},{WEB_HOST_V4},{WEB_HOST_V6}"
            ))
            .arg("--txt-record=lab.sonde.test,\"sonde test lab\"")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("cannot start dnsmasq (the test command installs dnsmasq-base)");
        self.dnsmasq = Some(child);
        // Ready when it answers.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self
                .in_scanner(|| {
                    dns_query_a(
                        IpAddr::V4(DNS_SERVER_V4),
                        DNS_NAME,
                        Duration::from_millis(200),
                    )
                })
                .is_ok()
            {
                return;
            }
            if let Some(status) = self.dnsmasq.as_mut().unwrap().try_wait().unwrap() {
                let mut err = String::new();
                use std::io::Read;
                let _ = self
                    .dnsmasq
                    .as_mut()
                    .unwrap()
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err);
                panic!("dnsmasq exited with {status}: {err}");
            }
        }
        panic!("dnsmasq did not answer within 10 s");
    }

    /// Another scanner, as a separate machine would be: its own namespace,
    /// its own veth into the target side and its own address,
    /// 198.18.(10+k).2/24 for the k-th (from 1), routed to the same
    /// targets. Returns (namespace, address).
    pub fn add_scanner(&mut self) -> (String, Ipv4Addr) {
        let k = self.extra.len() as u8 + 1;
        let ns = format!("{}{k}", self.scanner_ns);
        run("ip", &["netns", "add", &ns]);
        self.extra.push(ns.clone());
        let (vs, vt) = (format!("vs{k}"), format!("vt{k}"));
        run(
            "ip",
            &[
                "link",
                "add",
                &vs,
                "netns",
                &ns,
                "type",
                "veth",
                "peer",
                "name",
                &vt,
                "netns",
                &self.target_ns,
            ],
        );
        let net = 10 + k;
        run_stdin(
            "ip",
            &["-n", &ns, "-batch", "-"],
            &format!(
                "link set lo up\nlink set {vs} up\naddr add 198.18.{net}.2/24 dev {vs}\nroute add default via 198.18.{net}.1\n"
            ),
        );
        run_stdin(
            "ip",
            &["-n", &self.target_ns, "-batch", "-"],
            &format!("link set {vt} up\naddr add 198.18.{net}.1/24 dev {vt}\n"),
        );
        (ns, Ipv4Addr::new(198, 18, net, 2))
    }

    /// The sonde binary in namespace `ns`, from the crate's directory.
    pub fn sonde_in(&self, ns: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns])
            .arg(crate::sonde_bin())
            .current_dir(crate::crate_dir());
        c
    }

    /// Run `f` on a thread inside the scanner namespace.
    pub fn in_scanner<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let ns = self.scanner_ns.clone();
        std::thread::spawn(move || {
            enter_netns(&ns);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    }

    /// A command run inside the scanner namespace.
    pub fn scanner_command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.scanner_ns]).arg(program);
        c
    }

    /// Run the sonde binary in the scanner namespace, from the crate's
    /// directory: (exit code, stdout, stderr). A scan that names no run
    /// directory (`-o`) gets a new one in a temporary directory, not a
    /// timestamped one in the crate.
    pub fn sonde(&self, args: &[&str]) -> (i32, String, String) {
        let mut args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        if args.first().map(String::as_str) == Some("scan")
            && !args
                .iter()
                .any(|a| a == "-o" || a == "--output-dir" || a == "--resume")
        {
            static RUN: AtomicUsize = AtomicUsize::new(0);
            let n = RUN.fetch_add(1, Ordering::SeqCst);
            args.push("-o".into());
            args.push(
                self.runs
                    .path()
                    .join(format!("run-{n}"))
                    .display()
                    .to_string(),
            );
        }
        let out = self
            .scanner_command(crate::sonde_bin())
            .args(&args)
            .current_dir(crate::crate_dir())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The sonde binary as a child in the scanner namespace, from the
    /// crate's directory, stdout discarded and stderr piped: for scans a
    /// test signals or inspects while they run.
    pub fn sonde_command(&self) -> Command {
        let mut c = self.scanner_command(crate::sonde_bin());
        c.current_dir(crate::crate_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    /// Capture on `iface` in the target namespace into `path` until the
    /// returned capture is stopped: the proof of what reached the targets.
    pub fn capture_target_side(&self, iface: &str, path: &Path) -> TargetCapture {
        let child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.target_ns,
                "tshark",
                "-q",
                "-i",
                iface,
                "-w",
            ])
            .arg(path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tshark (the test command installs it)");
        // tshark creates the file once it captures; wait for that, not a guess.
        let started = Instant::now();
        while std::fs::metadata(path).map_or(0, |m| m.len()) == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "tshark did not start capturing"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        TargetCapture(child)
    }
}

/// A running target-side capture (`Lab::capture_target_side`).
pub struct TargetCapture(Child);

impl TargetCapture {
    /// Let the last packets land, then stop tshark so the file is complete.
    pub fn stop(mut self) {
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.listener.take() {
            let _ = h.join();
        }
        if let Some(mut c) = self.dnsmasq.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.extra.iter().chain([&self.scanner_ns, &self.target_ns]) {
            if let Err(e) = Command::new("ip").args(["netns", "del", ns]).status() {
                eprintln!("lab teardown: cannot delete namespace {ns}: {e}");
            }
        }
    }
}

/// Ask `server` for the A record of `name` over UDP; returns the addresses.
pub fn dns_query_a(server: IpAddr, name: &str, timeout: Duration) -> Result<Vec<Ipv4Addr>, String> {
    use simple_dns::{CLASS, Name, Packet, QTYPE, Question, TYPE, rdata::RData};
    let mut q = Packet::new_query(0x5d5d);
    q.questions.push(Question::new(
        Name::new_unchecked(name),
        QTYPE::TYPE(TYPE::A),
        CLASS::IN.into(),
        false,
    ));
    let bytes = q.build_bytes_vec().map_err(|e| e.to_string())?;
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0".parse().unwrap()
    } else {
        "[::]:0".parse().unwrap()
    };
    let sock = std::net::UdpSocket::bind(bind).map_err(|e| e.to_string())?;
    sock.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    sock.send_to(&bytes, (server, 53))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    let n = sock.recv(&mut buf).map_err(|e| e.to_string())?;
    let reply = Packet::parse(&buf[..n]).map_err(|e| e.to_string())?;
    if reply.id() != 0x5d5d {
        return Err("reply id does not match".into());
    }
    Ok(reply
        .answers
        .iter()
        .filter_map(|r| match &r.rdata {
            RData::A(a) => Some(Ipv4Addr::from(a.address)),
            _ => None,
        })
        .collect())
}

/// A copy of `scopes/lab.toml` in `dir` with a probe budget of
/// `max_probes`: the scope a budget test runs under.
pub fn lab_scope_with_budget(dir: &Path, max_probes: u64) -> std::path::PathBuf {
    let scope = dir.join("budget.toml");
    let text = std::fs::read_to_string(crate::crate_dir().join("scopes/lab.toml"))
        .unwrap()
        .replace(
            "max_rate = 2000000",
            &format!("max_rate = 2000000\nmax_probes = {max_probes}"),
        );
    std::fs::write(&scope, text).unwrap();
    scope
}
