//! What changes between two effective configurations, section by section, in
//! terms a merchant reads: categories added, removed, renamed and moved;
//! size charts added and removed, their columns and rows changed; each email
//! template's subject and bodies as a unified text diff. And the blast radius
//! of a commission change over a set of sales ([`BlastRadius`]).

use std::collections::BTreeMap;

use serde::Serialize;
use similar::TextDiff;

use crate::base::{Category, EmailTemplate, Sale, SizeChart};

/// One effective configuration's sections, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct Sections<'a> {
    pub categories: &'a [Category],
    pub size_charts: &'a [SizeChart],
    pub emails: &'a BTreeMap<String, EmailTemplate>,
}

/// The difference, `before` → `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ConfigDiff {
    /// Nothing changes.
    pub unchanged: bool,
    pub categories: CategoriesDiff,
    pub size_charts: SizeChartsDiff,
    /// Templates that change, by id.
    pub emails: Vec<EmailDiff>,
}

/// Category changes, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CategoriesDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub renamed: Vec<Renamed>,
    pub moved: Vec<Moved>,
}

/// A category whose name changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Renamed {
    pub id: String,
    pub from: String,
    pub to: String,
}

/// A category whose parent or position changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Moved {
    pub id: String,
    pub from_parent: Option<String>,
    pub to_parent: Option<String>,
    pub from_position: u32,
    pub to_position: u32,
}

/// Size chart changes, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SizeChartsDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<ChartChange>,
}

/// What changes inside one size chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ChartChange {
    pub id: String,
    /// The columns before and after, when they change.
    pub columns: Option<(Vec<String>, Vec<String>)>,
    /// Row labels added, removed, and kept with other values.
    pub rows_added: Vec<String>,
    pub rows_removed: Vec<String>,
    pub rows_changed: Vec<String>,
}

/// One template's changes as unified diffs (`None`: that part is the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EmailDiff {
    pub id: String,
    pub subject: Option<String>,
    pub html: Option<String>,
    pub text: Option<String>,
    pub from_name: Option<(Option<String>, Option<String>)>,
    pub reply_to: Option<(Option<String>, Option<String>)>,
}

/// The difference between `before` and `after`.
pub fn diff(before: Sections<'_>, after: Sections<'_>) -> ConfigDiff {
    let categories = categories(before.categories, after.categories);
    let size_charts = size_charts(before.size_charts, after.size_charts);
    let emails = emails(before.emails, after.emails);
    let unchanged = categories == CategoriesDiff::default()
        && size_charts == SizeChartsDiff::default()
        && emails.is_empty();
    ConfigDiff {
        unchanged,
        categories,
        size_charts,
        emails,
    }
}

fn categories(before: &[Category], after: &[Category]) -> CategoriesDiff {
    let find = |list: &[Category], id: &str| list.iter().find(|c| c.id == id).cloned();
    let mut out = CategoriesDiff::default();
    for b in before {
        match find(after, &b.id) {
            None => out.removed.push(b.id.clone()),
            Some(a) => {
                if a.name != b.name {
                    out.renamed.push(Renamed {
                        id: b.id.clone(),
                        from: b.name.clone(),
                        to: a.name.clone(),
                    });
                }
                if a.parent != b.parent || a.position != b.position {
                    out.moved.push(Moved {
                        id: b.id.clone(),
                        from_parent: b.parent.clone(),
                        to_parent: a.parent.clone(),
                        from_position: b.position,
                        to_position: a.position,
                    });
                }
            }
        }
    }
    out.added = after
        .iter()
        .filter(|a| find(before, &a.id).is_none())
        .map(|a| a.id.clone())
        .collect();
    out
}

