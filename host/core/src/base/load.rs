//! Reading the base directory: the file layout, parsing, the content version, and running the
//! validators on what was read.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use minijinja::{Environment, UndefinedBehavior};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::BaseError;
use super::commission;
use super::types::{BaseConfig, Category, CommissionRules, EmailDef, EmailTemplate, SizeChart};
use crate::validate::{self, Violation};

const CATEGORIES: &str = "categories.toml";
const SIZE_CHARTS: &str = "size-charts.toml";
const COMMISSION: &str = "commission.toml";
const EMAILS: &str = "emails";
const README: &str = "README.md";

/// One file of the layout, read whole.
struct File {
    /// Relative to the base directory, `/`-separated: what the version hashes and errors show.
    rel: String,
    path: PathBuf,
    bytes: Vec<u8>,
}

impl File {
    fn text(&self) -> Result<&str, BaseError> {
        std::str::from_utf8(&self.bytes).map_err(|error| BaseError::NotUtf8 {
            file: self.path.clone(),
            error,
        })
    }

    fn parse<T: for<'de> Deserialize<'de>>(&self) -> Result<T, BaseError> {
        toml::from_str(self.text()?).map_err(|error| BaseError::Parse {
            file: self.path.clone(),
            error,
        })
    }

    fn invalid(&self, field: impl Into<String>, message: impl Into<String>) -> BaseError {
        BaseError::Invalid {
            file: self.path.clone(),
            field: field.into(),
            message: message.into(),
        }
    }

