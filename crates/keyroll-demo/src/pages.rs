//! Plain server-rendered HTML. The element ids are a contract: the browser
//! and HTTP tests find things by them.

use axum::response::Html;

use crate::csrf::hidden_field;

/// Escapes text for HTML content and attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The name every page's title ends with.
const SITE: &str = "keyroll demo";

/// A whole page around `body` (already HTML), headed `title`.
pub(crate) fn page(title: &str, body: &str) -> Html<String> {
    layout(&format!("{title} · {SITE}"), title, body)
}

fn layout(head_title: &str, heading: &str, body: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{head_title}</title>
<style>body{{font-family:sans-serif;max-width:46rem;margin:2rem auto;line-height:1.5}}
table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.2rem .6rem}}
code,.mono{{font-family:monospace}} nav a{{margin-right:1rem}} .err{{color:#a00}}</style></head>
<body><nav><a href="/">home</a><a href="/signup">sign up</a><a href="/login">log in</a><a href="/password">password</a><a href="/reset">reset</a><a href="/operator">operator</a><a href="/metrics">metrics</a></nav>
<h1>{heading}</h1>
{body}
</body></html>
"#,
        head_title = esc(head_title),
        heading = esc(heading),
    ))
}

/// The logout button (logging out is a POST, CSRF-checked as every form).
fn logout_form(id: &str, csrf: &str) -> String {
    format!(
        r#"<form id="{id}-form" method="post" action="/logout">{}<button id="{id}-submit" type="submit">Log out</button></form>"#,
        hidden_field(csrf)
    )
}

/// The home page; `csrf` is the token of the logout form, shown when someone is logged in.
pub(crate) fn home(
    user: Option<&str>,
    csrf: Option<&str>,
    session_key_id: &str,
    primary_key_id: &str,
    visits: u64,
) -> Html<String> {
    let who = user.map_or_else(|| "anonymous".to_owned(), esc);
    let logout = match (user, csrf) {
        (Some(_), Some(csrf)) => logout_form("logout", csrf),
        _ => r#"<p><a href="/login">Log in</a> or <a href="/signup">sign up</a>.</p>"#.to_owned(),
    };
    layout(
        SITE,
        SITE,
        &format!(
            r#"<p>You are <span id="whoami">{who}</span>.</p>
<p>Your session was verified by key <span id="session-key-id" class="mono">{session_key_id}</span>;
the primary key is <span id="primary-key-id" class="mono">{primary_key_id}</span>.</p>
<p>Visits in this session: <span id="visits">{visits}</span></p>
{logout}"#,
            session_key_id = esc(session_key_id),
            primary_key_id = esc(primary_key_id),
        ),
    )
}