fn size_charts(before: &[SizeChart], after: &[SizeChart]) -> SizeChartsDiff {
    let mut out = SizeChartsDiff::default();
    for b in before {
        let Some(a) = after.iter().find(|a| a.id == b.id) else {
            out.removed.push(b.id.clone());
            continue;
        };
        let row = |rows: &[crate::base::SizeRow], label: &str| {
            rows.iter().find(|r| r.label == label).cloned()
        };
        let change = ChartChange {
            id: b.id.clone(),
            columns: (a.columns != b.columns).then(|| (b.columns.clone(), a.columns.clone())),
            rows_added: a
                .rows
                .iter()
                .filter(|r| row(&b.rows, &r.label).is_none())
                .map(|r| r.label.clone())
                .collect(),
            rows_removed: b
                .rows
                .iter()
                .filter(|r| row(&a.rows, &r.label).is_none())
                .map(|r| r.label.clone())
                .collect(),
            rows_changed: b
                .rows
                .iter()
                .filter(|r| row(&a.rows, &r.label).is_some_and(|n| n.values != r.values))
                .map(|r| r.label.clone())
                .collect(),
        };
        if change.columns.is_some()
            || !change.rows_added.is_empty()
            || !change.rows_removed.is_empty()
            || !change.rows_changed.is_empty()
        {
            out.changed.push(change);
        }
    }
    out.added = after
        .iter()
        .filter(|a| !before.iter().any(|b| b.id == a.id))
        .map(|a| a.id.clone())
        .collect();
    out
}

fn text_diff(before: &str, after: &str) -> Option<String> {
    (before != after).then(|| {
        TextDiff::from_lines(before, after)
            .unified_diff()
            .context_radius(2)
            .header("live", "draft")
            .to_string()
    })
}

fn emails(
    before: &BTreeMap<String, EmailTemplate>,
    after: &BTreeMap<String, EmailTemplate>,
) -> Vec<EmailDiff> {
    let mut out = Vec::new();
    for (id, b) in before {
        let Some(a) = after.get(id) else { continue };
        let change = EmailDiff {
            id: id.clone(),
            subject: text_diff(&b.subject, &a.subject),
            html: text_diff(&b.html, &a.html),
            text: text_diff(&b.text, &a.text),
            from_name: (a.from_name != b.from_name)
                .then(|| (b.from_name.clone(), a.from_name.clone())),
            reply_to: (a.reply_to != b.reply_to).then(|| (b.reply_to.clone(), a.reply_to.clone())),
        };
        if change.subject.is_some()
            || change.html.is_some()
            || change.text.is_some()
            || change.from_name.is_some()
            || change.reply_to.is_some()
        {
            out.push(change);
        }
    }
    out
}

/// What a commission change does to a set of sales: lines whose fee
/// changes, totals before and after (in the sales' currency), the largest
/// increase and decrease on one line, and the same per category.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BlastRadius {
    pub lines: u64,
    pub affected: u64,
    pub total_before: u64,
    pub total_after: u64,
    pub largest_increase: Option<LineChange>,
    pub largest_decrease: Option<LineChange>,
    pub per_category: BTreeMap<String, CategoryImpact>,
}

/// One line's fee before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LineChange {
    pub order_id: String,
    pub sku: String,
    pub category_id: String,
    pub before: u64,
    pub after: u64,
}

/// One category's share of a [`BlastRadius`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CategoryImpact {
    pub lines: u64,
    pub affected: u64,
    pub total_before: u64,
    pub total_after: u64,
}

