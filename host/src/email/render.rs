//! Rendering: a customised template plus a context becomes the subject, HTML and
//! text of a message. minijinja with HTML auto-escaping for the HTML part and
//! strict undefined variables, so a missing value is an error rather than a
//! blank in a customer's inbox.

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};

use crate::base::EmailTemplate;

/// A rendered message body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// A template that does not render with the given context.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {part} of template `{template}` does not render: {message}")]
pub struct RenderError {
    /// The template id.
    pub template: String,
    /// subject, html or text.
    pub part: &'static str,
    /// minijinja's explanation (names the variable or the line).
    pub message: String,
}

/// Renders every part of `template` with `context`.
pub fn render(
    template: &EmailTemplate,
    context: &BTreeMap<String, String>,
) -> Result<Rendered, RenderError> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    let part = |name: &'static str, source: &str| -> Result<String, RenderError> {
        let fail = |err: minijinja::Error| RenderError {
            template: template.id.clone(),
            part: name,
            message: err.to_string(),
        };
        let file = match name {
            "html" => "body.html",
            "text" => "body.txt",
            _ => "subject.txt",
        };
        let compiled = env.template_from_named_str(file, source).map_err(fail)?;
        compiled.render(context).map_err(fail)
    };
    let subject = part("subject", &template.subject)?;
    if subject.contains(['\r', '\n']) {
        return Err(RenderError {
            template: template.id.clone(),
            part: "subject",
            message: "the rendered subject contains a line break; remove it from the values".into(),
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
    }

    #[test]
    fn a_line_break_in_the_subject_is_refused() {
        let ctx = BTreeMap::from([("name".to_owned(), "a\r\nBcc: x@y".to_owned())]);
        assert!(render(&template(), &ctx).is_err());
    }
}