fn error_line(error: Option<&str>, id: &str) -> String {
    error.map_or_else(String::new, |e| {
        format!(r#"<p id="{id}" class="err">{}</p>"#, esc(e))
    })
}

/// Sign-up form.
pub(crate) fn signup(csrf: &str, error: Option<&str>) -> Html<String> {
    page(
        "Sign up",
        &format!(
            r#"{}<form id="signup-form" method="post" action="/signup">{}
<label>Username <input id="username" name="username" autocomplete="username" required></label><br>
<label>Password <input id="password" name="password" type="password" autocomplete="new-password" required></label><br>
<button id="signup-submit" type="submit">Sign up</button></form>"#,
            error_line(error, "signup-error"),
            hidden_field(csrf)
        ),
    )
}

/// Login form.
pub(crate) fn login(csrf: &str, error: Option<&str>) -> Html<String> {
    page(
        "Log in",
        &format!(
            r#"{}<form id="login-form" method="post" action="/login">{}
<label>Username <input id="username" name="username" autocomplete="username" required></label><br>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label><br>
<button id="login-submit" type="submit">Log in</button></form>"#,
            error_line(error, "login-error"),
            hidden_field(csrf)
        ),
    )
}

/// Change-password form.
pub(crate) fn password(csrf: &str, error: Option<&str>) -> Html<String> {
    page(
        "Change password",
        &format!(
            r#"{}<form id="password-form" method="post" action="/password">{}
<label>Current password <input id="old-password" name="old_password" type="password" required></label><br>
<label>New password <input id="new-password" name="new_password" type="password" required></label><br>
<button id="password-submit" type="submit">Change password</button></form>
<p>Your other sessions will be logged out; this one stays logged in.</p>"#,
            error_line(error, "password-error"),
            hidden_field(csrf)
        ),
    )
}

/// Reset request form; once asked, the same answer for every name (known
/// or not): the link goes to the user's mail (the outbox), never to the page.
pub(crate) fn reset(csrf: &str, asked: bool) -> Html<String> {
    let shown = if asked {
        r#"<p id="reset-sent">If that account exists, a link has been sent to its owner.</p>"#
    } else {
        ""
    };
    page(
        "Reset password",
        &format!(
            r#"<form id="reset-form" method="post" action="/reset">{}
<label>Username <input id="username" name="username" required></label><br>
<button id="reset-submit" type="submit">Send reset link</button></form>
{shown}"#,
            hidden_field(csrf)
        ),
    )
}

/// The new-password form behind a valid reset link.
pub(crate) fn reset_confirm(csrf: &str, uid: &str, token: &str) -> Html<String> {
    page(
        "Choose a new password",
        &format!(
            r#"<form id="reset-confirm-form" method="post" action="/reset/confirm">{}
<input type="hidden" name="uid" value="{uid}"><input type="hidden" name="token" value="{token}">
<label>New password <input id="new-password" name="new_password" type="password" required></label><br>
<button id="reset-confirm-submit" type="submit">Set password</button></form>"#,
            hidden_field(csrf),
            uid = esc(uid),
            token = esc(token)
        ),
    )
}

/// An invalid or expired reset link.
pub(crate) fn reset_invalid() -> Html<String> {
    page(
        "Reset password",
        r#"<p id="reset-invalid" class="err">This password reset link is invalid or has expired. <a href="/reset">Ask for a new one.</a></p>"#,
    )
}

/// After a reset.
pub(crate) fn reset_done() -> Html<String> {
    page(
        "Password set",
        r#"<p id="reset-done">Your password has been set. <a href="/login">Log in.</a></p>"#,
    )
}

/// A refused request (CSRF, cross-site, not an operator).
pub(crate) fn forbidden(why: &str) -> Html<String> {
    page(
        "Forbidden",
        &format!(
            r#"<p id="forbidden" class="err">{}. Reload the page and try again.</p>"#,
            esc(why)
        ),
    )
}

/// The operator login: the operator token, from the file named at start-up.
pub(crate) fn operator_login(csrf: &str, error: Option<&str>) -> Html<String> {
    page(
        "Operator",
        &format!(
            r#"{}<p>The operator page needs the operator token: the file <code>operator-token</code> in the demo's data
directory (or the file given with <code>--operator-token-file</code>).</p>
<form id="operator-login-form" method="post" action="/operator/login">{}
<label>Operator token <input id="operator-token" name="token" type="password" autocomplete="off" required></label><br>
<button id="operator-login-submit" type="submit">Open the operator page</button></form>"#,
            error_line(error, "operator-error"),
            hidden_field(csrf)
        ),
    )
}

/// The operator page: the ring and the three rotation buttons.
pub(crate) fn operator(
    csrf: &str,
    rows: &[(String, String, String)],
    min_staged: &str,
    max_staged: usize,
    error: Option<&str>,
) -> Html<String> {
    let mut table = String::from(
        r#"<table id="ring"><thead><tr><th>key id</th><th>role</th><th>retire after</th></tr></thead><tbody>"#,
    );
    for (id, role, retire) in rows {
        table.push_str(&format!(
            r#"<tr class="key" data-key-id="{id}" data-role="{role}"><td class="key-id mono">{id}</td><td class="role">{role}</td><td class="retire-after">{retire}</td></tr>"#,
            id = esc(id),
            role = esc(role),
            retire = esc(retire)
        ));
    }
    table.push_str("</tbody></table>");
    let token = hidden_field(csrf);
    page(
        "Operator",
        &format!(
            r#"{}{table}
<p>These edit the ring file and reload it, exactly what <code>keyroll ring …</code> plus the file watch do.
A staged key is promoted once it has been staged for {min_staged} (<code>--min-staged</code>), so that every
server knows it before it signs; at most {max_staged} keys are staged at once.</p>
<form method="post" action="/operator/stage">{token}<button id="stage-submit" type="submit">Stage a new key</button></form>
<form method="post" action="/operator/promote">{token}<button id="promote-submit" type="submit">Promote the staged key</button></form>
<form method="post" action="/operator/retire">{token}<button id="retire-submit" type="submit">Retire all fallback keys</button></form>
{}"#,
            error_line(error, "operator-error"),
            logout_form("operator-logout", csrf),
            min_staged = esc(min_staged),
        ),
    )
}
