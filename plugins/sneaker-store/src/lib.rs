//! A sneaker store. Resale sneakers sell in half sizes, so the plugin completes the
//! platform's shoe size charts: it inserts a half size between every two consecutive
//! whole sizes (US and UK +0.5, JP +0.5 cm, EU by the brand convention the tenant
//! picks) and adds a JP (foot length in cm) column to a chart that lacks one. It
//! adds limited-edition, retro and collab subcategories under `sneakers`, and can
//! charge a flat authentication fee per pair on expensive sneakers.
//!
//! Settings, every field optional:
//!
//! ```json
//! {
//!   "charts": ["shoes-men", "shoes-women"],
//!   "eu_steps": "half",
//!   "subcategories": true,
//!   "authentication": {
//!     "fee": 1500,
//!     "min_unit_price": 20000,
//!     "currency": "EUR",
//!     "category_ids": ["sneakers", "sneakers-limited-edition", "sneakers-retro", "sneakers-collab"]
//!   }
//! }
//! ```
//!
//! `charts` names the size charts to complete. `eu_steps` is `"half"` (Nike and
//! Jordan: EU 42, 42.5, 43) or `"thirds"` (Adidas: EU 42, 42 2/3, 43 1/3).
//! `authentication` is off when absent; when set, every pair priced at or above
//! `min_unit_price` (minor units, in `currency` if given) in one of `category_ids`
//! pays `fee` (minor units) on top of the base commission, never more than the
//! line's gross amount.
//!
//! It also chooses a product's category (the `product-category` hook): a
//! product whose type or tags say sneakers goes to `sneakers`, or to one of the
//! subcategories when its tags or title say limited edition, retro or collab.
//! Other products keep the platform's choice.

use veneer_sdk::{
    Attribute, Category, CommissionDecision, Context, Plugin, PluginError, Product, Sale,
    SizeChart, SizeRow,
};

/// The plugin type registered with the host: its settings, parsed once per instance.
#[derive(Debug)]
pub struct SneakerStore {
    settings: Settings,
}

/// How EU half sizes are written: brands disagree.
#[veneer_sdk::settings]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum EuSteps {
    /// Half points, as Nike and Jordan label them: 42, 42.5, 43.
    #[default]
    Half,
    /// Thirds of a point (one Paris point is 2/3 cm), as Adidas labels them: 42, 42 2/3, 43 1/3.
    Thirds,
}

/// The tenant's settings.
#[veneer_sdk::settings]
#[derive(Debug)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Ids of the shoe size charts to complete with half sizes and a JP column.
    pub charts: Vec<String>,
    /// The EU half-size convention.
    pub eu_steps: EuSteps,
    /// Whether to add the sneaker subcategories.
    pub subcategories: bool,
    /// The authentication fee; none is charged when absent.
    pub authentication: Option<AuthenticationFee>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            charts: vec!["shoes-men".to_owned(), "shoes-women".to_owned()],
            eu_steps: EuSteps::Half,
            subcategories: true,
            authentication: None,
        }
    }
}

/// A flat fee per pair for authenticating expensive sneakers.
#[veneer_sdk::settings]
#[derive(Debug)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationFee {
    /// Fee per pair, in minor units.
    pub fee: u64,
    /// Pairs priced at or above this unit price (minor units) pay the fee.
    pub min_unit_price: u64,
    /// When set, only sales in this currency pay the fee: the amounts above are in it.
    #[serde(default)]
    pub currency: Option<String>,
    /// The categories whose sales pay the fee.
    #[serde(default = "sneaker_category_ids")]
    pub category_ids: Vec<String>,
}

fn sneaker_category_ids() -> Vec<String> {
    std::iter::once("sneakers")
        .chain(SUBCATEGORIES.iter().map(|sub| sub.id))
        .map(str::to_owned)
        .collect()
}

struct Subcategory {
    id: &'static str,
    slug: &'static str,
    name: &'static str,
    authenticated: bool,
}

const SUBCATEGORIES: [Subcategory; 3] = [
    Subcategory {
        id: "sneakers-limited-edition",
        slug: "limited-edition",
        name: "Limited Edition",
        authenticated: true,
    },
    Subcategory {
        id: "sneakers-retro",
        slug: "retro",
        name: "Retro",
        authenticated: false,
    },
    Subcategory {
        id: "sneakers-collab",
        slug: "collab",
        name: "Collaborations",
        authenticated: true,
    },
];

