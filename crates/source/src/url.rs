//! Repository URL checks and redaction.
//!
//! Git URLs reach `ssh` and `git-upload-pack` command lines, so a hostile URL is an
//! argument-injection vector (`-oProxyCommand=…`, `ext::sh -c …`). Mooring accepts a small,
//! explicit set of forms and refuses everything else before gix sees the URL.

use crate::SourceError;

/// Schemes Mooring fetches from.
const SCHEMES: &[&str] = &["file", "http", "https", "ssh"];

/// Check that `url` is a repository URL Mooring will use.
///
/// Accepted: `file:///absolute/path`, `http://…`, `https://…`, `ssh://[user@]host[:port]/path`
/// and scp-like `[user@]host:path`. Refused: empty URLs, whitespace or control characters,
/// a leading `-`, `transport::address` forms such as `ext::…`, other schemes (`git://`,
/// `ftp://`, …), plain local paths (use `file://`), and hosts, users or scp paths that
/// start with `-`.
pub fn validate_url(url: &str) -> Result<(), SourceError> {
    let refuse = |reason: &str| {
        Err(SourceError::InvalidUrl {
            url: redact_url(url),
            reason: reason.to_string(),
        })
    };
    if url.is_empty() {
        return refuse("it is empty");
    }
    if url.starts_with('-') {
        return refuse("it starts with '-' and could be taken for a command-line option");
    }
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return refuse("it contains whitespace or control characters");
    }
    if let Some(i) = url.find("::") {
        let head = &url[..i];
        if !head.contains('/') && !head.contains('@') {
            return refuse("the 'transport::address' form (such as ext::) runs arbitrary programs");
        }
    }
    if let Some((scheme, rest)) = url.split_once("://") {
        let scheme_lc = scheme.to_ascii_lowercase();
        if !SCHEMES.contains(&scheme_lc.as_str()) {
            return refuse(&format!("scheme {scheme:?} is not supported"));
        }
        let authority = rest.split('/').next().unwrap_or_default();
        let path = &rest[authority.len()..];
        if scheme_lc == "file" {
            if !(authority.is_empty() || authority.eq_ignore_ascii_case("localhost")) {
                return refuse("file:// URLs must name a local absolute path (file:///path)");
            }
            if path.is_empty() || path == "/" {
                return refuse("file:// URL has no path");
            }
            return Ok(());
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if hostport.is_empty() || hostport.starts_with(':') {
            return refuse("it has no host");
        }
        if hostport.starts_with('-') {
            return refuse("the host starts with '-'");
        }
        if let Some(u) = userinfo {
            if u.starts_with('-') {
                return refuse("the user name starts with '-'");
            }
        }
        if path.len() <= 1 {
            return refuse("it has no repository path");
        }
        return Ok(());
    }
    // scp-like: [user@]host:path
    let Some((before, path)) = url.split_once(':') else {
        return refuse("plain local paths are not accepted; use file:///absolute/path");
    };
    if before.contains('/') {
        return refuse("plain local paths are not accepted; use file:///absolute/path");
    }
    let (user, host) = match before.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, before),
    };
    if host.is_empty() {
        return refuse("it has no host");
    }
    if host.starts_with('-') {
        return refuse("the host starts with '-'");
    }
    if user.is_some_and(|u| u.is_empty() || u.starts_with('-')) {
        return refuse("the user name is empty or starts with '-'");
    }
    if path.is_empty() {
        return refuse("it has no repository path");
    }
    if path.starts_with('-') {
        return refuse("the repository path starts with '-'");
    }
    Ok(())
}

/// `url` with any password (and, for http(s), a bare token in the user position) replaced
/// by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_string();
    };
    let is_http = scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https");
    let shown = match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:***"),
        None if is_http => "***".to_string(),
        None => userinfo.to_string(),
    };
    format!("{scheme}://{shown}@{host}{}", &rest[authority_end..])
}

/// The scheme class of a validated URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Http,
    Ssh,
}

/// Which transport a validated URL uses.
pub(crate) fn kind(url: &str) -> Kind {
    match url.split_once("://") {
        Some((s, _)) if s.eq_ignore_ascii_case("file") => Kind::File,
        Some((s, _)) if s.eq_ignore_ascii_case("ssh") => Kind::Ssh,
        Some(_) => Kind::Http,
        None => Kind::Ssh,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_supported_forms() {
        for ok in [
            "file:///tmp/repo.git",
            "http://127.0.0.1:8080/repo.git",
            "https://github.com/org/repo",
            "https://user:pw@github.com/org/repo.git",
            "ssh://git@github.com/org/repo.git",
            "ssh://git@[::1]:2222/org/repo.git",
            "git@github.com:org/repo.git",
            "github.com:org/repo.git",
        ] {
            assert!(validate_url(ok).is_ok(), "{ok} should be accepted");
        }
    }

    #[test]
    fn refuses_injection_and_unknown_forms() {
        for bad in [
            "",
            "-oProxyCommand=touch /tmp/pwned",
            "ext::sh -c touch% /tmp/pwned",
            "ext::sh",
            "fd::17",
            "git://github.com/org/repo",
            "ftp://host/repo",
            "/tmp/repo",
            "./repo",
            "ssh://-oProxyCommand=x/repo",
            "ssh://-user@host/repo",
            "-host:repo",
            "git@-host:repo",
            "git@host:-repo",
            "https://host/repo\nevil",
            "file://otherhost/tmp/repo",
        ] {
            assert!(validate_url(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn redacts_passwords_and_tokens() {
        assert_eq!(
            redact_url("https://alice:s3cret@host/org/repo.git"),
            "https://alice:***@host/org/repo.git"
        );
        assert_eq!(redact_url("https://ghp_token@host/r"), "https://***@host/r");
        assert_eq!(redact_url("ssh://git@host/r"), "ssh://git@host/r");
        assert_eq!(redact_url("git@host:r"), "git@host:r");
        let err = validate_url("ftp://bob:hunter2@host/r").expect_err("ftp is refused");
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