    /// A validator's violation, with the root of its paths renamed to the file's TOML key
    /// (`categories[3]` is `category[3]` in `categories.toml`), so the author can find it.
    fn violation(&self, v: Violation, root: &str, key: &str) -> BaseError {
        let (from, to) = (format!("{root}["), format!("{key}["));
        self.invalid(v.path.replace(&from, &to), v.message.replace(&from, &to))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CategoriesFile {
    #[serde(default)]
    category: Vec<Category>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SizeChartsFile {
    #[serde(default)]
    chart: Vec<SizeChart>,
}

/// `emails/<id>.toml`: the template's fields and its checking data side by side, because that
/// is how an author reads them; serde's `flatten` cannot be used as it disables
/// `deny_unknown_fields`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailFile {
    id: String,
    subject: String,
    html: String,
    text: String,
    #[serde(default)]
    from_name: Option<String>,
    #[serde(default)]
    reply_to: Option<String>,
    #[serde(default)]
    required: Vec<String>,
    #[serde(default)]
    sample: BTreeMap<String, String>,
}

pub(super) fn load(dir: &Path) -> Result<BaseConfig, BaseError> {
    from_files(dir, read_layout(dir)?)
}

/// Where errors in the built-in base configuration say they are.
const BUILT_IN: &str = "(built-in base-config)";

/// The base configuration from files given as `(relative path, bytes)`, laid
/// out as in a directory (the binary's embedded copy of `base-config/`).
pub(super) fn load_files(given: &[(&str, &[u8])]) -> Result<BaseConfig, BaseError> {
    let root = Path::new(BUILT_IN);
    let mut files: Vec<File> = given
        .iter()
        .map(|(rel, bytes)| File {
            rel: (*rel).to_owned(),
            path: root.join(rel),
            bytes: bytes.to_vec(),
        })
        .collect();
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    from_files(root, files)
}

fn from_files(dir: &Path, files: Vec<File>) -> Result<BaseConfig, BaseError> {
    let version = version(&files);

    let find = |rel: &str, needed_for: &'static str| {
        files
            .iter()
            .find(|f| f.rel == rel)
            .ok_or_else(|| BaseError::Missing {
                file: dir.join(rel),
                needed_for,
            })
    };

    let file = find(CATEGORIES, "the category tree")?;
    let categories = file.parse::<CategoriesFile>()?.category;
    validate::categories(&categories).map_err(|v| file.violation(v, "categories", "category"))?;

    let file = find(SIZE_CHARTS, "the size charts")?;
    let size_charts = file.parse::<SizeChartsFile>()?.chart;
    validate::size_charts(&size_charts).map_err(|v| file.violation(v, "size_charts", "chart"))?;
    validate::size_chart_categories(&size_charts, &categories)
        .map_err(|v| file.violation(v, "size_charts", "chart"))?;

    let file = find(COMMISSION, "the commission rules")?;
    let commission: CommissionRules = file.parse()?;
    commission::check_rules(&commission, &categories)
        .map_err(|v| file.invalid(v.path, v.message))?;

    let mut emails = BTreeMap::new();
    for file in files.iter().filter(|f| f.rel.starts_with("emails/")) {
        let def = load_email(file)?;
        emails.insert(def.template.id.clone(), def);
    }

    Ok(BaseConfig {
        version,
        categories,
        size_charts,
        commission,
        emails,
    })
}

/// Reads every file of the layout, sorted by relative path, and rejects anything else.
fn read_layout(dir: &Path) -> Result<Vec<File>, BaseError> {
    let mut files = Vec::new();
    let mut saw_emails = false;
    for (name, path) in list_dir(dir)? {
        match name.as_str() {
            CATEGORIES | SIZE_CHARTS | COMMISSION | README if is_file(&path)? => {
                files.push(read(name, path)?);
            }
            EMAILS if path.is_dir() => {
                saw_emails = true;
                for (email_name, email_path) in list_dir(&path)? {
                    let rel = format!("{EMAILS}/{email_name}");
                    // Only a plain `<id>.toml` counts: `.welcome.toml.swp` or `notes.txt` would
                    // otherwise be taken for (or hide) a template.
                    if email_name.ends_with(".toml") && is_file(&email_path)? {
                        files.push(read(rel, email_path)?);
                    } else {
                        return Err(BaseError::UnknownFile { file: email_path });
                    }
                }
            }
            _ => return Err(BaseError::UnknownFile { file: path }),
        }
    }
    if !saw_emails {
        return Err(BaseError::Missing {
            file: dir.join(EMAILS),
            needed_for: "the email templates, one `<id>.toml` per template",
        });
    }
    files.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(files)
}

/// The entries of a directory as (name, path), sorted by name so errors are deterministic.
fn list_dir(dir: &Path) -> Result<Vec<(String, PathBuf)>, BaseError> {
    let read_err = |error| BaseError::Read {
        file: dir.to_path_buf(),
        error,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        // A name that is not UTF-8 cannot be one of ours.
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            return Err(BaseError::UnknownFile { file: path });
        };
        out.push((name, path));
    }
    out.sort();
    Ok(out)
}

fn is_file(path: &Path) -> Result<bool, BaseError> {
    fs::metadata(path)
        .map(|m| m.is_file())
        .map_err(|error| BaseError::Read {
            file: path.to_path_buf(),
            error,
        })
}

fn read(rel: impl Into<String>, path: PathBuf) -> Result<File, BaseError> {
    match fs::read(&path) {
        Ok(bytes) => Ok(File {
            rel: rel.into(),
            path,
            bytes,
        }),
        Err(error) => Err(BaseError::Read { file: path, error }),
    }
}

/// SHA-256 over each file's relative path and bytes in sorted order, each length-prefixed so
/// that moving bytes between a name and a body cannot produce the same digest.
fn version(files: &[File]) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update((file.rel.len() as u64).to_le_bytes());
        hasher.update(file.rel.as_bytes());
        hasher.update((file.bytes.len() as u64).to_le_bytes());
        hasher.update(&file.bytes);
    }
    let mut hex = hex::encode(hasher.finalize());
    hex.truncate(16);
    hex
}