#[veneer_sdk::plugin]
impl Plugin for SneakerStore {
    type Settings = Settings;

    fn new(settings: Settings, _ctx: &Context) -> Result<Self, PluginError> {
        Ok(Self { settings })
    }

    fn categories(
        &self,
        _ctx: &Context,
        mut base: Vec<Category>,
    ) -> Result<Vec<Category>, PluginError> {
        let settings = &self.settings;
        if !settings.subcategories || !base.iter().any(|c| c.id == "sneakers") {
            return Ok(base);
        }
        let siblings = |base: &[Category]| -> Vec<(String, u32)> {
            base.iter()
                .filter(|c| c.parent.as_deref() == Some("sneakers"))
                .map(|c| (c.slug.clone(), c.position))
                .collect()
        };
        let mut position = siblings(&base)
            .iter()
            .map(|(_, position)| *position)
            .max()
            .map_or(10, |max| max.saturating_add(10));
        for sub in &SUBCATEGORIES {
            // A tenant may already have some of these; ids and sibling slugs must stay unique.
            let taken = base.iter().any(|c| c.id == sub.id)
                || siblings(&base).iter().any(|(slug, _)| slug == sub.slug);
            if taken {
                continue;
            }
            let attributes = if sub.authenticated {
                vec![Attribute::new("authentication", "required")]
            } else {
                Vec::new()
            };
            base.push(Category {
                id: sub.id.to_owned(),
                parent: Some("sneakers".to_owned()),
                name: sub.name.to_owned(),
                slug: sub.slug.to_owned(),
                position,
                attributes,
            });
            position = position.saturating_add(10);
        }
        Ok(base)
    }

    fn size_charts(
        &self,
        ctx: &Context,
        mut base: Vec<SizeChart>,
    ) -> Result<Vec<SizeChart>, PluginError> {
        let settings = &self.settings;
        for chart in base.iter_mut() {
            if !settings.charts.contains(&chart.id) {
                continue;
            }
            if let Err(reason) = complete_chart(chart, settings.eu_steps) {
                ctx.warn(&format!("size chart {} left unchanged: {reason}", chart.id));
            }
        }
        Ok(base)
    }

    fn commission(
        &self,
        _ctx: &Context,
        sale: &Sale,
        mut base: CommissionDecision,
    ) -> Result<CommissionDecision, PluginError> {
        let Some(auth) = &self.settings.authentication else {
            return Ok(base);
        };
        let applies = auth.category_ids.contains(&sale.category_id)
            && sale.unit_price >= auth.min_unit_price
            && auth.currency.as_ref().is_none_or(|c| *c == sale.currency);
        if !applies {
            return Ok(base);
        }
        let gross = sale.gross();
        let extra = auth.fee.saturating_mul(u64::from(sale.quantity));
        // The fee may never exceed the gross amount, so a fee larger than a cheap
        // line is cut down rather than refused.
        let fee = base.fee.saturating_add(extra).min(gross).max(base.fee);
        let charged = fee - base.fee;
        base.max_fee = base.max_fee.max(fee);
        base.fee = fee;
        let addition = format!(
            "authentication {} x {} = {charged}",
            sale.quantity, auth.fee
        );
        base.note = if base.note.is_empty() {
            addition
        } else {
            format!("{}; {addition}", base.note)
        };
        Ok(base)
    }

    fn product_category(
        &self,
        _ctx: &Context,
        product: &Product,
        base: Option<String>,
    ) -> Result<Option<String>, PluginError> {
        let is_sneaker = product
            .product_type
            .to_ascii_lowercase()
            .contains("sneaker")
            || product.has_tag("sneakers")
            || product.has_tag("sneaker");
        if !is_sneaker {
            return Ok(base);
        }
        if !self.settings.subcategories {
            return Ok(Some("sneakers".to_owned()));
        }
        let title = product.title.to_ascii_lowercase();
        let id = if product.has_tag("collab") || title.contains(" x ") {
            "sneakers-collab"
        } else if product.has_tag("limited-edition") || product.has_tag("limited edition") {
            "sneakers-limited-edition"
        } else if product.has_tag("retro") || title.contains("retro") {
            "sneakers-retro"
        } else {
            "sneakers"
        };
        Ok(Some(id.to_owned()))
    }
}

