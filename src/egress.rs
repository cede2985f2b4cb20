//! Egress allow-lists: the destinations a sandbox may reach, the proxy configuration that
//! enforces them, the probes that prove them at apply, and the proxy's log read back as
//! `logs/egress.jsonl`.
//!
//! A sandbox with `egress` sits on an internal podman network with no route out. Its one
//! way out is a Squid proxy for the session, on that network and on podman's default one,
//! which lets `CONNECT` and plain HTTP through only to the listed `host:port` pairs. This
//! module is pure: it parses entries, writes the proxy's configuration and the probe
//! script, and reads their output; apply runs them.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The port the proxy listens on, inside its own network namespace.
pub const PROXY_PORT: u16 = 3128;

/// One allowed destination: `host:port`, `*.domain:port` (the domain and every name under
/// it), `IP:port` or `CIDR:port` (IPv6 in brackets).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Destination {
    pub host: Host,
    pub port: u16,
}

/// The host part of a [`Destination`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    /// A DNS name, lowercase, without a trailing dot; `subdomains` for `*.name`, which
    /// matches `name` itself too.
    Name { name: String, subdomains: bool },
    /// An IP literal: only requests naming this address match, never a name resolving to it.
    Ip(IpAddr),
    /// A network of IP literals.
    Cidr { network: IpAddr, prefix: u8 },
}

impl FromStr for Destination {
    type Err = String;

    fn from_str(text: &str) -> Result<Destination, String> {
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("`{text}`: `[` without a closing `]`"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| format!("`{text}` has no port: write `[{host}]:443`"))?;
            (host, port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or_else(|| format!("`{text}` has no port: write `{text}:443`"))?;
            if host.contains(':') {
                return Err(format!(
                    "`{text}`: an IPv6 address goes in brackets, as `[{host}]:{port}`"
                ));
            }
            (host, port)
        };
        let port: u16 = match port.parse() {
            Ok(0) | Err(_) => {
                return Err(format!(
                    "`{text}`: the port must be a number from 1 to 65535"
                ));
            }
            Ok(port) => port,
        };
        let host = parse_host(host).map_err(|why| format!("`{text}`: {why}"))?;
        Ok(Destination { host, port })
    }
}

fn parse_host(host: &str) -> Result<Host, String> {
    if host.is_empty() {
        return Err("no host before the port".into());
    }
    if let Some((address, prefix)) = host.split_once('/') {
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("`{address}` is not an IP address (a CIDR is `10.0.0.0/8`)"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("`/{prefix}` is not a prefix length from 0 to {max}"))?;
        let network = mask(address, prefix);
        if network != address {
            return Err(format!(
                "`{host}` has host bits set: the network is `{network}/{prefix}`"
            ));
        }
        return Ok(Host::Cidr { network, prefix });
    }
    if let Ok(address) = host.parse::<IpAddr>() {
        return Ok(Host::Ip(address));
    }
    let (name, subdomains) = match host.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (host, false),
    };
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    if name.contains('*') {
        return Err("a wildcard is only allowed as a leading `*.`".into());
    }
    if name.len() > 253 || name.is_empty() {
        return Err("not a host name".into());
    }
    for label in name.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(format!(
                "`{label}` is not a valid label of a host name (letters, digits and `-`)"
            ));
        }
    }
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err("not an IP address nor a host name".into());
    }
    Ok(Host::Name { name, subdomains })
}

