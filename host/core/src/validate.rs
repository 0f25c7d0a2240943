//! The invariants every configuration section must satisfy, whoever produced it: the base
//! files at load time and each tenant's plugin output before it is used.
//!
//! This module owns those rules and nothing else: it takes plain values, does no I/O, and
//! knows neither tenants nor the runtime. Each check stops at the first violation and names
//! where it is (`categories[12].parent`) and what to change, because the message is shown to
//! the plugin's author as is. Values quoted in messages are shortened and escaped: they may come
//! from a hostile plugin.

use std::collections::{HashMap, HashSet};

use minijinja::Environment;

use crate::base::{Category, CommissionDecision, EmailDef, EmailTemplate, Sale, SizeChart};

/// Beyond this many categories a tree is a mistake or an attack, and resolving it gets slow.
pub const MAX_CATEGORIES: usize = 10_000;
pub const MAX_CATEGORY_NAME_CHARS: usize = 200;
pub const MAX_SIZE_CHARTS: usize = 1_000;
pub const MAX_SIZE_CHART_ROWS: usize = 500;
pub const MAX_SUBJECT_CHARS: usize = 250;
pub const MAX_HTML_BYTES: usize = 512 * 1024;
pub const MAX_TEXT_BYTES: usize = 256 * 1024;

/// Variables every email body must use: the law requires an unsubscribe link and the sender's
/// postal address in marketing-capable mail.
pub const MANDATORY_EMAIL_VARIABLES: [&str; 2] = ["unsubscribe_url", "postal_address"];

/// One broken rule: where it is and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct Violation {
    pub path: String,
    pub message: String,
}

fn violation(path: impl Into<String>, message: impl Into<String>) -> Violation {
    Violation {
        path: path.into(),
        message: message.into(),
    }
}

/// Whether `s` is a valid id: `^[a-z0-9][a-z0-9-]{0,63}$`. Ids end up in URLs, cache keys and
/// log lines, so they stay plain.
pub fn is_valid_id(s: &str) -> bool {
    let bytes = s.as_bytes();
    matches!(bytes.first(), Some(b) if b.is_ascii_lowercase() || b.is_ascii_digit())
        && bytes.len() <= 64
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}

const ID_RULE: &str =
    "use 1 to 64 characters from a-z, 0-9 and '-', starting with a letter or digit";

/// A value for a message: backticked, escaped, and cut to a readable length.
fn quote(s: &str) -> String {
    const MAX: usize = 64;
    let mut out: String = s.chars().take(MAX).flat_map(char::escape_debug).collect();
    if s.chars().nth(MAX).is_some() {
        out.push('…');
    }
    format!("`{out}`")
}

/// The category tree: non-empty; ids unique and valid; every parent exists; no cycles; slugs
/// non-empty and unique among siblings; names non-empty, short and free of control characters.
pub fn categories(list: &[Category]) -> Result<(), Violation> {
    if list.is_empty() {
        return Err(violation(
            "categories",
            "is empty; keep at least one category",
        ));
    }
    if list.len() > MAX_CATEGORIES {
        return Err(violation(
            "categories",
            format!(
                "has {} categories, more than the limit of {MAX_CATEGORIES}; merge or drop some",
                list.len()
            ),
        ));
    }

    let mut index: HashMap<&str, usize> = HashMap::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let at = format!("categories[{i}]");
        if !is_valid_id(&c.id) {
            return Err(violation(
                format!("{at}.id"),
                format!("{} is not a valid category id; {ID_RULE}", quote(&c.id)),
            ));
        }
        if let Some(first) = index.insert(&c.id, i) {
            return Err(violation(
                format!("{at}.id"),
                format!(
                    "{} is already the id of categories[{first}]; ids must be unique, rename one",
                    quote(&c.id)
                ),
            ));
        }
        check_name(&format!("{at}.name"), &c.name, &c.id)?;
        check_slug(&format!("{at}.slug"), &c.slug, &c.id)?;
        for (j, attribute) in c.attributes.iter().enumerate() {
            if attribute.key.trim().is_empty() {
                return Err(violation(
                    format!("{at}.attributes[{j}].key"),
                    format!(
                        "is empty in category {}; give the attribute a key",
                        quote(&c.id)
                    ),
                ));
            }
        }
    }

    // Parent indices, once every id is known.
    let mut parents: Vec<Option<usize>> = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        match c.parent.as_deref() {
            None => parents.push(None),
            Some(p) => match index.get(p) {
                Some(&j) => parents.push(Some(j)),
                None => {
                    return Err(violation(
                        format!("categories[{i}].parent"),
                        format!(
                            "category {} names parent {}, which is not in the list; add the \
                             parent or change it",
                            quote(&c.id),
                            quote(p)
                        ),
                    ));
                }
            },
        }
    }
    check_acyclic(list, &parents)?;

    let mut siblings: HashMap<(Option<usize>, &str), usize> = HashMap::new();
    for (i, c) in list.iter().enumerate() {
        if let Some(first) = siblings.insert((parents[i], c.slug.as_str()), i) {
            return Err(violation(
                format!("categories[{i}].slug"),
                format!(
                    "{} is also the slug of sibling {} (categories[{first}]); slugs must be \
                     unique under one parent, change one",
                    quote(&c.slug),
                    quote(&list[first].id)
                ),
            ));
        }
    }
    Ok(())
}

