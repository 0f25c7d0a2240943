//! Puts the platform's emails in the tenant's brand. The HTML body gets a header
//! (logo or brand name on the primary colour, an accent rule) and a footer with the
//! tenant's text, placed after the original content so the unsubscribe link and the
//! postal address stay exactly as they were; the text body gets the footer text;
//! the sender name and Reply-To are set; the subject gets an optional prefix.
//!
//! Settings:
//!
//! ```json
//! {
//!   "brand_name": "Maison Léa",
//!   "primary_color": "#1a1a2e",
//!   "accent_color": "#e94560",
//!   "logo_url": "https://cdn.example.com/lea/logo.png",
//!   "footer_text": "Maison Léa, curated pre-owned fashion.",
//!   "reply_to": "care@example.com",
//!   "from_name": "Maison Léa",
//!   "subject_prefix": "[Maison Léa]"
//! }
//! ```
//!
//! `brand_name`, `primary_color` and `accent_color` are required; the rest are
//! optional (no logo: the brand name is shown; no `from_name`/`reply_to`: the
//! platform's stay). Settings are data, never markup or template code: colours
//! must be `#rrggbb`, the logo must be an `https://` URL, the brand name and
//! footer are HTML-escaped, and Jinja delimiters (`{{`, `{%`, `{#`) and line breaks
//! where they do not belong are refused with `bad-settings`.

use veneer_sdk::{Context, EmailTemplate, Plugin, PluginError, RenderContext};

/// The plugin type registered with the host: its settings, checked once per
/// instance (everything that reaches an email passed the checks of `new`).
#[derive(Debug)]
pub struct EmailRebrand {
    settings: Settings,
}

/// The tenant's settings.
#[veneer_sdk::settings]
#[derive(Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The brand's name, shown in the header when there is no logo and as the logo's alt text.
    #[schemars(length(min = 1, max = 100))]
    pub brand_name: String,
    /// Header background, `#rrggbb`.
    #[schemars(regex(pattern = r"^#[0-9a-fA-F]{6}$"))]
    pub primary_color: String,
    /// Rules and accents, `#rrggbb`.
    #[schemars(regex(pattern = r"^#[0-9a-fA-F]{6}$"))]
    pub accent_color: String,
    /// The logo image, an `https://` URL.
    #[serde(default)]
    #[schemars(length(max = 2048), regex(pattern = r"^[hH][tT][tT][pP][sS]://"))]
    pub logo_url: Option<String>,
    /// Footer text for both bodies; line breaks are kept.
    #[serde(default)]
    #[schemars(length(max = 2000))]
    pub footer_text: String,
    /// Reply-To address.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Sender display name.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub from_name: Option<String>,
    /// Put before every subject, followed by a space.
    #[serde(default)]
    #[schemars(length(max = 60))]
    pub subject_prefix: Option<String>,
}

/// Marks a body this plugin has already wrapped, so a second pass leaves it alone.
const MARKER: &str = "<!-- veneer:email-rebrand -->";

fn bad(field: &str, problem: &str) -> PluginError {
    PluginError::bad_settings(
        &format!("/{field}"),
        format_args!("{problem}; fix it in the plugin's settings"),
    )
}

fn has_template_syntax(text: &str) -> bool {
    ["{{", "{%", "{#"].iter().any(|open| text.contains(open))
}

/// Checks a text setting: not too long, no template syntax, and control
/// characters (CR/LF included) only where `newlines` allows line breaks.
fn check_text(
    field: &str,
    text: &str,
    max_chars: usize,
    newlines: bool,
) -> Result<(), PluginError> {
    if text.chars().count() > max_chars {
        return Err(bad(
            field,
            &format!("is longer than {max_chars} characters"),
        ));
    }
    if has_template_syntax(text) {
        return Err(bad(
            field,
            "contains template syntax (`{{`, `{%` or `{#`); settings are shown as written, not run",
        ));
    }
    let allowed = |c: char| newlines && c == '\n';
    if text.chars().any(|c| c.is_control() && !allowed(c)) {
        let what = if newlines {
            "contains control characters other than line breaks"
        } else {
            "contains a line break or another control character"
        };
        return Err(bad(field, what));
    }
    Ok(())
}