fn mask(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((bits & mask).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6((bits & mask).into())
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Name { name, subdomains } => {
                if *subdomains {
                    f.write_str("*.")?;
                }
                f.write_str(name)
            }
            Host::Ip(IpAddr::V6(v6)) => write!(f, "[{v6}]"),
            Host::Ip(address) => write!(f, "{address}"),
            Host::Cidr {
                network: IpAddr::V6(v6),
                prefix,
            } => write!(f, "[{v6}/{prefix}]"),
            Host::Cidr { network, prefix } => write!(f, "{network}/{prefix}"),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Serialize for Destination {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Destination {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for Destination {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Destination".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "`host:port`, `*.domain:port` (the domain and every name under it), `IP:port` or `CIDR:port`; IPv6 in brackets.",
        })
    }
}

impl Destination {
    /// Whether a request for `host` (a name or an IP literal, as the client wrote it) on
    /// `port` is allowed by this entry.
    pub fn allows(&self, host: &str, port: u16) -> bool {
        if port != self.port {
            return false;
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match (&self.host, host.parse::<IpAddr>()) {
            (Host::Name { name, subdomains }, Err(_)) => {
                let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
                host == *name || (*subdomains && host.ends_with(&format!(".{name}")))
            }
            (Host::Ip(address), Ok(requested)) => *address == requested,
            (Host::Cidr { network, prefix }, Ok(requested)) => {
                requested.is_ipv4() == network.is_ipv4() && mask(requested, *prefix) == *network
            }
            _ => false,
        }
    }

    /// The destination the reachability probe asks for: the name itself (the apex for
    /// `*.name`), the address, or a CIDR's network address.
    pub fn probe_target(&self) -> String {
        let host = match &self.host {
            Host::Name { name, .. } => name.clone(),
            Host::Ip(IpAddr::V6(v6)) => format!("[{v6}]"),
            Host::Ip(address) => address.to_string(),
            Host::Cidr {
                network: IpAddr::V6(v6),
                ..
            } => format!("[{v6}]"),
            Host::Cidr { network, .. } => network.to_string(),
        };
        format!("{host}:{}", self.port)
    }

    /// The IP literal of an `IP:port` entry, which the bypass probe must fail to reach
    /// directly.
    pub fn literal(&self) -> Option<IpAddr> {
        match self.host {
            Host::Ip(address) => Some(address),
            _ => None,
        }
    }
}

/// The entry the probes prove reachable: the first name or address (a CIDR only when the
/// list has nothing else).
pub fn probed(destinations: &[Destination]) -> Option<&Destination> {
    destinations
        .iter()
        .find(|d| !matches!(d.host, Host::Cidr { .. }))
        .or_else(|| destinations.first())
}

/// A destination no entry allows, for the refusal probe: a name under `.invalid` on port
/// 443, or on the first port no entry lists when a wildcard covers that name.
pub fn unlisted(destinations: &[Destination]) -> String {
    let host = "unlisted.outrig-probe.invalid";
    let port = std::iter::once(443)
        .chain(1..=u16::MAX)
        .find(|port| !destinations.iter().any(|d| d.allows(host, *port)))
        .unwrap_or(443);
    format!("{host}:{port}")
}

/// Squid's configuration for `destinations`: `CONNECT` and plain HTTP to the listed pairs,
/// everything else refused; names matched as the client wrote them (no DNS for a refused
/// request), IP literals matched only when the request names an address; one log line per
/// request on stdout.
pub fn squid_config(destinations: &[Destination]) -> String {
    let mut lines: Vec<String> = [
        format!("http_port {PROXY_PORT}"),
        "pid_filename none".into(),
        "pinger_enable off".into(),
        "cache deny all".into(),
        "cache_mem 0 MB".into(),
        "via off".into(),
        "forwarded_for delete".into(),
        "httpd_suppress_version_string on".into(),
        "connect_timeout 10 seconds".into(),
        "shutdown_lifetime 0 seconds".into(),
        "logfile_rotate 0".into(),
        "coredump_dir /tmp".into(),
        "cache_log stdio:/dev/stderr".into(),
        format!("logformat outrig {LOG_FORMAT}"),
        "access_log stdio:/dev/stdout outrig".into(),
        r"acl outrig_ip_literal dstdom_regex -n ^[0-9.]+$ ^\[".into(),
    ]
    .into();
    for (index, destination) in destinations.iter().enumerate() {
        lines.push(format!("acl outrig_port_{index} port {}", destination.port));
        match &destination.host {
            Host::Name { name, subdomains } => {
                let domain = if *subdomains {
                    format!(".{name}")
                } else {
                    name.clone()
                };
                lines.push(format!("acl outrig_host_{index} dstdomain -n {domain}"));
                lines.push(format!(
                    "http_access allow !outrig_ip_literal outrig_host_{index} outrig_port_{index}"
                ));
            }
            Host::Ip(address) => {
                lines.push(format!("acl outrig_host_{index} dst {address}"));
                lines.push(format!(
                    "http_access allow outrig_ip_literal outrig_host_{index} outrig_port_{index}"
                ));
            }
            Host::Cidr { network, prefix } => {
                lines.push(format!("acl outrig_host_{index} dst {network}/{prefix}"));
                lines.push(format!(
                    "http_access allow outrig_ip_literal outrig_host_{index} outrig_port_{index}"
                ));
            }
        }
    }
    lines.push("http_access deny all".into());
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

/// Squid's log line: seconds.millis, method, URL (`host:port` for `CONNECT`), status sent
/// to the client, Squid's result code, bytes from the client, bytes to the client.
const LOG_FORMAT: &str = "%ts.%03tu %rm %ru %>Hs %Ss %>st %<st";

/// The proxy container's first process: write the configuration, run Squid in the
/// foreground, and end it at once when stopped (it keeps no state, and its graceful
/// shutdown takes over a second; each log line is written as its request ends).
pub const PROXY_SCRIPT: &str = r#"printf '%s' "$OUTRIG_PROXY_CONFIG" > /tmp/outrig-squid.conf && squid -N -f /tmp/outrig-squid.conf & trap 'kill -KILL $! 2>/dev/null; wait; exit 0' TERM; wait"#;

/// Whether the proxy let a connection through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allowed,
    Refused,
}

/// One request the proxy saw, as `logs/egress.jsonl` holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub method: String,
    /// `host:port` as the client asked for it.
    pub destination: String,
    pub decision: Decision,
    /// The HTTP status the proxy answered with.
    pub status: u16,
    /// Bytes the sandbox sent, and received.
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// One line of the proxy's log as an [`Event`]; `None` for anything else it prints.
pub fn parse_log_line(line: &str) -> Option<Event> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [time, method, url, status, result, sent, received] = fields[..] else {
        return None;
    };
    let (seconds, millis) = time.split_once('.')?;
    let timestamp = jiff::Timestamp::new(
        seconds.parse().ok()?,
        millis.parse::<i32>().ok()? * 1_000_000,
    )
    .ok()?;
    let destination = if method == "CONNECT" {
        url.to_string()
    } else {
        url_destination(url)?
    };
    let status: u16 = status.parse().ok()?;
    Some(Event {
        time: format!("{timestamp:.3}"),
        method: method.to_string(),
        destination,
        decision: if result == "TCP_DENIED" || (status == 403 && result.starts_with("NONE")) {
            Decision::Refused
        } else {
            Decision::Allowed
        },
        status,
        bytes_sent: sent.parse().ok()?,
        bytes_received: received.parse().ok()?,
    })
}

/// `host:port` of a plain-HTTP URL.
fn url_destination(url: &str) -> Option<String> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let has_port = match authority.rfind(':') {
        Some(colon) => !authority[colon..].contains(']'),
        None => false,
    };
    Some(if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    })
}