fn load_email(file: &File) -> Result<EmailDef, BaseError> {
    let raw: EmailFile = file.parse()?;
    let stem = file
        .rel
        .strip_prefix("emails/")
        .and_then(|n| n.strip_suffix(".toml"))
        .unwrap_or_default();
    if raw.id != stem {
        return Err(file.invalid(
            "id",
            format!(
                "is `{}` but the file is named `{stem}.toml`; make them the same, the file name \
                 is how the template is found",
                raw.id
            ),
        ));
    }
    let def = EmailDef {
        template: EmailTemplate {
            id: raw.id,
            subject: raw.subject,
            html: raw.html,
            text: raw.text,
            from_name: raw.from_name,
            reply_to: raw.reply_to,
        },
        required: raw.required,
        sample: raw.sample,
    };
    validate::email(&def.template, &def).map_err(|v| file.invalid(v.path, v.message))?;
    check_sample(file, &def)?;
    Ok(def)
}

/// The sample must let every part render: previews use it, and a variable without a sample
/// value is one nobody has seen rendered.
fn check_sample(file: &File, def: &EmailDef) -> Result<(), BaseError> {
    let mut seen = HashSet::new();
    for (i, name) in def.required.iter().enumerate() {
        if !seen.insert(name.as_str()) {
            return Err(file.invalid(
                format!("required[{i}]"),
                format!("`{name}` is listed twice; remove one"),
            ));
        }
    }
    for name in def
        .required
        .iter()
        .map(String::as_str)
        .chain(validate::MANDATORY_EMAIL_VARIABLES)
    {
        if !def.sample.contains_key(name) {
            return Err(file.invalid(
                format!("sample.{name}"),
                format!("missing; add `{name} = \"...\"` under [sample] so previews can render"),
            ));
        }
    }

    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    let t = &def.template;
    for (field, source) in [
        ("subject", &t.subject),
        ("html", &t.html),
        ("text", &t.text),
    ] {
        let template = env
            .template_from_named_str(field, source)
            .map_err(|e| file.invalid(field, format!("is not a valid template: {e}")))?;
        let mut used: Vec<String> = template.undeclared_variables(false).into_iter().collect();
        used.sort();
        for name in used {
            let is_global = env.globals().any(|(global, _)| global == name);
            if !is_global && !def.sample.contains_key(&name) {
                return Err(file.invalid(
                    format!("sample.{name}"),
                    format!(
                        "missing, but the {field} uses `{{{{ {name} }}}}`; add a sample value \
                         under [sample] (and to `required` if callers always supply it)"
                    ),
                ));
            }
        }
        template
            .render(&def.sample)
            .map_err(|e| file.invalid(field, format!("does not render with [sample]: {e}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{BaseError, default_dir};
    use super::*;

    fn copy_base() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().expect("temp dir");
        copy_dir(&default_dir(), tmp.path());
        tmp
    }

    fn copy_dir(from: &Path, to: &Path) {
        for entry in fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.path().is_dir() {
                fs::create_dir(&target).expect("mkdir");
                copy_dir(&entry.path(), &target);
            } else {
                fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }

    /// Applies `edit` to one file of a copy of the base and returns the load error's message.
    fn load_with(rel: &str, edit: impl FnOnce(String) -> String) -> String {
        let tmp = copy_base();
        let path = tmp.path().join(rel);
        let before = fs::read_to_string(&path).expect("read");
        let after = edit(before.clone());
        assert_ne!(before, after, "the edit must change {rel}");
        fs::write(&path, after).expect("write");
        match BaseConfig::load(tmp.path()) {
            Ok(_) => panic!("editing {rel} should make the base fail to load"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_mentions(message: &str, parts: &[&str]) {
        for part in parts {
            assert!(message.contains(part), "`{part}` not in: {message}");
        }
    }

    #[test]
    fn repository_base_loads() {
        let base = BaseConfig::load(&default_dir()).expect("the repository's base-config loads");
        assert_eq!(base.version.len(), 16);
        assert!(base.categories.len() >= 30);
        for id in [
            "apparel",
            "shoes",
            "sneakers",
            "bags",
            "accessories",
            "watches",
            "jewelry",
        ] {
            assert!(base.categories.iter().any(|c| c.id == id), "{id} missing");
        }
        let sneakers = base.categories.iter().find(|c| c.id == "sneakers");
        assert_eq!(sneakers.and_then(|c| c.parent.as_deref()), Some("shoes"));
        assert!(base.size_charts.len() >= 5);
        for id in ["shoes-men", "shoes-women", "apparel-women", "apparel-men"] {
            assert!(base.size_charts.iter().any(|c| c.id == id), "{id} missing");
        }
        assert_eq!(base.commission.currency, "EUR");
        for id in ["order-confirmation", "item-sold", "payout-sent", "welcome"] {
            let def = base.email(id).expect(id);
            assert_eq!(def.template.id, id);
        }
        assert!(base.email("nope").is_none());
    }

    #[test]
    fn the_built_in_copy_is_the_repository_directory() {
        let built_in = BaseConfig::built_in().expect("built-in base loads");
        let dir = BaseConfig::load(&default_dir()).expect("load");
        assert_eq!(built_in.version, dir.version);
        assert_eq!(built_in.emails.len(), dir.emails.len());
    }

    #[test]
    fn version_is_stable_and_follows_every_file() {
        let first = BaseConfig::load(&default_dir()).expect("load").version;
        let second = BaseConfig::load(&default_dir()).expect("load").version;
        assert_eq!(first, second);

        let tmp = copy_base();
        assert_eq!(
            BaseConfig::load(tmp.path()).expect("copy loads").version,
            first
        );

        let mut seen = HashSet::from([first]);
        for rel in [
            CATEGORIES,
            SIZE_CHARTS,
            COMMISSION,
            README,
            "emails/welcome.toml",
        ] {
            let path = tmp.path().join(rel);
            let mut text = fs::read_to_string(&path).expect("read");
            text.push_str("\n# edited\n");
            fs::write(&path, text).expect("write");
            let version = BaseConfig::load(tmp.path()).expect("still loads").version;
            assert!(
                seen.insert(version),
                "editing {rel} did not change the version"
            );
        }
    }

    #[test]
    fn unknown_field_keeps_toml_message() {
        let msg = load_with(CATEGORIES, |s| {
            s.replacen(
                "slug = \"apparel\"",
                "slug = \"apparel\"\ncolour = \"red\"",
                1,
            )
        });
        assert_mentions(&msg, &[CATEGORIES, "unknown field `colour`", "line"]);
    }

    #[test]
    fn wrong_type_keeps_toml_message() {
        let msg = load_with(SIZE_CHARTS, |s| {
            s.replacen("name = \"Men's shoes\"", "name = 42", 1)
        });
        assert_mentions(&msg, &[SIZE_CHARTS, "invalid type", "name", "line"]);
    }

    #[test]
    fn missing_parent_is_named() {
        let msg = load_with(CATEGORIES, |s| {
            s.replacen("parent = \"apparel-women\"", "parent = \"nope\"", 1)
        });
        assert_mentions(&msg, &[CATEGORIES, "category[2].parent", "`nope`"]);
    }

    #[test]
    fn cycle_is_named() {
        // apparel becomes a child of its own grandchild.
        let msg = load_with(CATEGORIES, |s| {
            s.replacen(
                "id = \"apparel\"\nname",
                "id = \"apparel\"\nparent = \"women-dresses\"\nname",
                1,
            )
        });
        assert_mentions(&msg, &[CATEGORIES, ".parent", "cycle", "`apparel`"]);
    }

    #[test]
    fn duplicate_ids_are_named() {
        let msg = load_with(CATEGORIES, |s| {
            s.replacen("id = \"women-tops\"", "id = \"women-dresses\"", 1)
        });
        assert_mentions(
            &msg,
            &[
                CATEGORIES,
                "category[3].id",
                "`women-dresses`",
                "category[2]",
            ],
        );

        let msg = load_with(COMMISSION, |s| {
            s.replacen("id = \"bags\"", "id = \"apparel\"", 1)
        });
        assert_mentions(&msg, &[COMMISSION, "rule[apparel].id", "unique"]);
    }

    #[test]
    fn first_tier_above_zero_is_named() {
        let msg = load_with(COMMISSION, |s| {
            s.replacen(
                "tiers = [{ from = 0, rate_bps = 1500 }]",
                "tiers = [{ from = 100, rate_bps = 1500 }]",
                1,
            )
        });
        assert_mentions(
            &msg,
            &[COMMISSION, "rule[watches-smart].tiers[0].from", "0"],
        );
    }

    #[test]
    fn rate_above_10000_is_named() {
        let msg = load_with(COMMISSION, |s| {
            s.replacen(
                "{ from = 100000, rate_bps = 800 }",
                "{ from = 100000, rate_bps = 10001 }",
                1,
            )
        });
        assert_mentions(
            &msg,
            &[COMMISSION, "rule[watches].tiers[1].rate_bps", "10000"],
        );
    }

    #[test]
    fn unknown_files_are_rejected() {
        for rel in ["size_charts.toml", "emails/notes.txt"] {
            let tmp = copy_base();
            fs::write(tmp.path().join(rel), "").expect("write");
            let err = BaseConfig::load(tmp.path()).expect_err(rel);
            assert!(matches!(err, BaseError::UnknownFile { .. }), "{err:?}");
            assert_mentions(&err.to_string(), &[rel, "rename or remove"]);
        }
    }

    #[test]
    fn missing_file_is_named() {
        let tmp = copy_base();
        fs::remove_file(tmp.path().join(COMMISSION)).expect("rm");
        let err = BaseConfig::load(tmp.path()).expect_err("no commission");
        assert_mentions(&err.to_string(), &[COMMISSION, "missing"]);
    }

    #[test]
    fn email_problems_are_named() {
        let msg = load_with("emails/welcome.toml", |s| {
            s.replacen("id = \"welcome\"", "id = \"hello\"", 1)
        });
        assert_mentions(&msg, &["welcome.toml", "id", "hello"]);

        let msg = load_with("emails/welcome.toml", |s| {
            s.replacen("shop_url = \"https://shop.example.com/\"\n", "", 1)
        });
        assert_mentions(&msg, &["welcome.toml", "sample.shop_url", "missing"]);

        // Used by the body but neither required nor sampled.
        let msg = load_with("emails/welcome.toml", |s| {
            s.replacen(
                "Start shopping: {{ shop_url }}",
                "Start shopping: {{ shop_link }}",
                1,
            )
        });
        assert_mentions(&msg, &["welcome.toml", "sample.shop_link", "text"]);

        let msg = load_with("emails/welcome.toml", |s| {
            s.replace(
                "Unsubscribe from marketing emails: {{ unsubscribe_url }}",
                "",
            )
        });
        assert_mentions(&msg, &["welcome.toml", "text", "unsubscribe_url"]);

        let msg = load_with("emails/welcome.toml", |s| {
            s.replacen(
                "id = \"welcome\"",
                "id = \"welcome\"\ncc = \"x@example.com\"",
                1,
            )
        });
        assert_mentions(&msg, &["welcome.toml", "unknown field `cc`"]);
    }

    #[test]
    fn invalid_chart_is_named() {
        let msg = load_with(SIZE_CHARTS, |s| {
            s.replacen(
                "\"42.5\", \"9\", \"8\", \"27\"",
                "\"42.5\", \"9\", \"8\"",
                1,
            )
        });
        assert_mentions(&msg, &[SIZE_CHARTS, "chart[0].rows[3].values", "4 columns"]);

        let msg = load_with(SIZE_CHARTS, |s| {
            s.replacen("\"apparel-women\"]", "\"apparel-ladies\"]", 1)
        });
        assert_mentions(
            &msg,
            &[SIZE_CHARTS, "chart[2].category_ids[0]", "apparel-ladies"],
        );
    }
}
