//! Rendering: a customised template plus a context becomes the subject, HTML and
//! text of a message. minijinja with HTML auto-escaping for the HTML part and
//! strict undefined variables, so a missing value is an error rather than a
//! blank in a customer's inbox.
//!
//! Templates come from tenants' plugins, so rendering is bounded: each part is
//! first checked against the language subset ([`veneer_core::email_check::check_template`]), then runs
//! with [`TEMPLATE_FUEL`] instructions, a loop nesting limit of
//! [`TEMPLATE_RECURSION`], `range()` capped at [`MAX_RANGE`] items, and writes
//! into a buffer that refuses to grow past the part's cap ([`MAX_SUBJECT_OUTPUT`],
//! [`MAX_HTML_OUTPUT`], [`MAX_TEXT_OUTPUT`]): nothing is rendered into an
//! unbounded string first. Rendering is synchronous CPU work; callers run it on
//! a blocking thread. Base templates are trusted and go through the same
//! renderer.

use std::collections::BTreeMap;
use std::io;
use std::sync::LazyLock;

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use crate::base::EmailTemplate;

/// Instructions one part (subject, HTML or text) may execute. The base
/// templates need under 200; a loop over a few hundred items fits.
pub const TEMPLATE_FUEL: u64 = 50_000;
/// How deep `for` loops may nest (minijinja counts a frame per loop).
pub const TEMPLATE_RECURSION: usize = 32;
/// Most items a `range()` may produce.
pub const MAX_RANGE: usize = 1_000;
/// Largest rendered subject, in bytes.
pub const MAX_SUBJECT_OUTPUT: usize = 2 * 1024;
/// Largest rendered HTML part, in bytes.
pub const MAX_HTML_OUTPUT: usize = 1024 * 1024;
/// Largest rendered text part, in bytes.
pub const MAX_TEXT_OUTPUT: usize = 512 * 1024;

/// A rendered message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Rendered {
    /// The subject line.
    pub subject: String,
    /// The HTML part.
    pub html: String,
    /// The text part.
    pub text: String,
    /// The sender's display name, when the template sets one.
    pub from_name: Option<String>,
    /// The Reply-To address, when the template sets one.
    pub reply_to: Option<String>,
}

/// Which bound a render went past.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Bound {
    /// A construct outside the email subset (see [`veneer_core::email_check::check_template`]).
    Construct,
    /// [`TEMPLATE_FUEL`] ran out.
    Fuel,
    /// Nesting deeper than [`TEMPLATE_RECURSION`].
    Recursion,
    /// A `range()` over more than [`MAX_RANGE`] items.
    Range,
    /// The part's output cap.
    Output,
}

/// A template that does not render with the given context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {part} of template `{template}` does not render: {message}")]
pub struct RenderError {
    /// The template id.
    pub template: String,
    /// subject, html or text.
    pub part: &'static str,
    /// minijinja's explanation (names the variable or the line), or the
    /// bound that was reached.
    pub message: String,
    /// The bound that stopped it, when one did (else the template or the
    /// context is wrong, e.g. a missing variable).
    pub bound: Option<Bound>,
}

/// The one environment every render uses: no templates are added to it, so
/// it is shared read-only.
static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_recursion_limit(TEMPLATE_RECURSION);
    env.add_function("range", range);
    env
});

/// minijinja's own refuses past 100,000 items; ours at [`MAX_RANGE`].
fn range(
    lower: isize,
    upper: Option<isize>,
    step: Option<isize>,
) -> Result<Value, minijinja::Error> {
    let (start, end) = match upper {
        Some(upper) => (lower as i128, upper as i128),
        None => (0, lower as i128),
    };
    let by = step.unwrap_or(1) as i128;
    // Ceiling division of a non-negative span by a positive step.
    let count = |span: i128, by: i128| (span.max(0) + by - 1) / by;
    let items = match by {
        0 => 0,
        by if by > 0 => count(end - start, by),
        by => count(start - end, -by),
    };
    if items > MAX_RANGE as i128 {
        return Err(minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("{RANGE_REFUSED} ({items} asked, at most {MAX_RANGE})"),
        ));
    }
    minijinja::functions::range(lower, upper, step)
}

