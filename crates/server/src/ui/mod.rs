//! The web UI: a page and a script embedded in the binary (no CDN, works offline, no Node
//! to build), served by `mooring up` and `mooring server` at `/`. The script talks only to
//! the REST API, so the server's RBAC decides everything the UI shows or does; the UI
//! only hides what the caller may not do (it asks `can-i`), and a forged request gets the
//! API's 403 with its reason.
//!
//! Logging in puts the API token in the `argocd.token` cookie — `HttpOnly` (scripts never
//! read it), `SameSite=Strict` (no cross-site request carries it), `Secure` over HTTPS —
//! and requests that change something must also carry the `X-Requested-With` header the
//! script sets ([`crate::api::CSRF_HEADER`]). `mooring up` prints a one-click
//! `/login?token=…` link, as Jupyter does: it sets the cookie and redirects to `/`, so the
//! token leaves the address bar (`Referrer-Policy: no-referrer` keeps it out of referrers
//! meanwhile). Failed logins count against the API's failure budget. Every page is sent
//! with a Content-Security-Policy that allows only this origin's script and styles.

use crate::api::{admit_token, peer_ip, ApiState, TOKEN_COOKIE};
use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

const INDEX: &str = include_str!("index.html");
const LOGIN: &str = include_str!("login.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("style.css");

/// Paths the UI's pages live under (each serves the page; the script routes).
const PAGES: &[&str] = &[
    "/",
    "/applications",
    "/applications/{*rest}",
    "/rollouts",
    "/policy",
    "/clusters",
    "/projects",
    "/applicationsets",
    "/rollbackpolicies",
    "/drplans",
];

/// The UI's routes (unauthenticated: the page is the same for everyone and the script
/// sends the visitor to `/login` when the API answers 401).
pub(crate) fn router() -> Router<ApiState> {
    let mut r = Router::new();
    for p in PAGES {
        r = r.route(p, get(|| async { page(INDEX, StatusCode::OK) }));
    }
    r.route("/login", get(login_link).post(login_form))
        .route("/logout", post(logout))
        .route(
            "/assets/app.js",
            get(|| async { asset(SCRIPT, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/style.css",
            get(|| async { asset(STYLE, "text/css; charset=utf-8") }),
        )
}

/// Headers every UI answer carries.
fn harden(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
}

fn page(html: &'static str, status: StatusCode) -> Response {
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response();
    harden(&mut resp);
    resp
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut resp = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    harden(&mut resp);
    resp
}

/// HTML-escape text for the login page.
fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '<' => "&lt;".into(),
            '>' => "&gt;".into(),
            '&' => "&amp;".into(),
            '"' => "&quot;".into(),
            '\'' => "&#39;".into(),
            c => c.to_string(),
        })
        .collect()
}

/// The login page, with why the last attempt failed.
fn login_page(error: Option<&str>, status: StatusCode) -> Response {
    let msg = error
        .map(|e| format!("<p class=\"error\" id=\"login-error\">{}</p>", escape(e)))
        .unwrap_or_default();
    let mut resp = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        LOGIN.replace("<!--error-->", &msg),
    )
        .into_response();
    harden(&mut resp);
    resp
}

#[derive(serde::Deserialize, Default)]
struct TokenParam {
    #[serde(default)]
    token: Option<String>,
}

/// `GET /login[?token=…]`: the form, or log in with the link's token.
async fn login_link(
    State(st): State<ApiState>,
    Query(q): Query<TokenParam>,
    req: Request,
) -> Response {
    match q.token.as_deref().filter(|t| !t.is_empty()) {
        Some(token) => log_in(&st, peer_ip(&req), token).await,
        None => login_page(None, StatusCode::OK),
    }
}

/// `POST /login` with the form's `token`.
async fn login_form(State(st): State<ApiState>, req: Request) -> Response {
    let ip = peer_ip(&req);
    let body = match axum::body::to_bytes(req.into_body(), 64 * 1024).await {
        Ok(b) => b,
        Err(_) => return login_page(Some("the form is too large"), StatusCode::PAYLOAD_TOO_LARGE),
    };
    let form: TokenParam = parse_form(&body);
    match form
        .token
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(token) => log_in(&st, ip, token).await,
        None => login_page(Some("enter an API token"), StatusCode::BAD_REQUEST),
    }
}

fn parse_form(body: &Bytes) -> TokenParam {
    let mut out = TokenParam::default();
    for (k, v) in url::form_urlencoded::parse(body) {
        if k == "token" {
            out.token = Some(v.into_owned());
        }
    }
    out
}

/// Check the token; on success set the cookie and go to `/`.
async fn log_in(st: &ApiState, ip: std::net::IpAddr, token: &str) -> Response {
    if let Err(refused) = admit_token(st, ip, token).await {
        let status = refused.status();
        let body = axum::body::to_bytes(refused.into_body(), 64 * 1024)
            .await
            .unwrap_or_default();
        let why = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(String::from))
            .unwrap_or_else(|| "the token was refused".into());
        return login_page(Some(&format!("login failed: {why}")), status);
    }
    let cookie = format!(
        "{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if st.secure_cookie { "; Secure" } else { "" }
    );
    redirect_with_cookie("/", &cookie)
}

/// `POST /logout`: forget the cookie.
async fn logout(State(st): State<ApiState>) -> Response {
    let cookie = format!(
        "{TOKEN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if st.secure_cookie { "; Secure" } else { "" }
    );
    redirect_with_cookie("/login", &cookie)
}

fn redirect_with_cookie(to: &'static str, cookie: &str) -> Response {
    let mut resp = (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    harden(&mut resp);
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_page_escapes_the_error() {
        let resp = login_page(Some("<script>x</script>"), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        let csp = resp.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }

    #[test]
    fn the_form_reads_the_token() {
        let f = parse_form(&Bytes::from_static(b"other=1&token=abc%2B%3D"));
        assert_eq!(f.token.as_deref(), Some("abc+="));
    }
}