/// The size systems a shoe chart column can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum System {
    Eu,
    Us,
    Uk,
    /// Foot length in cm (Japanese sizes, mondopoint).
    Jp,
    /// Anything else: interpolated linearly.
    Other,
}

fn system(column: &str) -> System {
    let first = column
        .split(|c: char| !c.is_ascii_alphanumeric())
        .find(|token| !token.is_empty())
        .unwrap_or("")
        .to_ascii_lowercase();
    match first.as_str() {
        "eu" | "eur" => System::Eu,
        "us" => System::Us,
        "uk" => System::Uk,
        "jp" | "cm" | "mondopoint" => System::Jp,
        _ => System::Other,
    }
}

/// Tolerance for comparing sizes, which are multiples of 1/2, 1/3 or 1/100.
const EPSILON: f64 = 1e-6;

/// Parses `42`, `42.5`, `42,5`, `42 2/3` or `42⅔`; `None` for anything else
/// (`10C`, `-`, empty).
fn parse_size(text: &str) -> Option<f64> {
    let text = text.trim();
    let (whole, fraction) = if let Some(whole) = text.strip_suffix('⅓') {
        (whole, 1.0 / 3.0)
    } else if let Some(whole) = text.strip_suffix('⅔') {
        (whole, 2.0 / 3.0)
    } else if let Some(whole) = text.strip_suffix('½') {
        (whole, 0.5)
    } else if let Some((whole, fraction)) = text.split_once(' ') {
        (whole, parse_fraction(fraction.trim())?)
    } else {
        (text, 0.0)
    };
    let whole = whole.trim().replace(',', ".");
    let digits = whole.chars().all(|c| c.is_ascii_digit() || c == '.');
    if whole.is_empty() || !digits || !whole.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    whole.parse::<f64>().ok().map(|value| value + fraction)
}

fn parse_fraction(text: &str) -> Option<f64> {
    match text {
        "1/3" => Some(1.0 / 3.0),
        "2/3" => Some(2.0 / 3.0),
        "1/2" => Some(0.5),
        _ => None,
    }
}

fn is_fraction(token: &str) -> bool {
    parse_fraction(token).is_some()
}

/// How many steps per unit a column's sizes come in.
fn steps_per_unit(system: System, eu_steps: EuSteps) -> f64 {
    match (system, eu_steps) {
        (System::Eu, EuSteps::Thirds) => 3.0,
        (System::Eu | System::Us | System::Uk | System::Jp, _) => 2.0,
        (System::Other, _) => 100.0,
    }
}

/// Rounds to the nearest step; an exact tie goes down, which matches the common
/// brand charts (Nike: EU 42.5 and 44 surround EU 43, not 43.5).
fn snap(value: f64, per_unit: f64) -> f64 {
    let steps = value * per_unit;
    let floor = steps.floor();
    let snapped = if (steps - floor - 0.5).abs() < EPSILON {
        floor
    } else {
        steps.round()
    };
    snapped / per_unit
}

/// The half size between two neighbouring sizes of one column: the midpoint on
/// the column's grid, kept between the two so the column stays ordered.
fn between(a: f64, b: f64, system: System, eu_steps: EuSteps) -> f64 {
    snap((a + b) / 2.0, steps_per_unit(system, eu_steps)).clamp(a.min(b), a.max(b))
}