impl BlastRadius {
    /// Adds one sale with its fee before and after.
    pub fn add(&mut self, sale: &Sale, before: u64, after: u64) {
        self.lines += 1;
        self.total_before = self.total_before.saturating_add(before);
        self.total_after = self.total_after.saturating_add(after);
        let category = self
            .per_category
            .entry(sale.category_id.clone())
            .or_default();
        category.lines += 1;
        category.total_before = category.total_before.saturating_add(before);
        category.total_after = category.total_after.saturating_add(after);
        if before == after {
            return;
        }
        self.affected += 1;
        category.affected += 1;
        let change = LineChange {
            order_id: sale.order_id.clone(),
            sku: sale.sku.clone(),
            category_id: sale.category_id.clone(),
            before,
            after,
        };
        let delta = i128::from(after) - i128::from(before);
        let size = |c: &LineChange| i128::from(c.after) - i128::from(c.before);
        if delta > 0
            && self
                .largest_increase
                .as_ref()
                .is_none_or(|c| delta > size(c))
        {
            self.largest_increase = Some(change);
        } else if delta < 0
            && self
                .largest_decrease
                .as_ref()
                .is_none_or(|c| delta < size(c))
        {
            self.largest_decrease = Some(change);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::SizeRow;

    fn cat(id: &str, name: &str, parent: Option<&str>, position: u32) -> Category {
        Category {
            id: id.into(),
            parent: parent.map(Into::into),
            name: name.into(),
            slug: id.into(),
            position,
            attributes: Vec::new(),
        }
    }

    fn chart(id: &str, columns: &[&str], rows: &[(&str, &[&str])]) -> SizeChart {
        SizeChart {
            id: id.into(),
            name: id.into(),
            category_ids: Vec::new(),
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: rows
                .iter()
                .map(|(label, values)| SizeRow {
                    label: label.to_string(),
                    values: values.iter().map(|v| v.to_string()).collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn every_kind_of_change_is_named() {
        let before_cats = [
            cat("a", "A", None, 1),
            cat("b", "B", None, 2),
            cat("c", "C", None, 3),
        ];
        let after_cats = [
            cat("a", "Alpha", None, 1),
            cat("c", "C", Some("a"), 3),
            cat("d", "D", None, 4),
        ];
        let before_charts = [
            chart("s", &["EU"], &[("S", &["36"]), ("M", &["38"])]),
            chart("gone", &[], &[]),
        ];
        let after_charts = [chart(
            "s",
            &["EU", "US"],
            &[("S", &["36", "4"]), ("L", &["40", "8"])],
        )];
        let template = |subject: &str| EmailTemplate {
            id: "welcome".into(),
            subject: subject.into(),
            html: "<p>Hi</p>".into(),
            text: "Hi".into(),
            from_name: None,
            reply_to: None,
        };
        let before_emails = BTreeMap::from([("welcome".to_owned(), template("Welcome"))]);
        let after_emails = BTreeMap::from([("welcome".to_owned(), template("Welcome to Acme"))]);
        let d = diff(
            Sections {
                categories: &before_cats,
                size_charts: &before_charts,
                emails: &before_emails,
            },
            Sections {
                categories: &after_cats,
                size_charts: &after_charts,
                emails: &after_emails,
            },
        );
        assert!(!d.unchanged);
        assert_eq!(d.categories.added, ["d"]);
        assert_eq!(d.categories.removed, ["b"]);
        assert_eq!(d.categories.renamed[0].to, "Alpha");
        assert_eq!(d.categories.moved[0].id, "c");
        assert_eq!(d.size_charts.removed, ["gone"]);
        let s = &d.size_charts.changed[0];
        assert!(s.columns.is_some());
        assert_eq!(
            (
                s.rows_added.as_slice(),
                s.rows_removed.as_slice(),
                s.rows_changed.as_slice()
            ),
            (
                &["L".to_owned()][..],
                &["M".to_owned()][..],
                &["S".to_owned()][..]
            )
        );
        let subject = d.emails[0].subject.as_deref().expect("subject diff");
        assert!(
            subject.contains("-Welcome") && subject.contains("+Welcome to Acme"),
            "{subject}"
        );
        assert!(d.emails[0].html.is_none());

        let same = diff(
            Sections {
                categories: &before_cats,
                size_charts: &before_charts,
                emails: &before_emails,
            },
            Sections {
                categories: &before_cats,
                size_charts: &before_charts,
                emails: &before_emails,
            },
        );
        assert!(same.unchanged);
    }

    #[test]
    fn blast_radius_sums_what_changes() {
        let sale = |order: &str, category: &str| Sale {
            order_id: order.into(),
            sku: "s".into(),
            category_id: category.into(),
            unit_price: 100,
            quantity: 1,
            currency: "EUR".into(),
            seller_id: None,
            attributes: Vec::new(),
        };
        let mut b = BlastRadius::default();
        b.add(&sale("1", "bags"), 10, 10);
        b.add(&sale("2", "bags"), 10, 25);
        b.add(&sale("3", "shoes"), 30, 20);
        b.add(&sale("4", "shoes"), 30, 31);
        assert_eq!(
            (b.lines, b.affected, b.total_before, b.total_after),
            (4, 3, 80, 86)
        );
        assert_eq!(
            b.largest_increase.as_ref().map(|c| c.order_id.as_str()),
            Some("2")
        );
        assert_eq!(
            b.largest_decrease.as_ref().map(|c| c.order_id.as_str()),
            Some("3")
        );
        assert_eq!(b.per_category["shoes"].affected, 2);
        assert_eq!(b.per_category["bags"].total_after, 35);
    }
}
