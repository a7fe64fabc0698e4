//! Request safety: who may talk to the server (loopback, or the start-up token), and which
//! files a request may name (nothing outside the results directory).
use anyhow::{bail, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Name of the cookie that carries the access token after a first `?token=` visit.
pub const TOKEN_COOKIE: &str = "lab_token";

/// Uploads larger than this are refused before they are read.
pub const MAX_UPLOAD_BYTES: u64 = 20 * 1024 * 1024;

/// Any other request body (a label, the launch form) larger than this is refused before it is
/// read. The annotation page checks its form against it before sending.
pub const MAX_FORM_BYTES: u64 = 1024 * 1024;

/// `bytes` for a page: whole megabytes when it is a whole number of them.
pub fn megabytes(bytes: u64) -> String {
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if mb.fract() == 0.0 {
        format!("{mb:.0} MB")
    } else {
        format!("{mb:.1} MB")
    }
}

/// Whether binding `addr` keeps the server private to this machine.
pub fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// A fresh unguessable token: 32 hex digits from the thread's CSPRNG (seeded by the OS).
pub fn new_token() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compare in time independent of where the first difference is.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Whether a request carries `expected` as `?token=` or in the token cookie.
pub fn token_ok(expected: &str, query_token: Option<&str>, cookie_header: Option<&str>) -> bool {
    if query_token.is_some_and(|t| same_secret(t, expected)) {
        return true;
    }
    cookie_header.is_some_and(|header| {
        header.split(';').any(|pair| {
            pair.trim()
                .split_once('=')
                .is_some_and(|(k, v)| k == TOKEN_COOKIE && same_secret(v, expected))
        })
    })
}

/// Whether a state-changing request comes from our own pages: a browser names the page's
/// origin in `Origin`, and a form on another site (cross-site request forgery) names that
/// site. Requests without `Origin` (curl, old browsers) are let through.
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    host.is_some_and(|h| h.eq_ignore_ascii_case(origin_host))
}

/// Whether a request to a loopback-bound server names this machine in `Host`. A page on
/// another site can make a browser resolve its own name to 127.0.0.1 (DNS rebinding) and then
/// read and post as if it were ours; its requests still carry that site's name in `Host`.
/// Requests without `Host` (HTTP/1.0 tools) are let through: browsers always send it.
pub fn host_is_local(host: Option<&str>) -> bool {
    let Some(host) = host else {
        return true;
    };
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // `[::1]:7878`: the address is inside the brackets.
        rest.split_once(']').map_or(rest, |(inside, _)| inside)
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Decode `%XX` escapes (and `+` as a space when `plus_is_space`). Invalid escapes and
/// invalid UTF-8 are errors, never guessed at.
pub fn percent_decode(text: &str, plus_is_space: bool) -> Result<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .with_context(|| format!("bad percent escape in {text:?}"))?;
                out.push(hex);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).with_context(|| format!("{text:?} does not decode to UTF-8"))
}

/// Check one decoded path segment names a plain entry: no separators, no `.`/`..`, no NUL.
pub fn check_segment(segment: &str) -> Result<()> {
    if segment.is_empty()
        || segment == "."
        || segment == ".."
        || segment.contains(['/', '\\', '\0'])
        || segment.starts_with('~')
    {
        bail!("path segment {segment:?} is not allowed");
    }
    Ok(())
}

/// `root` joined with decoded `segments`, refused unless the result (after resolving links)
/// stays inside `root`. The target must exist.
pub fn safe_join(root: &Path, segments: &[&str]) -> Result<PathBuf> {
    let mut path = root.to_path_buf();
    for s in segments {
        check_segment(s)?;
        path.push(s);
    }
    let canonical_root = root
        .canonicalize()
        .with_context(|| format!("results directory {} is missing", root.display()))?;
    let canonical = path
        .canonicalize()
        .with_context(|| format!("{} does not exist", segments.join("/")))?;
    if !canonical.starts_with(&canonical_root) {
        bail!("{} is outside the results directory", segments.join("/"));
    }
    Ok(canonical)
}

