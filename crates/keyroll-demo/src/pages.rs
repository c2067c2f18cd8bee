//! Plain server-rendered HTML. The element ids are a contract: the browser
//! and HTTP tests find things by them.

use axum::response::Html;

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

/// A whole page around `body` (already HTML).
pub(crate) fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title} · keyroll demo</title>
<style>body{{font-family:sans-serif;max-width:46rem;margin:2rem auto;line-height:1.5}}
table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.2rem .6rem}}
code,.mono{{font-family:monospace}} nav a{{margin-right:1rem}} .err{{color:#a00}}</style></head>
<body><nav><a href="/">home</a><a href="/signup">sign up</a><a href="/login">log in</a><a href="/password">password</a><a href="/reset">reset</a><a href="/operator">operator</a><a href="/metrics">metrics</a></nav>
<h1>{title}</h1>
{body}
</body></html>
"#,
        title = esc(title),
    ))
}

/// The home page.
pub(crate) fn home(
    user: Option<&str>,
    session_key_id: &str,
    primary_key_id: &str,
    visits: u64,
) -> Html<String> {
    let who = user.map_or_else(|| "anonymous".to_owned(), esc);
    let logout = if user.is_some() {
        r#"<form id="logout-form" method="post" action="/logout"><button id="logout-submit" type="submit">Log out</button></form>"#
    } else {
        r#"<p><a href="/login">Log in</a> or <a href="/signup">sign up</a>.</p>"#
    };
    page(
        "keyroll demo",
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
pub(crate) fn signup(error: Option<&str>) -> Html<String> {
    page(
        "Sign up",
        &format!(
            r#"{}<form id="signup-form" method="post" action="/signup">
<label>Username <input id="username" name="username" autocomplete="username" required></label><br>
<label>Password <input id="password" name="password" type="password" autocomplete="new-password" required></label><br>
<button id="signup-submit" type="submit">Sign up</button></form>"#,
            error_line(error, "signup-error")
        ),
    )
}

/// Login form.
pub(crate) fn login(error: Option<&str>) -> Html<String> {
    page(
        "Log in",
        &format!(
            r#"{}<form id="login-form" method="post" action="/login">
<label>Username <input id="username" name="username" autocomplete="username" required></label><br>
<label>Password <input id="password" name="password" type="password" autocomplete="current-password" required></label><br>
<button id="login-submit" type="submit">Log in</button></form>"#,
            error_line(error, "login-error")
        ),
    )
}

/// Change-password form.
pub(crate) fn password(error: Option<&str>) -> Html<String> {
    page(
        "Change password",
        &format!(
            r#"{}<form id="password-form" method="post" action="/password">
<label>Current password <input id="old-password" name="old_password" type="password" required></label><br>
<label>New password <input id="new-password" name="new_password" type="password" required></label><br>
<button id="password-submit" type="submit">Change password</button></form>
<p>Your other sessions will be logged out; this one stays logged in.</p>"#,
            error_line(error, "password-error")
        ),
    )
}

/// Reset request form, and the link once made.
pub(crate) fn reset(link: Option<&str>, asked: bool) -> Html<String> {
    let shown = match (link, asked) {
        (Some(l), _) => format!(
            r#"<p>In a real service this link would be e-mailed:
<a id="reset-link" href="{l}">{l}</a></p>"#,
            l = esc(l)
        ),
        (None, true) => {
            r#"<p id="reset-sent">If that account exists, a link has been sent.</p>"#.to_owned()
        }
        (None, false) => String::new(),
    };
    page(
        "Reset password",
        &format!(
            r#"<form id="reset-form" method="post" action="/reset">
<label>Username <input id="username" name="username" required></label><br>
<button id="reset-submit" type="submit">Send reset link</button></form>
{shown}"#
        ),
    )
}

/// The new-password form behind a valid reset link.
pub(crate) fn reset_confirm(uid: &str, token: &str) -> Html<String> {
    page(
        "Choose a new password",
        &format!(
            r#"<form id="reset-confirm-form" method="post" action="/reset/confirm">
<input type="hidden" name="uid" value="{uid}"><input type="hidden" name="token" value="{token}">
<label>New password <input id="new-password" name="new_password" type="password" required></label><br>
<button id="reset-confirm-submit" type="submit">Set password</button></form>"#,
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

/// The operator page: the ring and the three rotation buttons.
pub(crate) fn operator(rows: &[(String, String, String)], error: Option<&str>) -> Html<String> {
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
    page(
        "Operator",
        &format!(
            r#"{}{table}
<p>These edit the ring file and reload it, exactly what <code>keyroll ring …</code> plus the file watch do.</p>
<form method="post" action="/operator/stage"><button id="stage-submit" type="submit">Stage a new key</button></form>
<form method="post" action="/operator/promote"><button id="promote-submit" type="submit">Promote the staged key</button></form>
<form method="post" action="/operator/retire"><button id="retire-submit" type="submit">Retire all fallback keys</button></form>"#,
            error_line(error, "operator-error")
        ),
    )
}