fn check_color(field: &str, color: &str) -> Result<(), PluginError> {
    let hex = color.strip_prefix('#').unwrap_or("");
    if hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(bad(
            field,
            "must be a colour written #rrggbb, for example #1a1a2e",
        ))
    }
}

fn check_logo_url(url: &str) -> Result<(), PluginError> {
    const FIELD: &str = "logo_url";
    if url.len() > 2048 {
        return Err(bad(FIELD, "is longer than 2048 characters"));
    }
    let Some(rest) = url
        .get(..8)
        .filter(|scheme| scheme.eq_ignore_ascii_case("https://"))
        .map(|_| &url[8..])
    else {
        return Err(bad(FIELD, "must start with https://"));
    };
    // Percent-encode anything else: these would end the attribute, open a tag or a
    // template expression, or are not allowed in a URL at all.
    let forbidden = |c: char| !c.is_ascii_graphic() || "\"'<>\\`{}|^".contains(c);
    if url.chars().any(forbidden) {
        return Err(bad(
            FIELD,
            "contains spaces, quotes, angle brackets, braces or non-ASCII characters; percent-encode them",
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() || authority.contains('@') {
        return Err(bad(
            FIELD,
            "must name a host, without a user name or password",
        ));
    }
    Ok(())
}

fn check_address(address: &str) -> Result<(), PluginError> {
    const FIELD: &str = "reply_to";
    let invalid = || bad(FIELD, "must be one plain address such as care@example.com");
    if address.len() > 254 {
        return Err(invalid());
    }
    let Some((local, domain)) = address.split_once('@') else {
        return Err(invalid());
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?_.~".contains(c));
    let domain_ok = domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err(invalid())
    }
}

impl Settings {
    /// Checks the settings; everything that reaches an email passed here.
    pub fn check(self) -> Result<Self, PluginError> {
        let settings = self;
        if settings.brand_name.trim().is_empty() {
            return Err(bad("brand_name", "is empty"));
        }
        check_text("brand_name", &settings.brand_name, 100, false)?;
        check_color("primary_color", &settings.primary_color)?;
        check_color("accent_color", &settings.accent_color)?;
        if let Some(url) = &settings.logo_url {
            check_logo_url(url)?;
        }
        check_text("footer_text", &settings.footer_text, 2000, true)?;
        if let Some(address) = &settings.reply_to {
            check_address(address)?;
        }
        if let Some(name) = &settings.from_name {
            check_text("from_name", name, 100, false)?;
            if name.contains(['"', '<', '>', '\\']) {
                return Err(bad(
                    "from_name",
                    "contains quotes, angle brackets or backslashes",
                ));
            }
        }
        if let Some(prefix) = &settings.subject_prefix {
            check_text("subject_prefix", prefix, 60, false)?;
        }
        Ok(settings)
    }
}

/// Escapes text for HTML element content and quoted attributes. Braces become
/// character references too, so the result can never form template syntax even
/// next to a brace in the surrounding template.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '{' => out.push_str("&#123;"),
            '}' => out.push_str("&#125;"),
            _ => out.push(c),
        }
    }
    out
}

/// Dark or light text, whichever reads better on `background` (`#rrggbb`).
fn text_color_on(background: &str) -> &'static str {
    let channel = |range: std::ops::Range<usize>| {
        background
            .get(range)
            .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            .map_or(0.0, f64::from)
    };
    // ITU-R BT.601 luma: good enough to choose between black and white.
    let luma = 0.299 * channel(1..3) + 0.587 * channel(3..5) + 0.114 * channel(5..7);
    if luma > 150.0 { "#111111" } else { "#ffffff" }
}

fn header(settings: &Settings) -> String {
    let brand = escape_html(&settings.brand_name);
    let mark = match &settings.logo_url {
        Some(url) => format!(
            r#"<img src="{}" alt="{brand}" height="40" style="display:block;height:40px;border:0;">"#,
            escape_html(url)
        ),
        None => format!(
            r#"<span style="font:bold 20px/1.2 Helvetica,Arial,sans-serif;color:{};">{brand}</span>"#,
            text_color_on(&settings.primary_color)
        ),
    };
    format!(
        "{MARKER}\n<div style=\"background-color:{};padding:16px 24px;border-bottom:4px solid {};\">{mark}</div>\n",
        settings.primary_color, settings.accent_color
    )
}