/// A name a person typed for a new experiment or upload: letters, digits, `-`, `_`, `.`
/// (not leading), at most 64 characters.
pub fn check_name(name: &str, what: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !ok {
        bail!(
            "{what} {name:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting with '.'"
        );
    }
    if name == crate::web::upload::UPLOAD_DIR {
        bail!(
            "{what} {name:?} is reserved: the results folder keeps uploaded datasets in \
             `{name}/`; choose another name"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machines_names_pass_the_loopback_host_check() {
        for ok in [
            None,
            Some("localhost:7878"),
            Some("LOCALHOST"),
            Some("127.0.0.1:7878"),
            Some("127.0.0.2"),
            Some("[::1]:7878"),
            Some("localhost."),
        ] {
            assert!(host_is_local(ok), "{ok:?}");
        }
        for bad in [
            Some("evil.example:7878"),
            Some("localhost.evil.example"),
            Some("127.0.0.1.nip.io"),
            Some("192.168.1.4:7878"),
            Some("[2001:db8::1]:7878"),
            Some(""),
        ] {
            assert!(!host_is_local(bad), "{bad:?}");
        }
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback(&"127.0.0.1:7878".parse().unwrap()));
        assert!(is_loopback(&"[::1]:80".parse().unwrap()));
        assert!(!is_loopback(&"0.0.0.0:7878".parse().unwrap()));
        assert!(!is_loopback(&"192.168.1.4:7878".parse().unwrap()));
    }

    #[test]
    fn token_from_query_or_cookie_only_when_equal() {
        let t = "0123456789abcdef0123456789abcdef";
        assert!(token_ok(t, Some(t), None));
        assert!(token_ok(t, None, Some(&format!("a=b; {TOKEN_COOKIE}={t}"))));
        assert!(!token_ok(t, None, None));
        assert!(!token_ok(t, Some("0123"), None));
        assert!(!token_ok(t, Some(&t.replace('f', "e")), None));
        assert!(!token_ok(t, None, Some(&format!("other={t}"))));
        assert!(!token_ok(t, None, Some(&format!("{TOKEN_COOKIE}={t}x"))));
        let fresh = new_token();
        assert_eq!(fresh.len(), 32);
        assert_ne!(fresh, new_token());
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        assert!(same_origin(None, Some("127.0.0.1:7878")));
        assert!(same_origin(
            Some("http://127.0.0.1:7878"),
            Some("127.0.0.1:7878")
        ));
        assert!(!same_origin(
            Some("https://evil.example"),
            Some("127.0.0.1:7878")
        ));
        assert!(!same_origin(
            Some("http://127.0.0.1:7879"),
            Some("127.0.0.1:7878")
        ));
        assert!(!same_origin(Some("null"), Some("127.0.0.1:7878")));
        assert!(!same_origin(Some("http://127.0.0.1:7878"), None));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c", true).unwrap(), "a b c");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        assert_eq!(percent_decode("%2e%2E", false).unwrap(), "..");
        assert_eq!(percent_decode("%C3%BC", false).unwrap(), "ü");
        assert!(percent_decode("%zz", false).is_err());
        assert!(percent_decode("%4", false).is_err());
        assert!(percent_decode("%FF", false).is_err());
    }

    #[test]
    fn paths_stay_inside_the_results_directory() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("results");
        std::fs::create_dir_all(root.join("exp/random/seed-0")).unwrap();
        std::fs::write(dir.path().join("secret.txt"), "s").unwrap();
        assert!(safe_join(&root, &["exp", "random", "seed-0"]).is_ok());
        for bad in [
            vec![".."],
            vec!["..", "secret.txt"],
            vec!["exp", "..", "..", "secret.txt"],
            vec!["exp/../../secret.txt"],
            vec!["exp\\..\\..\\secret.txt"],
            vec!["."],
            vec!["~"],
            vec!["a\0b"],
        ] {
            assert!(safe_join(&root, &bad).is_err(), "{bad:?} must be refused");
        }
        // Encoded dots decode to `..`, which the segment check refuses.
        let decoded = percent_decode("%2e%2e", false).unwrap();
        assert!(safe_join(&root, &[&decoded, "secret.txt"]).is_err());
        // A symlink inside the results that points outside is refused too.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path(), root.join("escape")).unwrap();
            assert!(safe_join(&root, &["escape", "secret.txt"]).is_err());
        }
    }

    #[test]
    fn names_for_new_files() {
        assert!(check_name("aeslc-human_2", "experiment").is_ok());
        assert!(check_name("data.csv", "upload").is_ok());
        let err = check_name("uploads", "experiment name")
            .unwrap_err()
            .to_string();
        assert!(err.contains("reserved"), "{err}");
        // The run's own check says the same, naming the key.
        let exp = crate::config::parse_experiment(
            "name = \"uploads\"\nseeds = [0]\n[data]\npath = \"data/aeslc\"\n",
            std::path::Path::new("uploads.toml"),
        );
        let err = match exp {
            Ok(exp) => format!("{:#}", crate::config::validate::validate(&exp).unwrap_err()),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("name") && err.contains("reserved"), "{err}");
        for bad in ["", "../x", ".hidden", "a b", "x/y", &"n".repeat(65)] {
            assert!(check_name(bad, "experiment").is_err(), "{bad:?}");
        }
    }
}
