//! A deliberately misbehaving plugin for the host's security tests. It implements
//! every hook (WIT 0.2.0, `product-category` included), and its settings choose
//! how it misbehaves, on every call: run forever, exhaust memory or the stack,
//! trap, flood stdout or the log, return oversized or broken results, refuse, or
//! probe which tenant's key-value data it can read. The
//! default mode, `ok`, returns the base unchanged. Never install it for a tenant.
//!
//! Settings: `{"mode": "ok", "bytes": 65536, "count": 1000}`, every field optional.
//!
//! | mode | what every hook does |
//! |---|---|
//! | `ok` | returns the base |
//! | `spin` | loops forever |
//! | `grow` | grows linear memory 1 MiB at a time until `memory.grow` fails, then panics |
//! | `alloc` | keeps allocating and touching 1 MiB chunks until the allocator gives up |
//! | `recurse` | recurses without bound, 4 KiB of stack per frame (exhausts the stack in linear memory) |
//! | `recurse-small` | recurses without bound with tiny frames (exhausts the wasm call stack) |
//! | `big-output` | returns about `bytes` bytes: a category name, a size label, a commission note, the HTML body, a product category id |
//! | `panic` | panics |
//! | `unreachable` | executes `unreachable` (panics when run natively) |
//! | `div-zero` | divides by zero (Rust checks the divisor, so this is a panic, then a trap) |
//! | `stdout-flood` | writes `bytes` bytes to stdout and a quarter of that to stderr, then returns the base |
//! | `log-flood` | logs `count` lines of `bytes` bytes, then returns the base |
//! | `bad-tree` | breaks the hook's invariant: a parent cycle, a short size row, a fee above the gross, no unsubscribe link, a product category in no tree |
//! | `error` | returns the plugin error `hostile-error` |
//! | `kv-probe` | reports every key-value pair it can see: a category name, a chart name, the note, the text body, the product category |
//! | `slow-ok` | does `count` rounds of arithmetic, then returns the base |
//! | `count-calls` | counts the calls its instance has served in a static; the commission note says `call <n>`, the product category `call-<n>` |
//! | `sleep` | sleeps `count` milliseconds (WASI `monotonic-clock` + `poll`, as `std::thread::sleep` does), then returns the base |
//! | `print` | prints a line to stdout and one to stderr (`println!`, `eprintln!`), then returns the base |

use std::hint::black_box;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use veneer_sdk::{
    Category, CommissionDecision, Context, EmailTemplate, Level, Plugin, PluginError, Product,
    RenderContext, Sale, SizeChart, SizeRow,
};

/// The plugin type registered with the host: its settings, parsed once per
/// instance. It misbehaves in the hooks, on every call, not in `new`.
#[derive(Debug)]
pub struct Hostile {
    settings: Settings,
}

/// How to misbehave.
#[veneer_sdk::settings]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Behave: return the base unchanged.
    #[default]
    Ok,
    /// Loop forever.
    Spin,
    /// Grow linear memory until refused.
    Grow,
    /// Allocate until the allocator fails.
    Alloc,
    /// Recurse until the stack is exhausted.
    Recurse,
    /// Recurse with frames small enough to live in wasm locals.
    RecurseSmall,
    /// Return an output of about `bytes` bytes.
    BigOutput,
    /// Panic.
    Panic,
    /// Execute `unreachable`.
    Unreachable,
    /// Divide by zero.
    DivZero,
    /// Write `bytes` bytes to stdout (and some to stderr), then behave.
    StdoutFlood,
    /// Log `count` lines of `bytes` bytes, then behave.
    LogFlood,
    /// Return a result that breaks the hook's invariants.
    BadTree,
    /// Return a plugin error.
    Error,
    /// Report the key-value data the plugin can see.
    KvProbe,
    /// Do `count` rounds of busy work, then behave.
    SlowOk,
    /// Count calls in instance memory and report the count (shows instance reuse).
    CountCalls,
    /// Report every field of the sale and of the base decision the hook was
    /// given, in the note (shows what crossed the boundary).
    Echo,
    /// Sleep `count` milliseconds, then behave.
    Sleep,
    /// Print to stdout and stderr, then behave.
    Print,
}