fn footer(settings: &Settings) -> String {
    let text = escape_html(&settings.footer_text).replace('\n', "<br>\n");
    format!(
        "\n<div style=\"border-top:2px solid {};margin-top:24px;padding:16px 24px;font:12px/1.5 Helvetica,Arial,sans-serif;color:#555555;\">{text}</div>\n",
        settings.accent_color
    )
}

/// Byte offset just past the `<body ...>` tag, if there is one.
fn after_body_open(html: &str) -> Option<usize> {
    let lower = html.to_ascii_lowercase();
    let start = lower
        .match_indices("<body")
        .map(|(index, _)| index)
        .find(|index| {
            lower[index + 5..]
                .chars()
                .next()
                .is_some_and(|c| c == '>' || c.is_ascii_whitespace())
        })?;
    lower[start..].find('>').map(|end| start + end + 1)
}

/// Byte offset of the last `</body>`, if there is one.
fn body_close(html: &str) -> Option<usize> {
    html.to_ascii_lowercase().rfind("</body")
}

/// Wraps the HTML body: header right after `<body>`, footer right before
/// `</body>`, or around the whole body when it is a fragment.
fn wrap_html(html: &str, settings: &Settings) -> String {
    let (header, footer) = (header(settings), footer(settings));
    match (after_body_open(html), body_close(html)) {
        (Some(open), Some(close)) if open <= close => {
            format!(
                "{}{header}{}{footer}{}",
                &html[..open],
                &html[open..close],
                &html[close..]
            )
        }
        _ => format!("{header}{html}{footer}"),
    }
}

#[veneer_sdk::plugin]
impl Plugin for EmailRebrand {
    type Settings = Settings;

    fn new(settings: Settings, _ctx: &Context) -> Result<Self, PluginError> {
        Ok(Self {
            settings: settings.check()?,
        })
    }