const RANGE_REFUSED: &str = "range() has too many items";

/// A writer that takes whole writes until `cap` bytes, then refuses.
struct Capped {
    buf: Vec<u8>,
    cap: usize,
    over: bool,
}

impl io::Write for Capped {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len().saturating_add(data.len()) > self.cap {
            self.over = true;
            return Err(io::Error::other("the output cap is reached"));
        }
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Renders every part of `template` with `context`, within the bounds.
pub fn render(
    template: &EmailTemplate,
    context: &BTreeMap<String, String>,
) -> Result<Rendered, RenderError> {
    let part = |name: &'static str, source: &str| -> Result<String, RenderError> {
        let fail = |message: String, bound| RenderError {
            template: template.id.clone(),
            part: name,
            message,
            bound,
        };
        let (file, cap) = match name {
            "html" => ("body.html", MAX_HTML_OUTPUT),
            "text" => ("body.txt", MAX_TEXT_OUTPUT),
            _ => ("subject.txt", MAX_SUBJECT_OUTPUT),
        };
        veneer_core::email_check::check_template(source).map_err(|why| {
            let bound = (!why.starts_with("is not a valid")).then_some(Bound::Construct);
            fail(format!("the template {why}"), bound)
        })?;
        let compiled = ENV
            .template_from_named_str(file, source)
            .map_err(|err| fail(err.to_string(), None))?;
        let mut out = Capped {
            buf: Vec::new(),
            cap,
            over: false,
        };
        if let Err(err) = compiled.render_captured_to(context, &mut out) {
            return Err(if out.over {
                fail(
                    format!(
                        "the output is larger than {cap} bytes; shorten the template or the values"
                    ),
                    Some(Bound::Output),
                )
            } else if err.kind() == ErrorKind::OutOfFuel {
                fail(
                    format!("it runs more than {TEMPLATE_FUEL} instructions; loop over less"),
                    Some(Bound::Fuel),
                )
            } else if err.detail().is_some_and(|d| d.contains("recursion limit")) {
                fail(
                    format!("it nests deeper than {TEMPLATE_RECURSION} levels; flatten it"),
                    Some(Bound::Recursion),
                )
            } else if err.detail().is_some_and(|d| d.starts_with(RANGE_REFUSED)) {
                fail(err.to_string(), Some(Bound::Range))
            } else {
                fail(err.to_string(), None)
            });
        }
        // Whole `str` writes only, each taken or refused entirely: valid UTF-8.
        String::from_utf8(out.buf).map_err(|err| fail(err.to_string(), None))
    };
    let subject = part("subject", &template.subject)?;
    if subject.contains(['\r', '\n']) {
        return Err(RenderError {
            template: template.id.clone(),
            part: "subject",
            message: "the rendered subject contains a line break; remove it from the values".into(),
            bound: None,
        });
    }
    Ok(Rendered {
        subject,
        html: part("html", &template.html)?,
        text: part("text", &template.text)?,
        from_name: template.from_name.clone(),
        reply_to: template.reply_to.clone(),
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    fn template() -> EmailTemplate {
        EmailTemplate {
            id: "t".into(),
            subject: "Hi {{ name }}".into(),
            html: "<p>{{ name }}</p>".into(),
            text: "{{ name }}".into(),
            from_name: None,
            reply_to: None,
        }
    }

    fn ctx() -> BTreeMap<String, String> {
        BTreeMap::from([("name".to_owned(), "Ann".to_owned())])
    }

    /// `template()` with `part` replaced by `source`, rendered; its error.
    fn bomb(part: &str, source: &str) -> RenderError {
        let mut t = template();
        match part {
            "subject" => t.subject = source.into(),
            "html" => t.html = source.into(),
            _ => t.text = source.into(),
        }
        let started = Instant::now();
        let err = render(&t, &ctx()).expect_err(source);
        // Loose: the bounds stop it in milliseconds; minutes would be a freeze.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{source}: {:?}",
            started.elapsed()
        );
        assert_eq!(err.part, part, "{err}");
        err
    }

    #[test]
    fn escapes_html_but_not_text() {
        let ctx = BTreeMap::from([("name".to_owned(), "<b>Ann</b>".to_owned())]);
        let out = render(&template(), &ctx).unwrap();
        assert_eq!(out.html, "<p>&lt;b&gt;Ann&lt;&#x2f;b&gt;</p>");
        assert_eq!(out.text, "<b>Ann</b>");
    }

    #[test]
    fn a_missing_variable_is_an_error_naming_the_part() {
        let err = render(&template(), &BTreeMap::new()).unwrap_err();
        assert_eq!(err.part, "subject");
        assert_eq!(err.bound, None);
    }

    #[test]
    fn a_line_break_in_the_subject_is_refused() {
        let ctx = BTreeMap::from([("name".to_owned(), "a\r\nBcc: x@y".to_owned())]);
        assert!(render(&template(), &ctx).is_err());
    }

    #[test]
    fn loops_and_filters_within_the_bounds_render() {
        let mut t = template();
        t.text = "{% for i in range(3) %}{{ loop.index }}{{ name|upper }}{% endfor %}".into();
        assert_eq!(render(&t, &ctx()).unwrap().text, "1ANN2ANN3ANN");
        let mut t = template();
        t.text = format!("{{% for i in range({MAX_RANGE}) %}}.{{% endfor %}}");
        assert_eq!(render(&t, &ctx()).unwrap().text.len(), MAX_RANGE);
    }

    #[test]
    fn nested_range_loops_end_on_a_bound() {
        // The reported bomb: nested range(100000) loops in the subject.
        let err = bomb(
            "subject",
            "{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}",
        );
        assert_eq!(err.bound, Some(Bound::Range), "{err}");
        // Within the range cap, nesting runs out of fuel.
        let err = bomb(
            "text",
            "{% for a in range(1000) %}{% for b in range(1000) %}{% if b == -1 %}x{% endif %}{% endfor %}{% endfor %}",
        );
        assert_eq!(err.bound, Some(Bound::Fuel), "{err}");
        assert!(err.message.contains("instructions"), "{err}");
    }

    #[test]
    fn output_past_the_cap_is_refused() {
        // 1000 × 1 KiB asked of a 512 KiB text part: the writer refuses half
        // way, long before fuel runs out.
        let mut t = template();
        t.text = "{% for a in range(1000) %}{{ name }}{% endfor %}".into();
        let mut big = ctx();
        big.insert("name".into(), "z".repeat(1024));
        let err = render(&t, &big).unwrap_err();
        assert_eq!(
            (err.part, err.bound),
            ("text", Some(Bound::Output)),
            "{err}"
        );
        assert!(err.message.contains("larger than"), "{err}");
        // A huge value: the subject cap.
        let mut ctx = ctx();
        ctx.insert("name".into(), "y".repeat(MAX_SUBJECT_OUTPUT + 1));
        let err = render(&template(), &ctx).unwrap_err();
        assert_eq!((err.part, err.bound), ("subject", Some(Bound::Output)));
    }

    #[test]
    fn value_building_constructs_are_refused_before_compiling() {
        // Folded as constants at compile time, this would allocate 100 MB per
        // term; it is refused before minijinja compiles it.
        let err = bomb(
            "html",
            &format!(
                "{}{{{{ postal_address }}}}",
                "{{ 'x' * 99999999 ~ 'x' * 99999999 }}".repeat(20)
            ),
        );
        assert_eq!(err.bound, Some(Bound::Construct), "{err}");
        // Doubling through assignments, and recursion through a macro.
        for source in [
            "{% set s = name ~ name %}{% set s = s ~ s %}{{ s }}",
            "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
            "{% include 'body.txt' %}",
        ] {
            assert_eq!(
                bomb("text", source).bound,
                Some(Bound::Construct),
                "{source}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused() {
        let depth = TEMPLATE_RECURSION + 8;
        let source = format!(
            "{}x{}",
            "{% for a in [1] %}".repeat(depth),
            "{% endfor %}".repeat(depth)
        );
        let err = bomb("text", &source);
        assert_eq!(err.bound, Some(Bound::Recursion), "{err}");
    }
}