/// The tenant's settings.
#[veneer_sdk::settings]
#[derive(Debug)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The misbehaviour.
    pub mode: Mode,
    /// A size in bytes, for the modes that produce output.
    pub bytes: usize,
    /// A repeat count, for `log-flood` and `slow-ok`; milliseconds for `sleep`.
    pub count: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            mode: Mode::Ok,
            bytes: 64 * 1024,
            count: 1_000,
        }
    }
}

const MIB: usize = 1024 * 1024;

/// Calls this instance has served, for `count-calls`: state that lives exactly
/// as long as the instance's linear memory.
static CALLS: AtomicU64 = AtomicU64::new(0);

fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

#[cfg(target_arch = "wasm32")]
fn grow() -> ! {
    // 16 pages of 64 KiB at a time, straight from the engine, bypassing the allocator.
    loop {
        if core::arch::wasm32::memory_grow::<0>(16) == usize::MAX {
            panic!("memory.grow refused");
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
fn grow() -> ! {
    panic!("memory.grow refused: grow mode only grows memory in WebAssembly");
}

fn alloc() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Filled with a non-zero byte so every page is really written, not just reserved.
        let chunk = vec![0xa5u8; MIB];
        hoard.push(black_box(chunk));
        black_box(&mut hoard);
    }
}

#[inline(never)]
fn recurse(depth: u64) -> u64 {
    let mut frame = [0u8; 4096];
    frame[usize::try_from(depth % 4096).unwrap_or(0)] = depth.to_le_bytes()[0];
    // Opaque to the optimiser, so neither the frame nor the recursion can be removed;
    // the addition after the call keeps it from being a tail call.
    let frame = black_box(&mut frame);
    if black_box(depth) == u64::MAX {
        return 0;
    }
    let below = recurse(black_box(depth + 1));
    below.wrapping_add(u64::from(frame[usize::try_from(below % 4096).unwrap_or(0)]))
}

#[inline(never)]
fn recurse_small(depth: u64) -> u64 {
    if black_box(depth) == u64::MAX {
        return 0;
    }
    // Non-tail: the addition after the call keeps every frame alive.
    recurse_small(black_box(depth + 1)).wrapping_add(black_box(depth))
}

#[cfg(target_arch = "wasm32")]
fn unreachable() -> ! {
    core::arch::wasm32::unreachable()
}

#[cfg(not(target_arch = "wasm32"))]
fn unreachable() -> ! {
    panic!("hostile plugin reached unreachable (natively a panic)");
}

fn div_zero() -> u32 {
    black_box(7u32) / black_box(0u32)
}

fn stdout_flood(bytes: usize) {
    let chunk = [b'x'; 4096];
    let flood = |out: &mut dyn Write, mut left: usize| {
        while left > 0 {
            let n = left.min(chunk.len());
            // Errors are ignored: a host that caps the pipe may refuse the rest, and
            // this mode is meant to end normally.
            if out.write_all(&chunk[..n]).is_err() {
                break;
            }
            left -= n;
        }
        let _ = out.flush();
    };
    flood(&mut std::io::stdout().lock(), bytes);
    flood(&mut std::io::stderr().lock(), bytes / 4);
}

fn log_flood(ctx: &Context, count: u64, bytes: usize) {
    let message = "L".repeat(bytes);
    for _ in 0..count {
        ctx.log(Level::Info, &message);
    }
}

fn slow(count: u64) {
    let mut acc = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..count {
        acc = black_box(acc.rotate_left(5) ^ i).wrapping_mul(0x0100_0000_01b3);
    }
    black_box(acc);
}

/// Everything the probe can see of the key-value store, as `key=value` pairs.
fn kv_probe(ctx: &Context) -> String {
    let pairs: Vec<String> = ctx
        .kv_keys("", 100)
        .into_iter()
        .map(|key| {
            let value = ctx.kv_get(&key).unwrap_or_else(|| "<none>".to_owned());
            format!("{key}={value}")
        })
        .collect();
    format!("kv-probe: {}", pairs.join("; "))
}

/// Runs the parts of a mode that are the same in every hook. Returns normally for
/// the modes whose result the hook itself shapes (and the well-behaved ones).
fn misbehave(ctx: &Context, settings: &Settings) -> Result<(), PluginError> {
    match settings.mode {
        Mode::Spin => spin(),
        Mode::Grow => grow(),
        Mode::Alloc => alloc(),
        Mode::Recurse => {
            black_box(recurse(0));
        }
        Mode::RecurseSmall => {
            black_box(recurse_small(0));
        }
        Mode::Panic => panic!("hostile plugin panicked on purpose"),
        Mode::Unreachable => unreachable(),
        Mode::DivZero => {
            black_box(div_zero());
        }
        Mode::StdoutFlood => stdout_flood(settings.bytes),
        Mode::LogFlood => log_flood(ctx, settings.count, settings.bytes),
        Mode::SlowOk => slow(settings.count),
        Mode::Error => return Err(PluginError::new("hostile-error", "refused on purpose")),
        Mode::CountCalls => {
            CALLS.fetch_add(1, Ordering::Relaxed);
        }
        Mode::Sleep => std::thread::sleep(std::time::Duration::from_millis(settings.count)),
        Mode::Print => {
            println!("hostile plugin printing to stdout");
            eprintln!("hostile plugin printing to stderr");
        }
        Mode::Ok | Mode::BigOutput | Mode::BadTree | Mode::KvProbe | Mode::Echo => {}
    }
    Ok(())
}

impl Hostile {
    /// Misbehaves as the settings say, then hands the hook its settings.
    fn load(&self, ctx: &Context) -> Result<&Settings, PluginError> {
        misbehave(ctx, &self.settings)?;
        Ok(&self.settings)
    }
}

fn root(id: &str, name: String) -> Category {
    Category {
        id: id.to_owned(),
        parent: None,
        name,
        slug: id.to_owned(),
        position: 999,
        attributes: Vec::new(),
    }
}

/// Removes every `{{ ... }}` expression that mentions `unsubscribe_url`.
fn strip_unsubscribe(template: &str) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}").map(|end| end + 2) else {
            break;
        };
        out.push_str(&rest[..start]);
        let expression = &rest[start..start + len];
        if !expression.contains("unsubscribe_url") {
            out.push_str(expression);
        }
        rest = &rest[start + len..];
    }
    out.push_str(rest);
    out
}