/// The probe run in the sandbox's network namespace: wait for the proxy, then ask it for
/// the listed and the unlisted destination, then try to bypass it. Arguments: proxy
/// address, listed `host:port`, unlisted `host:port`, then `host port` pairs to reach
/// directly; a name to resolve comes last as `dns NAME`. One line per probe on stdout.
pub const PROBE_SCRIPT: &str = r#"proxy=$1 listed=$2 unlisted=$3; shift 3
i=0; until (exec 3<>/dev/tcp/$proxy/3128) 2>/dev/null; do i=$((i+1)); [ $i -ge 150 ] && { echo "proxy unreachable"; exit 0; }; sleep 0.1; done
ask() { exec 3<>/dev/tcp/$proxy/3128 || { echo "$1 noproxy"; return; }; printf 'CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n' "$2" "$2" >&3; status=none; error=-; read -r -t 15 _ status _ <&3; while read -r -t 5 header value _ <&3; do case "$header" in X-Squid-Error:) error=$value;; $'\r'|'') break;; esac; done; exec 3<&-; echo "$1 $status $error"; }
ask listed "$listed"; ask unlisted "$unlisted"
while [ $# -ge 2 ]; do
  if [ "$1" = dns ]; then if timeout 5 getent hosts "$2" >/dev/null 2>&1; then echo "dns resolved $2"; else echo "dns failed $2"; fi
  elif timeout 3 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; then echo "direct connected $1:$2"; else echo "direct failed $1:$2"; fi
  shift 2
done"#;

/// What one probe found, and whether that is what an enforced allow-list gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct Probe {
    pub kind: ProbeKind,
    /// What was asked for: `host:port`, or a name for DNS.
    pub target: String,
    /// What happened, in the proxy's or the network's words.
    pub observed: String,
    /// Whether it is what the allow-list promises.
    pub passed: bool,
}

/// The probes apply runs before any server starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProbeKind {
    /// A listed destination is reached through the proxy.
    Listed,
    /// An unlisted one is refused by the proxy.
    Unlisted,
    /// A connection that bypasses the proxy fails.
    Direct,
    /// A name does not resolve inside the sandbox (no DNS to anything).
    Dns,
}

impl ProbeKind {
    /// What the probe proves, in words.
    pub fn promise(self) -> &'static str {
        match self {
            ProbeKind::Listed => "a listed destination must be reached through the proxy",
            ProbeKind::Unlisted => "an unlisted destination must be refused by the proxy",
            ProbeKind::Direct => "a connection that bypasses the proxy must fail",
            ProbeKind::Dns => "names must not resolve inside the sandbox",
        }
    }
}