fn format_size(value: f64, system: System, eu_steps: EuSteps) -> String {
    if system == System::Eu && eu_steps == EuSteps::Thirds {
        let thirds = (value * 3.0).round();
        let whole = (thirds / 3.0).floor();
        let rest = thirds - whole * 3.0;
        return match rest as u8 {
            1 => format!("{whole} 1/3"),
            2 => format!("{whole} 2/3"),
            _ => format!("{whole}"),
        };
    }
    let text = format!("{value:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn is_whole(value: f64) -> bool {
    (value - value.round()).abs() < EPSILON
}

/// One column's parsed values, if every row has a number there.
fn numeric_column(chart: &SizeChart, column: usize) -> Option<Vec<f64>> {
    chart
        .rows
        .iter()
        .map(|row| row.values.get(column).and_then(|v| parse_size(v)))
        .collect()
}

fn find_column(chart: &SizeChart, wanted: System) -> Option<usize> {
    chart.columns.iter().position(|c| system(c) == wanted)
}

fn is_womens(chart: &SizeChart) -> bool {
    let text = format!("{} {}", chart.id, chart.name).to_ascii_lowercase();
    text.contains("women") || text.contains("ladies") || text.ends_with("-w")
}

/// Foot length in cm from another system. US men's 9 and UK 8 are 27 cm, US
/// women's 9 is 26 cm; EU sizes are Paris points (2/3 cm) with 1.5 cm of room.
fn jp_from(system: System, value: f64, womens: bool) -> Option<f64> {
    let cm = match system {
        System::Us if womens => value + 17.0,
        System::Us => value + 18.0,
        System::Uk => value + 19.0,
        System::Eu => value * 2.0 / 3.0 - 1.5,
        System::Jp | System::Other => return None,
    };
    Some(snap(cm, 2.0))
}

fn add_jp_column(chart: &mut SizeChart) -> Result<(), String> {
    let womens = is_womens(chart);
    let source = [System::Us, System::Uk, System::Eu]
        .into_iter()
        .find_map(|wanted| {
            let column = find_column(chart, wanted)?;
            Some((wanted, numeric_column(chart, column)?))
        })
        .ok_or("it has no JP column and no numeric US, UK or EU column to derive one from")?;
    let (from, values) = source;
    let mut previous = f64::MIN;
    let mut cms = Vec::with_capacity(values.len());
    for value in values {
        let cm = jp_from(from, value, womens)
            .ok_or("its sizes cannot be converted to cm")?
            .max(previous);
        previous = cm;
        cms.push(cm);
    }
    chart.columns.push("JP".to_owned());
    for (row, cm) in chart.rows.iter_mut().zip(cms) {
        row.values.push(format_size(cm, System::Jp, EuSteps::Half));
    }
    Ok(())
}

/// Adds the JP column if missing, then a half size between each two consecutive
/// whole sizes. Running it again changes nothing.
fn complete_chart(chart: &mut SizeChart, eu_steps: EuSteps) -> Result<(), String> {
    if let Some(row) = chart
        .rows
        .iter()
        .find(|row| row.values.len() != chart.columns.len())
    {
        return Err(format!(
            "row {} does not have one value per column",
            row.label
        ));
    }
    if find_column(chart, System::Jp).is_none() {
        add_jp_column(chart)?;
    }
    let width = chart.columns.len();
    let systems: Vec<System> = chart.columns.iter().map(|c| system(c)).collect();
    // Whole sizes are counted in the first system whose sizes are all whole, US
    // first since that is how sneakers are sold (Adidas charts are whole in UK).
    let numeric: Vec<(usize, Vec<f64>)> = [System::Us, System::Uk, System::Jp, System::Eu]
        .into_iter()
        .filter_map(|wanted| {
            let column = find_column(chart, wanted)?;
            Some((column, numeric_column(chart, column)?))
        })
        .collect();
    let reference = numeric
        .iter()
        .find(|(_, values)| values.iter().all(|v| is_whole(*v)))
        .or(numeric.first());
    let Some((reference, steps)) = reference.cloned() else {
        return Err("it has no numeric US, UK, JP or EU column".to_owned());
    };
    let old_rows = std::mem::take(&mut chart.rows);
    let mut rows = Vec::with_capacity(old_rows.len() * 2);
    for (index, row) in old_rows.iter().enumerate() {
        rows.push(row.clone());
        let Some(next) = old_rows.get(index + 1) else {
            continue;
        };
        let (here, there) = (steps[index], steps[index + 1]);
        if !is_whole(here) || (there - here - 1.0).abs() >= EPSILON {
            continue;
        }
        let values: Vec<String> = (0..width)
            .map(|column| {
                let (lower, upper) = (&row.values[column], &next.values[column]);
                match (parse_size(lower), parse_size(upper)) {
                    (Some(a), Some(b)) => {
                        let system = systems[column];
                        format_size(between(a, b, system, eu_steps), system, eu_steps)
                    }
                    // A text column (a width, a note) keeps the smaller size's value.
                    _ => lower.clone(),
                }
            })
            .collect();
        let label = half_label(row, &chart.columns, &values, reference);
        rows.push(SizeRow { label, values });
    }
    chart.rows = rows;
    Ok(())
}

/// The label of a half size, written like the smaller size's label: every number
/// in it is replaced by the half size's value in the column it came from, so
/// `US 9` becomes `US 9.5` and `EU 42 / US 9` becomes `EU 42.5 / US 9.5`.
fn half_label(lower: &SizeRow, columns: &[String], values: &[String], reference: usize) -> String {
    let fallback = || format!("{} {}", columns[reference], values[reference]);
    let tokens: Vec<&str> = lower.label.split_whitespace().collect();
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    let mut replaced = false;
    let mut index = 0;
    while index < tokens.len() {
        let token = tokens[index];
        let with_fraction = tokens.get(index + 1).filter(|next| is_fraction(next));
        let (text, used) = match with_fraction {
            Some(fraction) => (format!("{token} {fraction}"), 2),
            None => (token.to_owned(), 1),
        };
        let Some(number) = parse_size(&text) else {
            out.push(token.to_owned());
            index += 1;
            continue;
        };
        let same = |column: &usize| {
            parse_size(&lower.values[*column]).is_some_and(|v| (v - number).abs() < EPSILON)
        };
        let named = index
            .checked_sub(1)
            .and_then(|before| {
                (0..columns.len()).find(|c| columns[*c].eq_ignore_ascii_case(tokens[before]))
            })
            .filter(same);
        let Some(column) = named.or_else(|| (0..columns.len()).find(same)) else {
            // A number that is in no column: we cannot tell what the label means.
            return fallback();
        };
        out.push(values[column].clone());
        replaced = true;
        index += used;
    }
    if replaced { out.join(" ") } else { fallback() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plugin built from `settings` as the host builds an instance.
    fn store(settings: &str) -> SneakerStore {
        veneer_sdk::instantiate(settings, &Context::testing()).unwrap()
    }

    fn chart(id: &str, columns: &[&str], rows: &[(&str, &[&str])]) -> SizeChart {
        SizeChart {
            id: id.into(),
            name: id.into(),
            category_ids: vec!["sneakers".into()],
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            rows: rows
                .iter()
                .map(|(label, values)| SizeRow {
                    label: (*label).to_owned(),
                    values: values.iter().map(|v| (*v).to_owned()).collect(),
                })
                .collect(),
        }
    }

    fn men() -> SizeChart {
        chart(
            "shoes-men",
            &["EU", "US", "UK", "JP"],
            &[
                ("US 8", &["41", "8", "7", "26"]),
                ("US 9", &["42", "9", "8", "27"]),
                ("US 10", &["44", "10", "9", "28"]),
                ("US 12", &["46", "12", "11", "30"]),
            ],
        )
    }

    fn labels(chart: &SizeChart) -> Vec<&str> {
        chart.rows.iter().map(|r| r.label.as_str()).collect()
    }

    fn column(chart: &SizeChart, index: usize) -> Vec<&str> {
        chart
            .rows
            .iter()
            .map(|r| r.values[index].as_str())
            .collect()
    }

    fn assert_well_formed(chart: &SizeChart) {
        for row in &chart.rows {
            assert_eq!(row.values.len(), chart.columns.len(), "row {}", row.label);
        }
        for index in 0..chart.columns.len() {
            let values: Vec<f64> = chart
                .rows
                .iter()
                .map(|r| parse_size(&r.values[index]).unwrap())
                .collect();
            assert!(
                values.windows(2).all(|w| w[0] <= w[1]),
                "column {} decreases: {values:?}",
                chart.columns[index]
            );
        }
    }

    #[test]
    fn inserts_half_sizes_between_consecutive_whole_sizes() {
        let out = store("{}")
            .size_charts(&Context::testing(), vec![men()])
            .unwrap();
        let chart = &out[0];
        assert_eq!(
            labels(chart),
            ["US 8", "US 8.5", "US 9", "US 9.5", "US 10", "US 12"],
            "no half size across the gap from 10 to 12"
        );
        assert_eq!(column(chart, 1), ["8", "8.5", "9", "9.5", "10", "12"]);
        assert_eq!(column(chart, 2), ["7", "7.5", "8", "8.5", "9", "11"]);
        assert_eq!(column(chart, 3), ["26", "26.5", "27", "27.5", "28", "30"]);
        // EU 42 to 44 is Nike's 9 to 10: the half size is EU 43.
        assert_eq!(column(chart, 0), ["41", "41.5", "42", "43", "44", "46"]);
        assert_well_formed(chart);
    }

    #[test]
    fn completing_twice_changes_nothing() {
        let once = store("{}")
            .size_charts(&Context::testing(), vec![men()])
            .unwrap();
        let twice = store("{}")
            .size_charts(&Context::testing(), once.clone())
            .unwrap();
        assert_eq!(once, twice);
    }

    #[test]
    fn eu_thirds_follow_the_adidas_convention() {
        let ctx = Context::testing();
        let base = chart(
            "shoes-men",
            &["EU", "US", "UK", "JP"],
            &[
                ("EU 42", &["42", "8.5", "8", "26"]),
                ("EU 43 1/3", &["43 1/3", "9.5", "9", "27"]),
            ],
        );
        let out = store(r#"{"eu_steps": "thirds"}"#)
            .size_charts(&ctx, vec![base])
            .unwrap();
        let chart = &out[0];
        assert_eq!(column(chart, 0), ["42", "42 2/3", "43 1/3"]);
        assert_eq!(labels(chart), ["EU 42", "EU 42 2/3", "EU 43 1/3"]);
        assert_eq!(column(chart, 2), ["8", "8.5", "9"]);
        assert_well_formed(chart);
    }

    #[test]
    fn adds_a_jp_column_derived_from_us_sizes() {
        let women = chart(
            "shoes-women",
            &["EU", "US", "UK"],
            &[("US 6", &["36", "6", "4"]), ("US 7", &["38", "7", "5"])],
        );
        let out = store("{}")
            .size_charts(&Context::testing(), vec![women, men()])
            .unwrap();
        let women = &out[0];
        assert_eq!(women.columns, ["EU", "US", "UK", "JP"]);
        assert_eq!(column(women, 3), ["23", "23.5", "24"]);
        assert_eq!(labels(women), ["US 6", "US 6.5", "US 7"]);
        assert_eq!(column(women, 0), ["36", "37", "38"]);
        assert_well_formed(women);
        assert_eq!(
            out[1].columns,
            ["EU", "US", "UK", "JP"],
            "men's chart already had JP"
        );
    }

    #[test]
    fn jp_from_eu_uses_paris_points() {
        let eu_only = chart(
            "shoes-men",
            &["EU"],
            &[("EU 42", &["42"]), ("EU 44", &["44"])],
        );
        let out = store("{}")
            .size_charts(&Context::testing(), vec![eu_only])
            .unwrap();
        assert_eq!(out[0].columns, ["EU", "JP"]);
        assert_eq!(column(&out[0], 1), ["26.5", "28"]);
    }

    #[test]
    fn labels_with_several_systems_are_all_rewritten() {
        let base = chart(
            "shoes-men",
            &["EU", "US", "UK", "JP"],
            &[
                ("EU 42 / US 9", &["42", "9", "8", "27"]),
                ("EU 43 / US 10", &["43", "10", "9", "28"]),
            ],
        );
        let out = store("{}")
            .size_charts(&Context::testing(), vec![base])
            .unwrap();
        assert_eq!(out[0].rows[1].label, "EU 42.5 / US 9.5");
    }

    #[test]
    fn unreadable_labels_fall_back_to_the_us_size() {
        let base = chart(
            "shoes-men",
            &["EU", "US", "UK", "JP"],
            &[
                ("M", &["42", "9", "8", "27"]),
                ("L", &["43", "10", "9", "28"]),
            ],
        );
        let out = store("{}")
            .size_charts(&Context::testing(), vec![base])
            .unwrap();
        assert_eq!(labels(&out[0]), ["M", "US 9.5", "L"]);
    }

    #[test]
    fn only_listed_charts_and_well_formed_rows_are_touched() {
        let apparel = chart(
            "apparel-men",
            &["chest-cm", "waist-cm"],
            &[("M", &["96", "82"]), ("L", &["102", "88"])],
        );
        let broken = chart("shoes-women", &["EU", "US"], &[("US 6", &["36"])]);
        let ctx = Context::testing();
        let out = store("{}")
            .size_charts(&ctx, vec![apparel.clone(), broken.clone()])
            .unwrap();
        assert_eq!(out, [apparel, broken]);
        assert_eq!(ctx.logged().len(), 1, "the broken chart is reported");
    }

    #[test]
    fn text_columns_keep_one_value_per_row() {
        let base = chart(
            "shoes-men",
            &["US", "width"],
            &[("US 9", &["9", "D"]), ("US 10", &["10", "D"])],
        );
        let out = store("{}")
            .size_charts(&Context::testing(), vec![base])
            .unwrap();
        let chart = &out[0];
        assert_eq!(chart.columns, ["US", "width", "JP"]);
        assert_eq!(chart.rows[1].values, ["9.5", "D", "27.5"]);
    }

    fn category(id: &str, parent: Option<&str>, slug: &str, position: u32) -> Category {
        Category {
            id: id.into(),
            parent: parent.map(str::to_owned),
            name: id.into(),
            slug: slug.into(),
            position,
            attributes: vec![],
        }
    }

    #[test]
    fn adds_sneaker_subcategories_after_existing_children() {
        let base = vec![
            category("shoes", None, "shoes", 0),
            category("sneakers", Some("shoes"), "sneakers", 0),
            category("sneakers-runners", Some("sneakers"), "runners", 40),
            category("sneakers-old", Some("sneakers"), "retro", 50),
        ];
        let out = store("{}").categories(&Context::testing(), base).unwrap();
        let added: Vec<_> = out[4..]
            .iter()
            .map(|c| (c.id.as_str(), c.parent.as_deref(), c.position))
            .collect();
        assert_eq!(
            added,
            [
                ("sneakers-limited-edition", Some("sneakers"), 60),
                ("sneakers-collab", Some("sneakers"), 70),
            ],
            "the retro slug is taken, so no second retro"
        );
    }

    #[test]
    fn no_sneakers_no_subcategories() {
        let base = vec![category("bags", None, "bags", 0)];
        let out = store("{}")
            .categories(&Context::testing(), base.clone())
            .unwrap();
        assert_eq!(out, base);
        let base = vec![category("sneakers", None, "sneakers", 0)];
        let off = store(r#"{"subcategories": false}"#);
        assert_eq!(
            off.categories(&Context::testing(), base.clone()).unwrap(),
            base
        );
    }

    fn sale(category_id: &str, unit_price: u64, quantity: u32) -> Sale {
        Sale {
            order_id: "o-1".into(),
            sku: "aj1-chicago".into(),
            category_id: category_id.into(),
            unit_price,
            quantity,
            currency: "EUR".into(),
            seller_id: None,
            attributes: vec![],
        }
    }

    fn decision(fee: u64) -> CommissionDecision {
        CommissionDecision {
            rule_id: "sneakers".into(),
            rate_bps: 1_000,
            min_fee: 0,
            max_fee: 5_000,
            fee,
            note: "base".into(),
        }
    }

    const AUTH: &str =
        r#"{"authentication": {"fee": 1500, "min_unit_price": 20000, "currency": "EUR"}}"#;

    #[test]
    fn expensive_sneakers_pay_the_authentication_fee_per_pair() {
        let ctx = Context::testing();
        let out = store(AUTH)
            .commission(&ctx, &sale("sneakers", 30_000, 2), decision(5_000))
            .unwrap();
        assert_eq!(out.fee, 8_000);
        assert_eq!(out.max_fee, 8_000, "the bound moves with the fee");
        assert_eq!(out.note, "base; authentication 2 x 1500 = 3000");
    }

    #[test]
    fn cheap_or_other_sales_pay_no_fee() {
        let ctx = Context::testing();
        let auth = store(AUTH);
        let cheap = auth
            .commission(&ctx, &sale("sneakers", 19_999, 1), decision(2_000))
            .unwrap();
        assert_eq!(cheap, decision(2_000));
        let bag = auth
            .commission(&ctx, &sale("bags", 90_000, 1), decision(5_000))
            .unwrap();
        assert_eq!(bag, decision(5_000));
        let mut dollars = sale("sneakers-retro", 90_000, 1);
        dollars.currency = "USD".into();
        assert_eq!(
            auth.commission(&ctx, &dollars, decision(5_000)).unwrap(),
            decision(5_000)
        );
        let off = store("{}")
            .commission(&ctx, &sale("sneakers", 90_000, 1), decision(5_000))
            .unwrap();
        assert_eq!(off, decision(5_000));
    }

    #[test]
    fn the_fee_never_exceeds_the_gross() {
        let out = store(r#"{"authentication": {"fee": 50000, "min_unit_price": 100}}"#)
            .commission(
                &Context::testing(),
                &sale("sneakers", 1_000, 1),
                decision(100),
            )
            .unwrap();
        assert_eq!(out.fee, 1_000);
    }

    #[test]
    fn bad_settings_are_a_plugin_error_naming_the_path() {
        for (settings, path) in [
            (r#"{"charts": "shoes-men"}"#, "/charts"),
            (r#"{"eu_steps": "quarters"}"#, "/eu_steps"),
            (r#"{"authentication": {"fee": 1}}"#, "/authentication"),
            (r#"{"chart": []}"#, "/chart"),
        ] {
            let err =
                veneer_sdk::instantiate::<SneakerStore>(settings, &Context::testing()).unwrap_err();
            assert_eq!(err.code, "bad-settings", "{settings}");
            assert!(
                err.message.starts_with(&format!("settings at {path}: ")),
                "{settings}: {}",
                err.message
            );
        }
    }

    fn product(title: &str, product_type: &str, tags: &[&str]) -> Product {
        Product {
            title: title.into(),
            vendor: "Nike".into(),
            product_type: product_type.into(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        }
    }

    #[test]
    fn sneakers_go_to_their_subcategory_and_other_products_keep_the_base() {
        let ctx = Context::testing();
        let plugin = store("{}");
        let choose = |p: Product| {
            plugin
                .product_category(&ctx, &p, Some("shoes".into()))
                .unwrap()
        };
        assert_eq!(
            choose(product("Air Jordan 1 Retro High", "Sneakers", &[])).as_deref(),
            Some("sneakers-retro")
        );
        assert_eq!(
            choose(product("Dunk Low x Off-White", "Sneakers", &["hype"])).as_deref(),
            Some("sneakers-collab")
        );
        assert_eq!(
            choose(product(
                "Air Max 1",
                "Shoes",
                &["Sneakers", "Limited-Edition"]
            ))
            .as_deref(),
            Some("sneakers-limited-edition")
        );
        assert_eq!(
            choose(product("Pegasus 41", "Running sneakers", &[])).as_deref(),
            Some("sneakers")
        );
        assert_eq!(
            choose(product("Tote", "Bags", &["retro"])).as_deref(),
            Some("shoes"),
            "not a sneaker: the platform's choice stands"
        );
        let flat = store(r#"{"subcategories": false}"#);
        assert_eq!(
            flat.product_category(&ctx, &product("AJ1 Retro", "Sneakers", &[]), None)
                .unwrap()
                .as_deref(),
            Some("sneakers")
        );
    }

    #[test]
    fn describe_lists_the_hooks_written_and_a_schema() {
        let info = veneer_sdk::describe::<SneakerStore>();
        assert_eq!(
            info.hooks,
            [
                "categories",
                "size-charts",
                "commission",
                "product-category"
            ]
        );
        assert!(!info.description.is_empty());
        let schema: veneer_sdk::serde_json::Value =
            veneer_sdk::serde_json::from_str(&info.settings_schema.unwrap()).unwrap();
        assert_eq!(schema["properties"]["eu_steps"]["$ref"], "#/$defs/EuSteps");
    }

    #[test]
    fn parses_the_usual_ways_of_writing_sizes() {
        assert_eq!(parse_size("42"), Some(42.0));
        assert_eq!(parse_size(" 9.5 "), Some(9.5));
        assert_eq!(parse_size("42,5"), Some(42.5));
        assert!((parse_size("42 2/3").unwrap() - 42.666_666).abs() < 1e-5);
        assert!((parse_size("43⅓").unwrap() - 43.333_333).abs() < 1e-5);
        for text in ["", "10C", "-", "inf", "NaN", ".5", "1/3"] {
            assert_eq!(parse_size(text), None, "{text}");
        }
    }
}