#[veneer_sdk::plugin]
impl Plugin for Hostile {
    type Settings = Settings;

    fn new(settings: Settings, _ctx: &Context) -> Result<Self, PluginError> {
        Ok(Self { settings })
    }

    fn categories(
        &self,
        ctx: &Context,
        mut base: Vec<Category>,
    ) -> Result<Vec<Category>, PluginError> {
        let settings = self.load(ctx)?;
        match settings.mode {
            Mode::BigOutput => base.push(root("hostile-big", "x".repeat(settings.bytes))),
            Mode::BadTree => {
                let mut a = root("hostile-cycle-a", "Cycle A".to_owned());
                let mut b = root("hostile-cycle-b", "Cycle B".to_owned());
                a.parent = Some(b.id.clone());
                b.parent = Some(a.id.clone());
                base.extend([a, b]);
            }
            Mode::KvProbe => base.push(root("hostile-kv-probe", kv_probe(ctx))),
            _ => {}
        }
        Ok(base)
    }

    fn size_charts(
        &self,
        ctx: &Context,
        mut base: Vec<SizeChart>,
    ) -> Result<Vec<SizeChart>, PluginError> {
        let settings = self.load(ctx)?;
        let chart = |name: String, label: String, values: Vec<String>| SizeChart {
            id: "hostile".to_owned(),
            name,
            category_ids: Vec::new(),
            columns: vec!["a".to_owned(), "b".to_owned()],
            rows: vec![SizeRow { label, values }],
        };
        let pair = || vec!["1".to_owned(), "2".to_owned()];
        match settings.mode {
            Mode::BigOutput => {
                base.push(chart("Big".to_owned(), "x".repeat(settings.bytes), pair()))
            }
            Mode::BadTree => {
                let short_row = base
                    .iter_mut()
                    .flat_map(|chart| chart.rows.iter_mut())
                    .find(|row| !row.values.is_empty());
                match short_row {
                    Some(row) => {
                        row.values.pop();
                    }
                    None => base.push(chart(
                        "Short".to_owned(),
                        "S".to_owned(),
                        vec!["1".to_owned()],
                    )),
                }
            }
            Mode::KvProbe => base.push(chart(kv_probe(ctx), "S".to_owned(), pair())),
            _ => {}
        }
        Ok(base)
    }