fn check_name(path: &str, name: &str, id: &str) -> Result<(), Violation> {
    if name.trim().is_empty() {
        return Err(violation(
            path,
            format!("is empty in category {}; give it a display name", quote(id)),
        ));
    }
    let chars = name.chars().count();
    if chars > MAX_CATEGORY_NAME_CHARS {
        return Err(violation(
            path,
            format!("has {chars} characters, more than {MAX_CATEGORY_NAME_CHARS}; shorten it"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(violation(
            path,
            format!("{} contains a control character; remove it", quote(name)),
        ));
    }
    Ok(())
}

/// Slugs are URL path segments: besides being present they must not need escaping.
fn check_slug(path: &str, slug: &str, id: &str) -> Result<(), Violation> {
    if slug.is_empty() {
        return Err(violation(
            path,
            format!("is empty in category {}; give it a URL slug", quote(id)),
        ));
    }
    if slug
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Err(violation(
            path,
            format!(
                "{} contains whitespace, a control character or '/'; use a single URL segment \
                 such as `running-shoes`",
                quote(slug)
            ),
        ));
    }
    Ok(())
}

/// Walks up from every category; meeting a category already on the current walk is a cycle.
/// Each category is walked once overall, so this is linear in the list.
fn check_acyclic(list: &[Category], parents: &[Option<usize>]) -> Result<(), Violation> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unseen,
        OnWalk,
        Done,
    }
    let mut marks = vec![Mark::Unseen; list.len()];
    let mut walk: Vec<usize> = Vec::new();
    for start in 0..list.len() {
        walk.clear();
        let mut current = Some(start);
        while let Some(i) = current {
            match marks[i] {
                Mark::Done => break,
                Mark::OnWalk => {
                    let from = walk.iter().position(|&w| w == i).unwrap_or(0);
                    let mut chain: Vec<String> = walk[from..]
                        .iter()
                        .take(10)
                        .map(|&w| quote(&list[w].id))
                        .collect();
                    chain.push(quote(&list[i].id));
                    return Err(violation(
                        format!("categories[{i}].parent"),
                        format!(
                            "categories {} form a cycle; the categories must form a tree, so \
                             point one of these parents elsewhere or remove it",
                            chain.join(" → ")
                        ),
                    ));
                }
                Mark::Unseen => {
                    marks[i] = Mark::OnWalk;
                    walk.push(i);
                    current = parents[i];
                }
            }
        }
        for &w in &walk {
            marks[w] = Mark::Done;
        }
    }
    Ok(())
}

