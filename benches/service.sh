#!/usr/bin/env bash
# Service identification benchmark: `sonde scan -sV` against `nmap -sV`
# (Debian's nmap) on the same lab services, in the same run. Needs root;
# sends only inside the two namespaces it creates and removes.
#
#   sudo bash benches/service.sh
#
# The lab: namespace sonde-vs (the scanner, 198.18.0.2/24) and sonde-vt
# (the target side, 198.18.0.1/24) joined by a veth. On 198.18.1.20 in
# sonde-vt: OpenSSH's sshd on 22, nginx on 80 and with TLS (a self-signed
# certificate made here) on 443, vsftpd on 21, dnsmasq on 53. Expected
# products and versions are the installed packages' (dpkg-query). Printed:
# what each tool named per port (right, wrong or nothing), the whole run's
# wall time of each and their ratio (TURNS runs each, alternated; the
# median counts), and sonde's certificate details against what
# `openssl s_client` and `openssl x509` print.
#
# Settings: TURNS (default 3).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "benches/service.sh needs root (network namespaces)" >&2; exit 1; }
TURNS=${TURNS:-3}
S=sonde-vs
T=sonde-vt
HOST=198.18.1.20
PORTS=21,22,53,80,443

need=()
command -v nmap >/dev/null || need+=(nmap)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -x /usr/sbin/vsftpd ] || need+=(vsftpd)
command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
cargo build --release --quiet
sonde=$PWD/target/release/sonde
work=$(mktemp -d)

teardown() {
  ip netns pids $T 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del $S 2>/dev/null || true
  ip netns del $T 2>/dev/null || true
  rm -rf "$work"
}
trap teardown EXIT
ip netns del $S 2>/dev/null || true
ip netns del $T 2>/dev/null || true

ip netns add $S
ip netns add $T
ip link add vs netns $S type veth peer name vt netns $T
ip -n $S addr add 198.18.0.2/24 dev vs
ip -n $T addr add 198.18.0.1/24 dev vt
ip -n $T addr add $HOST/32 dev lo
for ns in $S $T; do ip -n $ns link set lo up; done
ip -n $S link set vs up
ip -n $T link set vt up
ip -n $S route add default via 198.18.0.1

# The services.
mkdir -p /run/sshd /var/run/vsftpd/empty "$work/nginx-temp"
ssh-keygen -q -t ed25519 -N "" -f "$work/hostkey"
ip netns exec $T /usr/sbin/sshd -f /dev/null -h "$work/hostkey" -o ListenAddress=$HOST:22 -o PidFile=none
openssl req -x509 -newkey rsa:2048 -nodes -days 20 -keyout "$work/key.pem" -out "$work/cert.pem" \
  -subj "/CN=bench.lab.sonde.test/O=Sonde Lab" -addext "subjectAltName=DNS:bench.lab.sonde.test" 2>/dev/null
cat > "$work/nginx.conf" <<CONF
daemon on;
pid $work/nginx.pid;
error_log $work/nginx.log;
events {}
http {
  access_log off;
  client_body_temp_path $work/nginx-temp; proxy_temp_path $work/nginx-temp;
  fastcgi_temp_path $work/nginx-temp; uwsgi_temp_path $work/nginx-temp; scgi_temp_path $work/nginx-temp;
  default_type text/html;
  server { listen $HOST:80; location / { return 200 "<html><head><title>bench</title></head></html>"; } }
  server { listen $HOST:443 ssl; ssl_certificate $work/cert.pem; ssl_certificate_key $work/key.pem;
    location / { return 200 "<html><head><title>bench over TLS</title></head></html>"; } }
}
CONF
ip netns exec $T /usr/sbin/nginx -c "$work/nginx.conf"
printf 'listen=YES\nlisten_ipv6=NO\nlisten_address=%s\nlisten_port=21\nbackground=YES\nanonymous_enable=NO\nlocal_enable=YES\nwrite_enable=NO\nsecure_chroot_dir=/var/run/vsftpd/empty\nseccomp_sandbox=NO\n' \
  $HOST > "$work/vsftpd.conf"
ip netns exec $T /usr/sbin/vsftpd "$work/vsftpd.conf"
ip netns exec $T dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
  --listen-address=$HOST --pid-file="$work/dnsmasq.pid" --user=root --group=root \
  --host-record=www.bench.lab,$HOST
sleep 1

cat > "$work/scope.toml" <<SCOPE
probes = ["syn", "dns", "service"]
[engagement]
id = "BENCH-SERVICES"
client = "sonde benchmark"
authorized_by = "sonde maintainers"
contact = "maintainers@sonde.invalid"
not_before = 2024-01-01T00:00:00Z
not_after = 2099-12-31T23:59:59Z
[limits]
max_rate = 100000
[[allow]]
name = "bench"
targets = ["$HOST"]
SCOPE

upstream() { dpkg-query -W -f='${Version}' "$1" | sed -E 's/^[0-9]+://; s/-[^-]*$//'; }
nginx_pkg=$(dpkg-query -S /usr/sbin/nginx | cut -d: -f1 | cut -d, -f1)
expected="21 vsftpd $(upstream vsftpd)
22 OpenSSH $(upstream openssh-server)
53 dnsmasq $(upstream dnsmasq-base)
80 nginx $(upstream "$nginx_pkg")
443 nginx $(upstream "$nginx_pkg")"