    fn commission(
        &self,
        ctx: &Context,
        sale: &Sale,
        mut base: CommissionDecision,
    ) -> Result<CommissionDecision, PluginError> {
        let settings = self.load(ctx)?;
        match settings.mode {
            Mode::BigOutput => base.note = "x".repeat(settings.bytes),
            Mode::BadTree => {
                // Only the gross bound is broken: the fee stays within min..=max.
                base.fee = sale.gross().saturating_add(1);
                base.max_fee = base.max_fee.max(base.fee);
            }
            Mode::KvProbe => base.note = kv_probe(ctx),
            Mode::CountCalls => base.note = format!("call {}", CALLS.load(Ordering::Relaxed)),
            Mode::Echo => {
                let attributes: Vec<String> = sale
                    .attributes
                    .iter()
                    .map(|a| format!("{}={}", a.key, a.value))
                    .collect();
                base.note = format!(
                    "sale {}|{}|{}|{}|{}|{}|{:?}|{}; base {}|{}|{}|{}|{}|{}",
                    sale.order_id,
                    sale.sku,
                    sale.category_id,
                    sale.unit_price,
                    sale.quantity,
                    sale.currency,
                    sale.seller_id,
                    attributes.join(","),
                    base.rule_id,
                    base.rate_bps,
                    base.min_fee,
                    base.max_fee,
                    base.fee,
                    base.note,
                );
            }
            _ => {}
        }
        Ok(base)
    }

    fn email(
        &self,
        ctx: &Context,
        mut template: EmailTemplate,
        _context: &RenderContext,
    ) -> Result<EmailTemplate, PluginError> {
        let settings = self.load(ctx)?;
        match settings.mode {
            Mode::BigOutput => {
                // The template stays valid; only its size is out of bounds.
                let padding = settings.bytes.saturating_sub(template.html.len() + 7);
                template.html = format!("{}<!--{}-->", template.html, "x".repeat(padding));
            }
            Mode::BadTree => {
                template.html = strip_unsubscribe(&template.html);
                template.text = strip_unsubscribe(&template.text);
            }
            Mode::KvProbe => template.text = format!("{}\n{}", template.text, kv_probe(ctx)),
            _ => {}
        }
        Ok(template)
    }