/// Size charts: ids unique and valid; at least one column, names unique; at least one row,
/// each with one value per column and a unique label; numeric columns never decrease.
pub fn size_charts(list: &[SizeChart]) -> Result<(), Violation> {
    if list.len() > MAX_SIZE_CHARTS {
        return Err(violation(
            "size_charts",
            format!(
                "has {} charts, more than the limit of {MAX_SIZE_CHARTS}; merge or drop some",
                list.len()
            ),
        ));
    }
    let mut ids: HashMap<&str, usize> = HashMap::new();
    for (i, chart) in list.iter().enumerate() {
        let at = format!("size_charts[{i}]");
        if !is_valid_id(&chart.id) {
            return Err(violation(
                format!("{at}.id"),
                format!(
                    "{} is not a valid size chart id; {ID_RULE}",
                    quote(&chart.id)
                ),
            ));
        }
        if let Some(first) = ids.insert(&chart.id, i) {
            return Err(violation(
                format!("{at}.id"),
                format!(
                    "{} is already the id of size_charts[{first}]; ids must be unique, rename one",
                    quote(&chart.id)
                ),
            ));
        }
        size_chart(&at, chart)?;
    }
    Ok(())
}

fn size_chart(at: &str, chart: &SizeChart) -> Result<(), Violation> {
    let id = quote(&chart.id);
    if chart.name.trim().is_empty() || chart.name.chars().any(char::is_control) {
        return Err(violation(
            format!("{at}.name"),
            format!("of chart {id} is empty or has control characters; give it a display name"),
        ));
    }
    if chart.columns.is_empty() {
        return Err(violation(
            format!("{at}.columns"),
            format!("chart {id} has no columns; add at least one, such as \"EU\""),
        ));
    }
    let mut names = HashSet::new();
    for (j, column) in chart.columns.iter().enumerate() {
        if column.trim().is_empty() {
            return Err(violation(
                format!("{at}.columns[{j}]"),
                format!("is empty in chart {id}; name the column"),
            ));
        }
        if !names.insert(column.as_str()) {
            return Err(violation(
                format!("{at}.columns[{j}]"),
                format!(
                    "{} appears twice in chart {id}; rename or drop one",
                    quote(column)
                ),
            ));
        }
    }
    if chart.rows.is_empty() {
        return Err(violation(
            format!("{at}.rows"),
            format!("chart {id} has no rows; add at least one size"),
        ));
    }
    if chart.rows.len() > MAX_SIZE_CHART_ROWS {
        return Err(violation(
            format!("{at}.rows"),
            format!(
                "chart {id} has {} rows, more than the limit of {MAX_SIZE_CHART_ROWS}; split it",
                chart.rows.len()
            ),
        ));
    }
    let mut labels = HashSet::new();
    for (k, row) in chart.rows.iter().enumerate() {
        if row.label.trim().is_empty() {
            return Err(violation(
                format!("{at}.rows[{k}].label"),
                format!("is empty in chart {id}; label the size"),
            ));
        }
        if !labels.insert(row.label.as_str()) {
            return Err(violation(
                format!("{at}.rows[{k}].label"),
                format!(
                    "{} appears twice in chart {id}; labels must be unique",
                    quote(&row.label)
                ),
            ));
        }
        if row.values.len() != chart.columns.len() {
            return Err(violation(
                format!("{at}.rows[{k}].values"),
                format!(
                    "row {} has {} values but chart {id} has {} columns; give exactly one value \
                     per column, in column order",
                    quote(&row.label),
                    row.values.len(),
                    chart.columns.len()
                ),
            ));
        }
    }

    // A column of numbers is a measurement or a size system: sizes go up down the rows, so a
    // decrease is a typo or a misplaced row. Columns with any text (UK ring letters) are exempt.
    for (j, column) in chart.columns.iter().enumerate() {
        let numbers: Option<Vec<f64>> = chart
            .rows
            .iter()
            .map(|row| {
                row.values[j]
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|n| n.is_finite())
            })
            .collect();
        let Some(numbers) = numbers else { continue };
        for k in 1..numbers.len() {
            if numbers[k] < numbers[k - 1] {
                return Err(violation(
                    format!("{at}.rows[{k}].values[{j}]"),
                    format!(
                        "column {} of chart {id} holds numbers, which must not decrease down the \
                         rows, but {} (row {}) follows {}; put the rows in size order or fix \
                         the value",
                        quote(column),
                        quote(&chart.rows[k].values[j]),
                        quote(&chart.rows[k].label),
                        quote(&chart.rows[k - 1].values[j])
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Every category a size chart is linked to exists.
pub fn size_chart_categories(list: &[SizeChart], categories: &[Category]) -> Result<(), Violation> {
    let known: HashSet<&str> = categories.iter().map(|c| c.id.as_str()).collect();
    for (i, chart) in list.iter().enumerate() {
        for (j, id) in chart.category_ids.iter().enumerate() {
            if !known.contains(id.as_str()) {
                return Err(violation(
                    format!("size_charts[{i}].category_ids[{j}]"),
                    format!(
                        "chart {} links category {}, which does not exist; use an existing \
                         category id or remove it",
                        quote(&chart.id),
                        quote(id)
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// A product's category as a plugin chose it (`product-category`, WIT 0.2.0):
/// none, or the id of a category of the tenant's effective tree.
pub fn product_category(chosen: Option<&str>, categories: &[Category]) -> Result<(), Violation> {
    match chosen {
        Some(id) if !categories.iter().any(|c| c.id == id) => Err(violation(
            "category",
            format!(
                "`{id}` is not a category of the tenant's tree; return the id of one of its categories, or none"
            ),
        )),
        _ => Ok(()),
    }
}

/// A commission decision for `sale`: a named rule, a rate of at most 100 %, and a fee within
/// `[min_fee, max_fee]` and never above the gross. A sale smaller than the minimum fee may be
/// charged exactly its gross.
pub fn commission(sale: &Sale, decision: &CommissionDecision) -> Result<(), Violation> {
    let gross = sale.gross();
    let d = decision;
    if d.rule_id.trim().is_empty() {
        return Err(violation(
            "rule_id",
            "is empty; name the rule that decided the fee",
        ));
    }
    if d.rate_bps > 10_000 {
        return Err(violation(
            "rate_bps",
            format!(
                "{} is above 10000 (100 %); rates are basis points",
                d.rate_bps
            ),
        ));
    }
    if d.min_fee > d.max_fee {
        return Err(violation(
            "min_fee",
            format!(
                "{} is above max_fee {}; swap or fix them",
                d.min_fee, d.max_fee
            ),
        ));
    }
    if d.fee > gross {
        return Err(violation(
            "fee",
            format!(
                "{} is above the sale's gross {gross}; a fee can take at most the whole line",
                d.fee
            ),
        ));
    }
    if d.fee > d.max_fee {
        return Err(violation(
            "fee",
            format!(
                "{} is above max_fee {}; cap it at max_fee",
                d.fee, d.max_fee
            ),
        ));
    }
    let gross_below_min = gross < d.min_fee && d.fee == gross;
    if d.fee < d.min_fee && !gross_below_min {
        return Err(violation(
            "fee",
            format!(
                "{} is below min_fee {}; raise it to min_fee (or to the gross {gross} when the \
                 gross is smaller)",
                d.fee, d.min_fee
            ),
        ));
    }
    Ok(())
}

/// A (possibly plugin-changed) email `template` against its base definition: same id; a
/// one-line subject; subject, html and text parse as templates; both bodies use
/// `unsubscribe_url` and `postal_address`; every required variable is used by a body; sender
/// fields cannot inject headers; sizes are bounded.
pub fn email(template: &EmailTemplate, def: &EmailDef) -> Result<(), Violation> {
    let t = template;
    if t.id != def.template.id {
        return Err(violation(
            "id",
            format!(
                "is {} but this is template {}; keep the id unchanged",
                quote(&t.id),
                quote(&def.template.id)
            ),
        ));
    }
    let subject_chars = t.subject.chars().count();
    if t.subject.trim().is_empty() {
        return Err(violation("subject", "is empty; give the email a subject"));
    }
    if t.subject.contains(['\r', '\n']) {
        return Err(violation(
            "subject",
            "contains a line break; a subject is one line, join it with spaces",
        ));
    }
    if subject_chars > MAX_SUBJECT_CHARS {
        return Err(violation(
            "subject",
            format!("has {subject_chars} characters, more than {MAX_SUBJECT_CHARS}; shorten it"),
        ));
    }
    // Sizes first: parsing a huge body is the cost the limit exists to avoid.
    for (field, body, max) in [
        ("html", &t.html, MAX_HTML_BYTES),
        ("text", &t.text, MAX_TEXT_BYTES),
    ] {
        if body.len() > max {
            return Err(violation(
                field,
                format!(
                    "is {} bytes, more than the limit of {} KiB; shorten it",
                    body.len(),
                    max / 1024
                ),
            ));
        }
    }

    let env = Environment::new();
    let mut used_anywhere = HashSet::new();
    for (field, source) in [
        ("subject", &t.subject),
        ("html", &t.html),
        ("text", &t.text),
    ] {
        // The subset first: compiling folds constants, so a template outside it
        // could allocate gigabytes before anything runs (see email_check::check_template).
        crate::email_check::check_template(source).map_err(|why| {
            let fix = if why.starts_with("is not a valid") {
                "fix the template syntax"
            } else {
                "rewrite that part"
            };
            violation(field, format!("{why}; {fix}"))
        })?;
        let parsed = env.template_from_named_str(field, source).map_err(|e| {
            violation(
                field,
                format!("is not a valid template: {e}; fix the template syntax"),
            )
        })?;
        let used = parsed.undeclared_variables(false);
        if field != "subject" {
            for name in MANDATORY_EMAIL_VARIABLES {
                if !used.contains(name) {
                    return Err(violation(
                        field,
                        format!(
                            "does not use `{{{{ {name} }}}}`; every email body must include it, \
                             add it (usually in the footer)"
                        ),
                    ));
                }
            }
            used_anywhere.extend(used);
        }
    }
    for name in &def.required {
        if !used_anywhere.contains(name) {
            return Err(violation(
                "html",
                format!(
                    "template {} must use `{{{{ {name} }}}}` in its html or text body, and \
                     neither does; add it",
                    quote(&t.id)
                ),
            ));
        }
    }

    if let Some(from_name) = &t.from_name
        && (from_name.trim().is_empty() || from_name.chars().any(char::is_control))
    {
        return Err(violation(
            "from_name",
            "is empty or contains a line break or control character; give a plain name on one \
             line, or leave it out",
        ));
    }
    if let Some(from_name) = &t.from_name {
        crate::email_check::check_display_name(from_name)
            .map_err(|why| violation("from_name", format!("{} {why}", quote(from_name))))?;
    }
    if let Some(reply_to) = &t.reply_to {
        crate::email_check::check_address(reply_to).map_err(|why| {
            violation(
                "reply_to",
                format!(
                    "{} {why}; give one address such as `help@example.com`",
                    quote(reply_to)
                ),
            )
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::base::{Attribute, SizeRow};

    fn cat(id: &str, parent: Option<&str>, slug: &str) -> Category {
        Category {
            id: id.into(),
            parent: parent.map(Into::into),
            name: id.to_uppercase(),
            slug: slug.into(),
            position: 0,
            attributes: Vec::new(),
        }
    }

    fn tree() -> Vec<Category> {
        vec![
            cat("shoes", None, "shoes"),
            cat("sneakers", Some("shoes"), "sneakers"),
            cat("running", Some("sneakers"), "running"),
            cat("bags", None, "bags"),
            cat("bags-running", Some("bags"), "running"),
        ]
    }

    fn category_err(edit: impl FnOnce(&mut Vec<Category>)) -> Violation {
        let mut list = tree();
        edit(&mut list);
        categories(&list).expect_err("edit should be rejected")
    }

    #[test]
    fn ids() {
        for ok in ["a", "0", "shoes-2", &"a".repeat(64)] {
            assert!(is_valid_id(ok), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a b", "é", &"a".repeat(65)] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn categories_pass() {
        assert_eq!(categories(&tree()), Ok(()));
    }

    #[test]
    fn categories_fail() {
        assert_eq!(categories(&[]).expect_err("empty").path, "categories");

        let v = category_err(|l| l[1].id = "Sneakers".into());
        assert_eq!(v.path, "categories[1].id");

        let v = category_err(|l| l[3].id = "shoes".into());
        assert_eq!(v.path, "categories[3].id");
        assert!(v.message.contains("categories[0]"), "{v}");

        let v = category_err(|l| l[2].parent = Some("nope".into()));
        assert_eq!(
            v.to_string(),
            "categories[2].parent: category `running` names parent `nope`, which is not in the \
             list; add the parent or change it"
        );

        let v = category_err(|l| l[0].parent = Some("running".into()));
        assert!(
            v.path.ends_with(".parent") && v.message.contains("cycle"),
            "{v}"
        );
        assert!(
            v.message.contains("`shoes`") && v.message.contains("`running`"),
            "{v}"
        );

        let v = category_err(|l| l[3].parent = Some("bags".into()));
        assert_eq!(v.path, "categories[3].parent");
        assert!(v.message.contains("`bags` → `bags`"), "{v}");

        // A slug may repeat under different parents, not under one.
        assert_eq!(
            categories(&[cat("a", None, "x"), cat("b", Some("a"), "x")]),
            Ok(())
        );
        let v = category_err(|l| l.push(cat("shoes-running", Some("sneakers"), "running")));
        assert_eq!(v.path, "categories[5].slug");
        assert!(v.message.contains("sibling `running`"), "{v}");

        let v = category_err(|l| l[0].slug = String::new());
        assert_eq!(v.path, "categories[0].slug");
        let v = category_err(|l| l[0].slug = "a/b".into());
        assert_eq!(v.path, "categories[0].slug");

        let v = category_err(|l| l[0].name = "  ".into());
        assert_eq!(v.path, "categories[0].name");
        let v = category_err(|l| l[0].name = "x".repeat(201));
        assert_eq!(v.path, "categories[0].name");
        let v = category_err(|l| l[0].name = "Shoes\n".into());
        assert_eq!(v.path, "categories[0].name");
        assert!(
            v.message.contains("`Shoes\\n`"),
            "escaped in the message: {v}"
        );

        let v = category_err(|l| {
            l[0].attributes.push(Attribute {
                key: String::new(),
                value: "x".into(),
            })
        });
        assert_eq!(v.path, "categories[0].attributes[0].key");

        let many: Vec<Category> = (0..=MAX_CATEGORIES)
            .map(|i| cat(&format!("c{i}"), None, &format!("c{i}")))
            .collect();
        assert_eq!(categories(&many).expect_err("too many").path, "categories");
        assert_eq!(categories(&many[..MAX_CATEGORIES]), Ok(()));
    }

    #[test]
    fn long_deep_chain_is_fine_and_long_cycle_found() {
        let mut chain: Vec<Category> = (0..5_000)
            .map(|i| {
                let parent = (i > 0).then(|| format!("c{}", i - 1));
                cat(&format!("c{i}"), parent.as_deref(), "s")
            })
            .collect();
        assert_eq!(categories(&chain), Ok(()));
        chain[0].parent = Some("c4999".into());
        let v = categories(&chain).expect_err("cycle");
        assert!(v.message.contains("cycle"), "{v}");
        assert!(
            v.message.len() < 1_000,
            "the chain is shortened: {}",
            v.message.len()
        );
    }

    fn chart() -> SizeChart {
        let row = |label: &str, values: &[&str]| SizeRow {
            label: label.into(),
            values: values.iter().map(|v| (*v).into()).collect(),
        };
        SizeChart {
            id: "rings".into(),
            name: "Rings".into(),
            category_ids: vec!["bags".into()],
            columns: vec!["US".into(), "UK".into(), "EU".into()],
            rows: vec![
                row("US 5", &["5", "J½", "49"]),
                row("US 6", &["6", "L½", "52"]),
                row("US 7", &["7", "N½", "52"]),
            ],
        }
    }

    fn chart_err(edit: impl FnOnce(&mut SizeChart)) -> Violation {
        let mut c = chart();
        edit(&mut c);
        size_charts(&[c]).expect_err("edit should be rejected")
    }

    #[test]
    fn size_charts_pass() {
        assert_eq!(size_charts(&[]), Ok(()));
        assert_eq!(size_charts(&[chart()]), Ok(()));
        // A text column may go in any order; so may a column with one text value.
        let mut c = chart();
        c.rows[2].values[1] = "A".into();
        c.rows[2].values[0] = "4".into();
        c.rows[0].values[0] = "small".into();
        assert_eq!(size_charts(&[c]), Ok(()));
        assert_eq!(size_chart_categories(&[chart()], &tree()), Ok(()));
    }

    #[test]
    fn size_charts_fail() {
        let v = size_charts(&[chart(), chart()]).expect_err("duplicate");
        assert_eq!(v.path, "size_charts[1].id");
        assert_eq!(
            chart_err(|c| c.id = "Rings".into()).path,
            "size_charts[0].id"
        );
        assert_eq!(
            chart_err(|c| c.name = String::new()).path,
            "size_charts[0].name"
        );
        assert_eq!(
            chart_err(|c| c.columns.clear()).path,
            "size_charts[0].columns"
        );
        assert_eq!(
            chart_err(|c| c.columns[2] = "US".into()).path,
            "size_charts[0].columns[2]"
        );
        assert_eq!(
            chart_err(|c| c.columns[2] = " ".into()).path,
            "size_charts[0].columns[2]"
        );
        assert_eq!(chart_err(|c| c.rows.clear()).path, "size_charts[0].rows");
        assert_eq!(
            chart_err(|c| c.rows[1].label = "US 5".into()).path,
            "size_charts[0].rows[1].label"
        );
        assert_eq!(
            chart_err(|c| c.rows[1].label = String::new()).path,
            "size_charts[0].rows[1].label"
        );
        let v = chart_err(|c| {
            c.rows[1].values.pop();
        });
        assert_eq!(v.path, "size_charts[0].rows[1].values");
        assert!(v.message.contains("3 columns"), "{v}");
        let v = chart_err(|c| c.rows[2].values[2] = "51.5".into());
        assert_eq!(v.path, "size_charts[0].rows[2].values[2]");
        assert!(
            v.message.contains("column `EU`") && v.message.contains("`51.5`"),
            "{v}"
        );
        let v = chart_err(|c| {
            let row = c.rows[0].clone();
            c.rows = (0..=MAX_SIZE_CHART_ROWS)
                .map(|i| SizeRow {
                    label: format!("r{i}"),
                    ..row.clone()
                })
                .collect();
        });
        assert_eq!(v.path, "size_charts[0].rows");

        let mut c = chart();
        c.category_ids.push("nope".into());
        let v = size_chart_categories(&[c], &tree()).expect_err("unknown category");
        assert_eq!(v.path, "size_charts[0].category_ids[1]");
        assert!(v.message.contains("`nope`"), "{v}");
    }

    fn sale(gross: u64) -> Sale {
        Sale {
            order_id: "o".into(),
            sku: "s".into(),
            category_id: "bags".into(),
            unit_price: gross,
            quantity: 1,
            currency: "EUR".into(),
            seller_id: None,
            attributes: Vec::new(),
        }
    }

    fn decision(fee: u64) -> CommissionDecision {
        CommissionDecision {
            rule_id: "bags".into(),
            rate_bps: 1_000,
            min_fee: 100,
            max_fee: 5_000,
            fee,
            note: String::new(),
        }
    }

    #[test]
    fn commission_passes() {
        assert_eq!(commission(&sale(10_000), &decision(1_000)), Ok(()));
        assert_eq!(commission(&sale(10_000), &decision(100)), Ok(()));
        assert_eq!(commission(&sale(100_000), &decision(5_000)), Ok(()));
        // A sale below the minimum fee may be charged its whole gross.
        assert_eq!(commission(&sale(50), &decision(50)), Ok(()));
        assert_eq!(commission(&sale(0), &decision(0)), Ok(()));
    }

    #[test]
    fn commission_fails() {
        let path = |s: Sale, d: CommissionDecision| commission(&s, &d).expect_err("bad").path;
        assert_eq!(path(sale(10_000), decision(99)), "fee");
        assert_eq!(path(sale(100_000), decision(5_001)), "fee");
        assert_eq!(path(sale(50), decision(40)), "fee");
        assert_eq!(path(sale(50), decision(100)), "fee");
        assert_eq!(
            path(
                sale(10_000),
                CommissionDecision {
                    rule_id: " ".into(),
                    ..decision(1_000)
                }
            ),
            "rule_id"
        );
        assert_eq!(
            path(
                sale(10_000),
                CommissionDecision {
                    rate_bps: 10_001,
                    ..decision(1_000)
                }
            ),
            "rate_bps"
        );
        assert_eq!(
            path(
                sale(10_000),
                CommissionDecision {
                    min_fee: 6_000,
                    ..decision(5_000)
                }
            ),
            "min_fee"
        );
        // A hostile quantity saturates rather than making the gross small.
        let mut s = sale(u64::MAX);
        s.quantity = u32::MAX;
        assert_eq!(commission(&s, &decision(5_000)), Ok(()));
    }

    const HTML: &str = "<p>Hi {{ customer_name }}, order {{ order_id }}.</p>\
                        <p>{{ postal_address }} <a href=\"{{ unsubscribe_url }}\">unsubscribe</a></p>";
    const TEXT: &str = "Hi {{ customer_name }}\n{{ postal_address }}\n{{ unsubscribe_url }}\n";

    fn def() -> EmailDef {
        EmailDef {
            template: EmailTemplate {
                id: "order-confirmation".into(),
                subject: "Order {{ order_id }}".into(),
                html: HTML.into(),
                text: TEXT.into(),
                from_name: None,
                reply_to: None,
            },
            required: vec!["customer_name".into(), "order_id".into()],
            sample: BTreeMap::new(),
        }
    }

    fn email_err(edit: impl FnOnce(&mut EmailTemplate)) -> Violation {
        let d = def();
        let mut t = d.template.clone();
        edit(&mut t);
        email(&t, &d).expect_err("edit should be rejected")
    }

    #[test]
    fn email_passes() {
        let d = def();
        assert_eq!(email(&d.template, &d), Ok(()));
        let mut t = d.template.clone();
        t.from_name = Some("Acme Shop".into());
        t.reply_to = Some("help@shop.example.com".into());
        // Loops and filters count as uses; `order_id` in the html alone is enough.
        t.text = "{% for x in [1] %}{{ customer_name|upper }}{% endfor %}\n\
                  {{ postal_address }} {{ unsubscribe_url }}"
            .into();
        assert_eq!(email(&t, &d), Ok(()));
    }

    #[test]
    fn email_fails() {
        assert_eq!(email_err(|t| t.id = "other".into()).path, "id");
        assert_eq!(email_err(|t| t.subject = " ".into()).path, "subject");
        assert_eq!(
            email_err(|t| t.subject = "a\r\nBcc: x@evil.test".into()).path,
            "subject"
        );
        assert_eq!(email_err(|t| t.subject = "x".repeat(251)).path, "subject");
        assert_eq!(email_err(|t| t.subject = "{{ oops".into()).path, "subject");

        let v = email_err(|t| t.html = "{% if %}".into());
        assert_eq!(v.path, "html");
        assert!(v.message.contains("syntax error"), "{v}");
        let v = email_err(|t| t.text = "{{ postal_address }} {% endfor %}".into());
        assert_eq!(v.path, "text");

        let v = email_err(|t| t.html = HTML.replace("{{ unsubscribe_url }}", "#"));
        assert_eq!(v.path, "html");
        assert!(v.message.contains("unsubscribe_url"), "{v}");
        let v = email_err(|t| t.text = TEXT.replace("{{ postal_address }}", ""));
        assert_eq!(v.path, "text");
        assert!(v.message.contains("postal_address"), "{v}");
        // Mentioning the name as text does not count.
        let v = email_err(|t| t.text = TEXT.replace("{{ postal_address }}", "postal_address"));
        assert_eq!(v.path, "text");

        let v = email_err(|t| t.html = HTML.replace("{{ order_id }}", "123"));
        assert!(v.message.contains("order_id"), "{v}");
        // The subject alone does not carry a required variable.
        assert!(def().template.subject.contains("order_id"));

        assert_eq!(
            email_err(|t| t.html = "x".repeat(MAX_HTML_BYTES + 1)).path,
            "html"
        );
        assert_eq!(
            email_err(|t| t.text = "x".repeat(MAX_TEXT_BYTES + 1)).path,
            "text"
        );

        assert_eq!(
            email_err(|t| t.from_name = Some("Acme\nBcc: x".into())).path,
            "from_name"
        );
        assert_eq!(
            email_err(|t| t.from_name = Some(String::new())).path,
            "from_name"
        );
        for bad in [
            "help",
            "a@b@example.com",
            "@example.com",
            "help@localhost",
            "help@example.com.",
            "help @example.com",
            "help@example.com\r\nBcc: x@evil.test",
            "a@example.com,b@example.com",
        ] {
            let v = email_err(|t| t.reply_to = Some(bad.into()));
            assert_eq!(v.path, "reply_to", "{bad}");
        }
    }
}