/// The probe's output read as results. `reach_required`: the listed destination must be
/// connected, not only let through (false when only CIDRs are listed). A probe missing
/// from the output fails.
pub fn read_probes(output: &str, listed: &str, unlisted: &str, reach_required: bool) -> Vec<Probe> {
    let mut probes = Vec::new();
    let mut saw_listed = false;
    let mut saw_unlisted = false;
    for line in output.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[..] {
            ["proxy", "unreachable"] => probes.push(Probe {
                kind: ProbeKind::Listed,
                target: listed.to_string(),
                observed: "the proxy did not answer within 15 s".into(),
                passed: false,
            }),
            ["listed", status, error] => {
                saw_listed = true;
                let passed = if reach_required {
                    status == "200"
                } else {
                    error != "ERR_ACCESS_DENIED" && status != "403"
                };
                probes.push(Probe {
                    kind: ProbeKind::Listed,
                    target: listed.to_string(),
                    observed: proxy_answer(status, error),
                    passed,
                });
            }
            ["unlisted", status, error] => {
                saw_unlisted = true;
                probes.push(Probe {
                    kind: ProbeKind::Unlisted,
                    target: unlisted.to_string(),
                    observed: proxy_answer(status, error),
                    passed: status == "403",
                });
            }
            ["direct", result, target] => probes.push(Probe {
                kind: ProbeKind::Direct,
                target: target.to_string(),
                observed: if result == "connected" {
                    "connected without the proxy".into()
                } else {
                    "no route".into()
                },
                passed: result == "failed",
            }),
            ["dns", result, name] => probes.push(Probe {
                kind: ProbeKind::Dns,
                target: name.to_string(),
                observed: if result == "resolved" {
                    "resolved".into()
                } else {
                    "did not resolve".into()
                },
                passed: result == "failed",
            }),
            _ => {}
        }
    }
    let mut missing = |kind: ProbeKind, target: &str, saw: bool| {
        if !saw && !probes.iter().any(|p| p.kind == kind) {
            probes.push(Probe {
                kind,
                target: target.to_string(),
                observed: "the probe gave no answer".into(),
                passed: false,
            });
        }
    };
    missing(ProbeKind::Listed, listed, saw_listed);
    missing(ProbeKind::Unlisted, unlisted, saw_unlisted);
    if !probes.iter().any(|p| p.kind == ProbeKind::Direct) {
        probes.push(Probe {
            kind: ProbeKind::Direct,
            target: "-".into(),
            observed: "the probe gave no answer".into(),
            passed: false,
        });
    }
    probes
}