    fn product_category(
        &self,
        ctx: &Context,
        _product: &Product,
        base: Option<String>,
    ) -> Result<Option<String>, PluginError> {
        let settings = self.load(ctx)?;
        Ok(match settings.mode {
            Mode::BigOutput => Some("x".repeat(settings.bytes)),
            // A category that is in no tree.
            Mode::BadTree => Some("hostile-no-such-category".to_owned()),
            Mode::KvProbe => Some(kv_probe(ctx)),
            // CountCalls counts through the commission note; a category
            // answer must stay one of the tree's, so it keeps the base.
            _ => base,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn categories() -> Vec<Category> {
        vec![root("bags", "Bags".to_owned())]
    }

    fn charts() -> Vec<SizeChart> {
        vec![SizeChart {
            id: "shoes-men".into(),
            name: "Men's shoes".into(),
            category_ids: vec![],
            columns: vec!["EU".into(), "US".into()],
            rows: vec![SizeRow {
                label: "EU 42".into(),
                values: vec!["42".into(), "9".into()],
            }],
        }]
    }

    fn sale() -> Sale {
        Sale {
            order_id: "o-1".into(),
            sku: "sku".into(),
            category_id: "bags".into(),
            unit_price: 10_000,
            quantity: 1,
            currency: "EUR".into(),
            seller_id: None,
            attributes: vec![],
        }
    }

    fn decision() -> CommissionDecision {
        CommissionDecision {
            rule_id: "bags".into(),
            rate_bps: 1_000,
            min_fee: 0,
            max_fee: 5_000,
            fee: 1_000,
            note: String::new(),
        }
    }

    fn template() -> EmailTemplate {
        EmailTemplate {
            id: "welcome".into(),
            subject: "Welcome".into(),
            html: "<p>Hi {{ name }}</p><a href=\"{{ unsubscribe_url }}\">x</a> {{unsubscribe_url|e}} {{ postal_address }}".into(),
            text: "Hi {{ name }}\n{{ unsubscribe_url }}\n{{ postal_address }}".into(),
            from_name: None,
            reply_to: None,
        }
    }

    /// The plugin built from `settings` as the host builds an instance.
    fn hostile(settings: &str) -> Hostile {
        veneer_sdk::instantiate(settings, &Context::testing()).unwrap()
    }

    fn mode(mode: &str) -> Hostile {
        hostile(&format!(
            r#"{{"mode": "{mode}", "bytes": 100, "count": 3}}"#
        ))
    }

    fn product() -> Product {
        Product {
            title: "Dunk Low".into(),
            vendor: "Nike".into(),
            product_type: "Sneakers".into(),
            tags: vec!["sneakers".into()],
        }
    }

    #[test]
    fn ok_returns_every_base_unchanged() {
        let ctx = Context::testing();
        for h in [hostile("{}"), mode("ok"), mode("slow-ok")] {
            assert_eq!(h.categories(&ctx, categories()).unwrap(), categories());
            assert_eq!(h.size_charts(&ctx, charts()).unwrap(), charts());
            assert_eq!(h.commission(&ctx, &sale(), decision()).unwrap(), decision());
            let email = h.email(&ctx, template(), &RenderContext::new()).unwrap();
            assert_eq!(email, template());
            let chosen = h.product_category(&ctx, &product(), Some("shoes".into()));
            assert_eq!(chosen.unwrap().as_deref(), Some("shoes"));
        }
    }

    #[test]
    fn error_mode_refuses_in_every_hook() {
        let (h, ctx) = (mode("error"), Context::testing());
        let errors = [
            h.categories(&ctx, categories()).unwrap_err(),
            h.size_charts(&ctx, charts()).unwrap_err(),
            h.commission(&ctx, &sale(), decision()).unwrap_err(),
            h.email(&ctx, template(), &RenderContext::new())
                .unwrap_err(),
            h.product_category(&ctx, &product(), None).unwrap_err(),
        ];
        for err in errors {
            assert_eq!(err, PluginError::new("hostile-error", "refused on purpose"));
        }
    }

    #[test]
    fn unknown_modes_and_fields_are_bad_settings() {
        for settings in [r#"{"mode": "explode"}"#, r#"{"mode": "ok", "size": 1}"#] {
            let err =
                veneer_sdk::instantiate::<Hostile>(settings, &Context::testing()).unwrap_err();
            assert_eq!(err.code, "bad-settings");
        }
    }

    #[test]
    fn bad_tree_breaks_each_hooks_invariant() {
        let (h, ctx) = (mode("bad-tree"), Context::testing());
        let tree = h.categories(&ctx, categories()).unwrap();
        let parent = |id: &str| tree.iter().find(|c| c.id == id).unwrap().parent.clone();
        assert_eq!(
            parent("hostile-cycle-a").as_deref(),
            Some("hostile-cycle-b")
        );
        assert_eq!(
            parent("hostile-cycle-b").as_deref(),
            Some("hostile-cycle-a")
        );

        let charts = h.size_charts(&ctx, charts()).unwrap();
        assert_eq!(charts[0].rows[0].values.len(), charts[0].columns.len() - 1);
        let added = h.size_charts(&ctx, vec![]).unwrap();
        assert_eq!(added[0].rows[0].values.len(), 1);

        let d = h.commission(&ctx, &sale(), decision()).unwrap();
        assert_eq!(d.fee, sale().gross() + 1);
        assert!(d.fee <= d.max_fee && d.fee >= d.min_fee);

        let email = h.email(&ctx, template(), &RenderContext::new()).unwrap();
        assert!(!email.html.contains("unsubscribe_url") && !email.text.contains("unsubscribe_url"));
        assert!(email.html.contains("{{ name }}") && email.text.contains("{{ postal_address }}"));
    }

    #[test]
    fn big_output_is_as_big_as_asked() {
        let (h, ctx) = (mode("big-output"), Context::testing());
        let tree = h.categories(&ctx, categories()).unwrap();
        assert_eq!(tree.last().unwrap().name.len(), 100);
        let charts = h.size_charts(&ctx, charts()).unwrap();
        assert_eq!(charts.last().unwrap().rows[0].label.len(), 100);
        assert_eq!(
            h.commission(&ctx, &sale(), decision()).unwrap().note.len(),
            100
        );
        let big = hostile(r#"{"mode": "big-output", "bytes": 5000}"#);
        let email = big.email(&ctx, template(), &RenderContext::new()).unwrap();
        assert_eq!(email.html.len(), 5000);
        assert!(email.html.starts_with(&template().html));
    }

    #[test]
    fn kv_probe_reports_what_it_can_read() {
        let h = mode("kv-probe");
        let ctx = Context::testing()
            .with_kv("brand:color", "#000000")
            .with_kv("secret", "s3");
        let expected = "kv-probe: brand:color=#000000; secret=s3";
        let d = h.commission(&ctx, &sale(), decision()).unwrap();
        assert_eq!(d.note, expected);
        let tree = h.categories(&ctx, categories()).unwrap();
        assert_eq!(tree.last().unwrap().name, expected);
        let charts = h.size_charts(&ctx, charts()).unwrap();
        assert_eq!(charts.last().unwrap().name, expected);
        let email = h.email(&ctx, template(), &RenderContext::new()).unwrap();
        assert!(email.text.ends_with(expected));
        let product = Product {
            title: "t".into(),
            vendor: String::new(),
            product_type: String::new(),
            tags: vec![],
        };
        let chosen = h.product_category(&ctx, &product, None).unwrap();
        assert_eq!(chosen.as_deref(), Some(expected));
    }

    #[test]
    fn log_flood_logs_count_lines_of_bytes_each() {
        let (h, ctx) = (mode("log-flood"), Context::testing());
        let d = h.commission(&ctx, &sale(), decision()).unwrap();
        assert_eq!(d, decision());
        let logged = ctx.logged();
        assert_eq!(logged.len(), 3);
        assert!(
            logged
                .iter()
                .all(|(level, line)| *level == Level::Info && line.len() == 100)
        );
    }

    #[test]
    fn strip_unsubscribe_leaves_other_expressions() {
        assert_eq!(
            strip_unsubscribe("a {{ x }} b {{unsubscribe_url}} c {{ y"),
            "a {{ x }} b  c {{ y"
        );
    }
}