    fn email(
        &self,
        _ctx: &Context,
        mut template: EmailTemplate,
        _context: &RenderContext,
    ) -> Result<EmailTemplate, PluginError> {
        let settings = &self.settings;
        if !template.html.contains(MARKER) {
            template.html = wrap_html(&template.html, settings);
            let footer = settings.footer_text.trim();
            if !footer.is_empty() {
                template.text = format!("{}\n\n-- \n{footer}\n", template.text.trim_end());
            }
        }
        if let Some(prefix) = settings.subject_prefix.as_deref().map(str::trim)
            && !prefix.is_empty()
            && !template.subject.starts_with(prefix)
        {
            template.subject = format!("{prefix} {}", template.subject);
        }
        if settings.from_name.is_some() {
            template.from_name.clone_from(&settings.from_name);
        }
        if settings.reply_to.is_some() {
            template.reply_to.clone_from(&settings.reply_to);
        }
        Ok(template)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HTML: &str = "<!doctype html>\n<html><head><title>{{ subject }}</title></head>\n<BODY class=\"mail\">\n<p>Hello {{ first_name }}, order {{ order_id }} is confirmed.</p>\n<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a> &middot; {{ postal_address }}</p>\n</body></html>\n";
    const TEXT: &str = "Hello {{ first_name }}, order {{ order_id }} is confirmed.\n\nUnsubscribe: {{ unsubscribe_url }}\n{{ postal_address }}\n";

    fn template() -> EmailTemplate {
        EmailTemplate {
            id: "order-confirmation".into(),
            subject: "Your order {{ order_id }}".into(),
            html: HTML.into(),
            text: TEXT.into(),
            from_name: None,
            reply_to: None,
        }
    }

    fn settings(extra: &str) -> String {
        format!(
            r##"{{"brand_name": "Maison Léa", "primary_color": "#1a1a2e", "accent_color": "#E94560"{extra}}}"##
        )
    }

    fn full() -> String {
        settings(
            r#", "logo_url": "https://cdn.example.com/lea/logo.png?v=2", "footer_text": "Maison Léa\nCurated pre-owned fashion",
                "reply_to": "care@lea.example.com", "from_name": "Maison Léa", "subject_prefix": "[Léa]""#,
        )
    }

    fn run(settings: &str) -> Result<EmailTemplate, PluginError> {
        let ctx = Context::testing();
        veneer_sdk::instantiate::<EmailRebrand>(settings, &ctx)?.email(
            &ctx,
            template(),
            &RenderContext::new(),
        )
    }

    /// The `{{ ... }}` expressions of a template, in order.
    fn expressions(text: &str) -> Vec<&str> {
        text.split("{{")
            .skip(1)
            .filter_map(|part| part.split_once("}}").map(|(inner, _)| inner.trim()))
            .collect()
    }

    #[test]
    fn wraps_the_html_inside_the_body_and_keeps_every_placeholder() {
        let out = run(&full()).unwrap();
        let body_open = out.html.find("<BODY class=\"mail\">").unwrap();
        let header = out.html.find("background-color:#1a1a2e").unwrap();
        let original = out.html.find("<p>Hello").unwrap();
        let footer = out.html.find("Curated pre-owned fashion").unwrap();
        let close = out.html.find("</body>").unwrap();
        assert!(body_open < header && header < original && original < footer && footer < close);
        assert!(
            out.html.contains(
                r#"<img src="https://cdn.example.com/lea/logo.png?v=2" alt="Maison Léa""#
            )
        );
        assert!(out.html.contains("border-bottom:4px solid #E94560"));
        assert!(out.html.contains("Maison Léa<br>\nCurated"));
        assert_eq!(expressions(&out.html), expressions(HTML));
        assert!(out.html.contains(
            "<p><a href=\"{{ unsubscribe_url }}\">Unsubscribe</a> &middot; {{ postal_address }}</p>"
        ));
    }

    #[test]
    fn the_text_body_gets_the_footer_after_the_original() {
        let out = run(&full()).unwrap();
        assert!(out.text.starts_with(TEXT.trim_end()));
        assert!(
            out.text
                .ends_with("\n\n-- \nMaison Léa\nCurated pre-owned fashion\n")
        );
        assert_eq!(expressions(&out.text), expressions(TEXT));
    }

    #[test]
    fn sets_sender_reply_to_and_subject_prefix() {
        let out = run(&full()).unwrap();
        assert_eq!(out.subject, "[Léa] Your order {{ order_id }}");
        assert_eq!(out.from_name.as_deref(), Some("Maison Léa"));
        assert_eq!(out.reply_to.as_deref(), Some("care@lea.example.com"));
        assert_eq!(out.id, "order-confirmation");
    }

    #[test]
    fn minimal_settings_show_the_brand_name_and_keep_the_platform_sender() {
        let out = run(&settings("")).unwrap();
        assert!(
            out.html.contains("color:#ffffff;\">Maison Léa</span>"),
            "light text on a dark header"
        );
        assert_eq!(out.text, TEXT, "no footer text, no change");
        assert_eq!(
            (out.subject.as_str(), out.from_name, out.reply_to),
            ("Your order {{ order_id }}", None, None)
        );
        let light =
            run(r##"{"brand_name": "B", "primary_color": "#f5f5dc", "accent_color": "#000000"}"##)
                .unwrap();
        assert!(light.html.contains("color:#111111;\">B</span>"));
    }

    #[test]
    fn a_fragment_is_wrapped_whole_and_a_second_pass_changes_nothing() {
        let ctx = Context::testing();
        let plugin: EmailRebrand = veneer_sdk::instantiate(&full(), &ctx).unwrap();
        let mut fragment = template();
        fragment.html = "<p>{{ unsubscribe_url }} {{ postal_address }}</p>".into();
        let once = plugin.email(&ctx, fragment, &RenderContext::new()).unwrap();
        assert!(once.html.starts_with(MARKER));
        assert!(
            once.html
                .contains("</div>\n<p>{{ unsubscribe_url }} {{ postal_address }}</p>\n<div")
        );
        let twice = plugin
            .email(&ctx, once.clone(), &RenderContext::new())
            .unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn brand_text_is_escaped_as_html_and_cannot_form_template_syntax() {
        let out = run(&settings(
            r#", "footer_text": "<script>alert('x')</script> & {co} {""#,
        ))
        .unwrap();
        assert!(out.html.contains(
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#123;co&#125; &#123;"
        ));
        assert!(!out.html.contains("<script>"));
        assert_eq!(expressions(&out.html), expressions(HTML));
        let brand = run(r##"{"brand_name": "A\"><img src=x onerror=alert(1)>", "primary_color": "#000000", "accent_color": "#000000"}"##).unwrap();
        assert!(
            brand
                .html
                .contains("A&quot;&gt;&lt;img src=x onerror=alert(1)&gt;")
        );
    }

    #[test]
    fn template_syntax_in_settings_is_refused() {
        for extra in [
            r#", "footer_text": "{{ config }}""#,
            r#", "footer_text": "{% include 'x' %}""#,
            r#", "subject_prefix": "{# x #}""#,
            r#", "from_name": "{{ 7*7 }}""#,
        ] {
            let err = run(&settings(extra)).unwrap_err();
            assert_eq!(err.code, "bad-settings", "{extra}");
            assert!(err.message.contains("template syntax"), "{}", err.message);
        }
        let err = run(r##"{"brand_name": "{{ secret }}", "primary_color": "#000000", "accent_color": "#000000"}"##).unwrap_err();
        assert_eq!(err.code, "bad-settings");
    }

    #[test]
    fn colours_must_be_hex_triplets() {
        for color in [
            "red",
            "#fff",
            "#12345g",
            "#1234567",
            "#000000;background:url(x)",
            "1a1a2e",
        ] {
            let settings = format!(
                r##"{{"brand_name": "B", "primary_color": "{color}", "accent_color": "#000000"}}"##
            );
            let err = run(&settings).unwrap_err();
            assert_eq!(err.code, "bad-settings", "{color}");
            assert!(
                err.message.starts_with("settings at /primary_color: "),
                "{}",
                err.message
            );
        }
        let accent = r##"{"brand_name": "B", "primary_color": "#000000", "accent_color": "blue"}"##;
        assert!(run(accent).unwrap_err().message.contains("accent_color"));
    }

    #[test]
    fn the_logo_must_be_a_plain_https_url() {
        for url in [
            "http://cdn.example.com/logo.png",
            "javascript:alert(1)",
            "https://",
            "https://user:pw@evil.example/logo.png",
            "https://cdn.example.com/a b.png",
            "https://cdn.example.com/\"onerror=\"alert(1)",
            "https://cdn.example.com/{{x}}.png",
            "//cdn.example.com/logo.png",
        ] {
            let extra = format!(
                r#", "logo_url": {}"#,
                veneer_sdk::serde_json::to_string(url).unwrap()
            );
            let err = run(&settings(&extra)).unwrap_err();
            assert_eq!(err.code, "bad-settings", "{url}");
        }
        assert!(
            run(&settings(
                r#", "logo_url": "HTTPS://cdn.example.com/l.svg#x""#
            ))
            .is_ok()
        );
    }

    #[test]
    fn header_values_cannot_carry_line_breaks() {
        for extra in [
            r#", "subject_prefix": "[B]\r\nBcc: all@example.com""#,
            r#", "from_name": "B\nBcc: x@example.com""#,
            r#", "reply_to": "care@example.com\r\nBcc: x@example.com""#,
            r#", "reply_to": "not an address""#,
            r#", "reply_to": "a@b@example.com""#,
            r#", "from_name": "\"B\" <x@example.com>""#,
        ] {
            assert_eq!(
                run(&settings(extra)).unwrap_err().code,
                "bad-settings",
                "{extra}"
            );
        }
    }

    #[test]
    fn the_schema_requires_the_brand_and_constrains_colours() {
        let info = veneer_sdk::describe::<EmailRebrand>();
        assert_eq!(info.hooks, ["email"]);
        let schema: veneer_sdk::serde_json::Value =
            veneer_sdk::serde_json::from_str(&info.settings_schema.unwrap()).unwrap();
        assert_eq!(
            schema["required"],
            veneer_sdk::serde_json::json!(["brand_name", "primary_color", "accent_color"])
        );
        assert_eq!(
            schema["properties"]["primary_color"]["pattern"],
            "^#[0-9a-fA-F]{6}$"
        );
        assert_eq!(schema["properties"]["brand_name"]["maxLength"], 100);
    }

    #[test]
    fn missing_or_unknown_settings_are_bad_settings() {
        for settings in [
            "{}",
            r##"{"brand_name": "B", "primary_color": "#000000"}"##,
            r##"{"brand_name": "B", "primary_color": "#000000", "accent_color": "#000000", "colour": "x"}"##,
            r##"{"brand_name": " ", "primary_color": "#000000", "accent_color": "#000000"}"##,
        ] {
            assert_eq!(
                run(settings).unwrap_err().code,
                "bad-settings",
                "{settings}"
            );
        }
    }
}