# (port product version) per line from an nmap XML file.
named() {
  /usr/bin/python3 - "$1" <<'PY'
import sys, xml.etree.ElementTree as ET
for port in ET.parse(sys.argv[1]).iter("port"):
    s = port.find("service")
    st = port.find("state")
    if st is None or st.get("state") != "open" or s is None:
        continue
    print(port.get("portid"), s.get("product", "-"), s.get("version", "-"))
PY
}

now() { date +%s.%N; }
declare -a t_nmap t_sonde
for turn in $(seq 1 "$TURNS"); do
  for tool in nmap sonde; do
    rm -rf "$work/run" "$work/$tool.xml"
    start=$(now)
    if [ $tool = nmap ]; then
      ip netns exec $S nmap -sV -sS -sU -Pn -n -p T:21,22,80,443,U:53 -oX "$work/nmap.xml" $HOST >/dev/null
      el=$(echo "$(now) - $start" | bc)
      t_nmap+=("$el")
    else
      ip netns exec $S "$sonde" scan --scope "$work/scope.toml" $HOST -p 21,22,80,443 --probe dns -sV \
        -o "$work/run" -oX "$work/sonde.xml" >/dev/null
      el=$(echo "$(now) - $start" | bc)
      t_sonde+=("$el")
    fi
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m_nmap=$(median "${t_nmap[@]}")
m_sonde=$(median "${t_sonde[@]}")

echo "== products and versions (expected from dpkg-query) =="
printf '%-6s %-30s %-30s %-30s\n' port expected nmap sonde
score() { # tool file -> right wrong
  local right=0 wrong=0
  while read -r port product version; do
    got=$(named "$2" | awk -v p="$port" '$1==p {print $2" "$3}')
    if [ "$got" = "$product $version" ]; then right=$((right+1)); elif [ -n "$got" ] && [ "$got" != "- -" ]; then wrong=$((wrong+1)); fi
  done <<< "$expected"
  echo "$right $wrong"
}
while read -r port product version; do
  n=$(named "$work/nmap.xml" | awk -v p="$port" '$1==p {print $2" "$3}')
  s=$(named "$work/sonde.xml" | awk -v p="$port" '$1==p {print $2" "$3}')
  printf '%-6s %-30s %-30s %-30s\n' "$port" "$product $version" "${n:-(none)}" "${s:-(none)}"
done <<< "$expected"
read -r n_right n_wrong <<< "$(score nmap "$work/nmap.xml")"
read -r s_right s_wrong <<< "$(score sonde "$work/sonde.xml")"
echo "nmap -sV:  $n_right of 5 right, $n_wrong wrong"
echo "sonde -sV: $s_right of 5 right, $s_wrong wrong"

echo "== whole-run time, median of $TURNS (s) =="
echo "nmap -sV -sS -sU: $m_nmap   (${t_nmap[*]})"
echo "sonde scan -sV:   $m_sonde   (${t_sonde[*]})"
echo "sonde / nmap: $(echo "scale=3; $m_sonde / $m_nmap" | bc)"

echo "== the certificate on 443: sonde's report against openssl =="
pem=$(ip netns exec $S timeout 10 openssl s_client -connect $HOST:443 -servername bench.lab.sonde.test </dev/null 2>/dev/null \
  | sed -n '/BEGIN CERTIFICATE/,/END CERTIFICATE/p')
o_fp=$(echo "$pem" | openssl x509 -noout -fingerprint -sha256 | cut -d= -f2 | tr -d : | tr 'A-F' 'a-f')
o_end=$(echo "$pem" | openssl x509 -noout -enddate | cut -d= -f2)
o_bits=$(echo "$pem" | openssl x509 -noout -text | sed -n 's/.*Public-Key: (\([0-9]*\) bit).*/\1/p')
/usr/bin/python3 - "$work/run/report.json" "$o_fp" "$o_end" "$o_bits" <<'PY'
import json, sys, datetime
r = json.load(open(sys.argv[1]))
svc = [s for h in r["hosts"] for s in h.get("services", []) if s["port"] == 443][0]
c = svc["tls"]["chain"][0]
end = datetime.datetime.strptime(sys.argv[3], "%b %d %H:%M:%S %Y %Z").strftime("%Y-%m-%dT%H:%M:%SZ")
rows = [("sha256", c["sha256"], sys.argv[2]), ("not_after", c["not_after"], end),
        ("key bits", str(c["key_bits"]), sys.argv[4]), ("subject", c["subject"], "(openssl: CN/O as made)"),
        ("self-signed", str(c["self_signed"]), "True"), ("TLS", svc["tls"]["version"], "")]
for name, sonde, ossl in rows:
    mark = "" if not ossl or ossl.startswith("(") else ("  same" if sonde == ossl else "  DIFFERENT")
    print(f"{name:12} sonde {sonde:66} openssl {ossl}{mark}")
PY