fn proxy_answer(status: &str, error: &str) -> String {
    match (status, error) {
        ("200", _) => "200 Connection established".into(),
        ("none", _) => "no answer from the proxy".into(),
        (status, "-") => format!("HTTP {status}"),
        (status, error) => format!("HTTP {status} ({error})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Destination {
        text.parse().unwrap()
    }

    #[test]
    fn entries_parse_and_print_back() {
        for text in [
            "api.github.com:443",
            "*.pypi.org:443",
            "10.88.0.5:8080",
            "10.0.0.0/8:443",
            "[2001:db8::1]:443",
            "[2001:db8::/32]:443",
        ] {
            assert_eq!(parse(text).to_string(), text);
        }
        assert_eq!(
            parse("API.GitHub.com.:443").to_string(),
            "api.github.com:443"
        );
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for (text, says) in [
            ("api.github.com", "has no port"),
            ("api.github.com:0", "from 1 to 65535"),
            ("api.github.com:https", "from 1 to 65535"),
            ("*:443", "leading `*.`"),
            ("a.*.com:443", "leading `*.`"),
            ("10.0.0.1/8:443", "host bits set"),
            ("10.0.0.0/33:443", "prefix length"),
            ("2001:db8::1:443", "in brackets"),
            (":443", "no host"),
            ("-bad.com:443", "not a valid label"),
            ("999.1.1.1:443", "not an IP address nor a host name"),
        ] {
            let error = text.parse::<Destination>().unwrap_err();
            assert!(error.contains(says), "{text}: {error}");
        }
    }

    #[test]
    fn a_wildcard_matches_its_apex_and_names_under_it_only() {
        let entry = parse("*.pypi.org:443");
        assert!(entry.allows("pypi.org", 443));
        assert!(entry.allows("files.pypi.org", 443));
        assert!(entry.allows("FILES.pypi.org.", 443));
        assert!(!entry.allows("evilpypi.org", 443));
        assert!(!entry.allows("pypi.org.evil.com", 443));
        assert!(!entry.allows("pypi.org", 80));
        let exact = parse("api.github.com:443");
        assert!(!exact.allows("x.api.github.com", 443));
    }

    #[test]
    fn addresses_match_only_literals() {
        let entry = parse("10.88.0.5:8080");
        assert!(entry.allows("10.88.0.5", 8080));
        assert!(!entry.allows("10.88.0.6", 8080));
        let net = parse("10.88.0.0/16:8080");
        assert!(net.allows("10.88.3.4", 8080));
        assert!(!net.allows("10.89.0.1", 8080));
        assert!(!net.allows("some.name", 8080));
        let six = parse("[2001:db8::/32]:443");
        assert!(six.allows("[2001:db8::9]", 443));
    }

    #[test]
    fn the_unlisted_probe_is_never_listed() {
        let entries = vec![parse("*.invalid:443"), parse("*.outrig-probe.invalid:443")];
        let unlisted = unlisted(&entries);
        let (host, port) = unlisted.rsplit_once(':').unwrap();
        let port: u16 = port.parse().unwrap();
        assert!(!entries.iter().any(|d| d.allows(host, port)), "{unlisted}");
        assert_eq!(
            self::unlisted(&[parse("api.github.com:443")]),
            "unlisted.outrig-probe.invalid:443"
        );
    }

    #[test]
    fn squid_allows_each_pair_and_denies_the_rest() {
        let config = squid_config(&[
            parse("*.pypi.org:443"),
            parse("api.github.com:443"),
            parse("10.88.0.5:8080"),
        ]);
        assert!(config.contains("acl outrig_host_0 dstdomain -n .pypi.org"));
        assert!(config.contains("acl outrig_host_1 dstdomain -n api.github.com"));
        assert!(
            config.contains("http_access allow !outrig_ip_literal outrig_host_1 outrig_port_1")
        );
        assert!(config.contains("acl outrig_host_2 dst 10.88.0.5"));
        assert!(config.contains("http_access allow outrig_ip_literal outrig_host_2 outrig_port_2"));
        assert!(config.trim_end().ends_with("http_access deny all"));
    }

    #[test]
    fn log_lines_become_events() {
        let event =
            parse_log_line("1796186436.276 CONNECT 10.88.0.11:8080 200 TCP_TUNNEL 59 39").unwrap();
        assert_eq!(event.destination, "10.88.0.11:8080");
        assert_eq!(event.decision, Decision::Allowed);
        assert_eq!((event.bytes_sent, event.bytes_received), (59, 39));
        assert_eq!(event.time, "2026-12-02T04:40:36.276Z");
        let refused =
            parse_log_line("1796186436.280 CONNECT evil.com:443 403 TCP_DENIED 53 3444").unwrap();
        assert_eq!(refused.decision, Decision::Refused);
        let plain = parse_log_line("1796186436.282 GET http://10.88.0.11/x?y 200 TCP_MISS 82 1119")
            .unwrap();
        assert_eq!(plain.destination, "10.88.0.11:80");
        assert!(parse_log_line("2026/12/02 04:40:17| Accepting HTTP Socket").is_none());
    }

    #[test]
    fn probe_output_is_read_strictly() {
        let good = "listed 200 -\nunlisted 403 ERR_ACCESS_DENIED\ndirect failed 10.88.0.5:8080\ndns failed api.github.com\n";
        let probes = read_probes(good, "a:1", "b:2", true);
        assert!(probes.iter().all(|p| p.passed), "{probes:?}");
        assert_eq!(probes.len(), 4);
        let bypass =
            "listed 200 -\nunlisted 403 ERR_ACCESS_DENIED\ndirect connected 10.88.0.5:8080\n";
        let probes = read_probes(bypass, "a:1", "b:2", true);
        assert!(
            probes
                .iter()
                .any(|p| p.kind == ProbeKind::Direct && !p.passed)
        );
        let open = "listed 200 -\nunlisted 200 -\ndirect failed x:1\n";
        assert!(
            read_probes(open, "a:1", "b:2", true)
                .iter()
                .any(|p| p.kind == ProbeKind::Unlisted && !p.passed)
        );
        let unreachable =
            "listed 503 ERR_CONNECT_FAIL\nunlisted 403 ERR_ACCESS_DENIED\ndirect failed x:1\n";
        assert!(!read_probes(unreachable, "a:1", "b:2", true)[0].passed);
        assert!(read_probes(unreachable, "a:1", "b:2", false)[0].passed);
        let nothing = read_probes("", "a:1", "b:2", true);
        assert_eq!(nothing.len(), 3);
        assert!(nothing.iter().all(|p| !p.passed));
    }
}
