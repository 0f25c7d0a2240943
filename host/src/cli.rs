//! The `veneer` command line: the local plugin runner and checker for plugin
//! developers, base-configuration checks, and the operator's commands straight
//! on the database (`domains`, `tenant`, `secrets`). It reports exactly what the host
//! would do with a plugin: the same checks, sandbox, quotas and validation.
//! `plugin run` only parses each hook's input; the run and the check are the
//! resolver's ([`Resolver::run_checked`] with the hook's one definition).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::OrgRole;
use crate::base::{
    BaseConfig, Category, CommissionDecision, EmailTemplate, Product, Sale, SizeChart,
};
use crate::config::ServeConfig;
use crate::resolve::{self, Checked, ResolveHook, Resolver};
use crate::runtime::hook;
use crate::runtime::{
    CheckError, Hook, LoadedPlugin, Outcome, OutcomeKind, Quota, Run, RunStats, Runtime,
    RuntimeConfig, StaticTenantData,
};

/// `println!` that returns the write's error instead of panicking: a reader that
/// closes the pipe early (`veneer plugin run … | head`) ends the command quietly.
macro_rules! outln {
    () => {
        std::io::Write::write_all(&mut std::io::stdout().lock(), b"\n")?
    };
    ($($arg:tt)*) => {
        std::io::Write::write_fmt(
            &mut std::io::stdout().lock(),
            format_args!("{}\n", format_args!($($arg)*)),
        )?
    };
}

mod author;
mod chain;
mod database;
mod db;
mod diff;
mod domains;
mod replay;
pub mod scaffold_js;
mod tenants;

/// Veneer: per-tenant configuration through sandboxed WebAssembly plugins.
#[derive(Debug, Parser)]
#[command(name = "veneer", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as text (colored only on a terminal) or as one JSON object
    /// each.
    #[arg(long, global = true, env = "VENEER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the multi-tenant server.
    Serve(Box<ServeConfig>),
    /// Print a development token (accepted only by a server started with --dev).
    DevToken {
        /// The tenant whose organisation (`org_<tenant>`) the token is for.
        #[arg(long)]
        tenant: Option<String>,
        /// The organisation role: admin or member.
        #[arg(long, default_value = "admin")]
        role: OrgRole,
        /// The organisation id, when it is not `org_<tenant>`.
        #[arg(long)]
        org: Option<String>,
        /// Mark the token as a platform admin's.
        #[arg(long)]
        platform_admin: bool,
        /// The subject (user id).
        #[arg(long, default_value = "user_dev")]
        subject: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: u64,
    },
    /// Work with plugin components locally.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Work with the base configuration.
    #[command(subcommand)]
    Base(BaseCommand),
    /// Manage encrypted credentials.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Custom domains: list them with their status, check one.
    #[command(subcommand)]
    Domains(domains::DomainsCommand),
    /// Tenants straight in the database: create the first one of a fresh
    /// install, list them.
    #[command(subcommand)]
    Tenant(tenants::TenantCommand),
    /// The instance's database as a whole: copy it into another one.
    #[command(subcommand)]
    Db(db::DbCommand),
}

#[derive(Debug, Subcommand)]
enum SecretsCommand {
    /// Re-encrypt every stored credential under the current key (after adding a
    /// new VENEER_SECRET_KEY and moving the old one to VENEER_SECRET_OLD_KEYS).
    Rotate {
        /// Database URL.
        #[arg(
            long,
            env = "VENEER_DATABASE_URL",
            default_value = "sqlite://veneer.db"
        )]
        database_url: String,
        /// The current key, `<id>:<base64>`.
        #[arg(long, env = "VENEER_SECRET_KEY", hide_env_values = true)]
        secret_key: Option<String>,
        /// Older keys (comma-separated).
        #[arg(
            long,
            env = "VENEER_SECRET_OLD_KEYS",
            value_delimiter = ',',
            hide_env_values = true
        )]
        secret_old_keys: Vec<String>,
        /// Accept the insecure development key.
        #[arg(long)]
        dev: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PluginCommand {
    /// Run one hook of a plugin as the host would, and report what it used.
    Run(RunArgs),
    /// Check that a component is an acceptable plugin, without running a hook.
    Check(CheckArgs),
    /// What a new plugin (or new settings) would change against an old one:
    /// the effective configuration by section, and the commission over a set
    /// of sales.
    Diff(diff::DiffArgs),
    /// Run recorded commission calls (`GET /v1/records`) again through a
    /// plugin or a chain, and show what differs or fails.
    Replay(replay::ReplayArgs),
    /// Start a plugin project: a crate outside this repository that builds
    /// and tests out of the box (README, a native test, fixture cases).
    New(author::NewArgs),
    /// Build a plugin project for wasm32-wasip2 (adding the target if
    /// missing) and check the component as an upload would.
    Build(author::BuildArgs),
    /// Build a plugin project and run its fixture cases (tests/cases/*.json)
    /// against the component as the host would; exit 1 on any failure.
    Test(author::TestArgs),
}

#[derive(Debug, Subcommand)]
enum BaseCommand {
    /// Load and validate the base configuration; print its version. With
    /// `--against`, also compare every tenant's effective configuration under
    /// it with the one under the base served now, and list the tenants whose
    /// configuration changes and whose plugins would fail (exit 1 if any).
    Check {
        /// A base-config directory (default: the one built into the binary).
        #[arg(long, env = "VENEER_BASE_CONFIG")]
        base_config: Option<PathBuf>,
        /// The database whose tenants to check it against.
        #[arg(long)]
        against: Option<String>,
        /// The base served now, to compare with (default: the built-in one).
        #[arg(long)]
        current: Option<PathBuf>,
    },
}

/// `veneer serve`'s settings, read the way `serve` reads them (flags and
/// `VENEER_*` variables), for commands that work on a database as a server
/// would.
#[derive(Debug, Parser)]
struct ServeSettings {
    #[command(flatten)]
    config: ServeConfig,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The plugin component (.wasm). To run a chain as the host composes
    /// installations, give each component with `--plugin` instead (in chain
    /// order), each followed by its `--settings`.
    file: Option<PathBuf>,
    /// One step of a chain (repeat, in order): each step gets the previous
    /// step's validated output, a failing step is skipped.
    #[arg(long = "plugin")]
    plugins: Vec<PathBuf>,
    /// The hook to run: categories, size-charts, commission, email or
    /// product-category (WIT 0.2.0 plugins).
    #[arg(long)]
    hook: Hook,
    /// Input JSON. categories / size-charts: a list (default: the base's).
    /// commission: a sale, or {"sale": .., "base": ..} (default: a sample sale).
    /// email: {"template": "<id>", "context": {..}} (default: order-confirmation
    /// with its sample context).
    /// product-category: a product, or {"product": .., "base": "<id>"} (default:
    /// a sample sneaker; the base choice defaults to the product type's mapping).
    #[arg(long)]
    input: Option<PathBuf>,
    /// The plugin's settings as a JSON file (default: `{}`); with `--plugin`,
    /// one per plugin, in the same order.
    #[arg(long)]
    settings: Vec<PathBuf>,
    /// The tenant's key-value data as a JSON object of strings.
    #[arg(long)]
    kv: Option<PathBuf>,
    /// An output policy (JSON, as the platform sets them) the result must keep;
    /// one that breaks it ends `policy_violation`. The report then lists steps.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Fuel budget (default: the host's default quota).
    #[arg(long)]
    fuel: Option<u64>,
    /// Memory cap in MiB.
    #[arg(long)]
    memory_mib: Option<u64>,
    /// Wall-clock deadline in milliseconds.
    #[arg(long)]
    deadline_ms: Option<u64>,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    json: bool,
    /// A base-config directory (default: the one built into the binary).
    #[arg(long, env = "VENEER_BASE_CONFIG")]
    base_config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// The plugin component (.wasm).
    file: PathBuf,
    /// Print one JSON object instead of a report.
    #[arg(long)]
    json: bool,
}

/// Runs the CLI and maps the result to an exit code (0 only for success).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let otlp = match &cli.command {
        Command::Serve(config) => Some(&config.otlp),
        _ => None,
    };
    let telemetry = match init_tracing(cli.log_format, otlp) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::from(2);
        }
    };
    let result = run(cli);
    // After the server has drained: the last requests' spans go out too.
    if let Some(telemetry) = telemetry {
        telemetry.shutdown();
    }
    match result {
        Ok(code) => code,
        Err(err) if closed_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Whether `err` is stdout's reader having gone away (not the command's fault).
fn closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Log lines to stderr, filtered by `RUST_LOG`; with `--otlp-endpoint`
/// (`serve` only), also the trace-export layer, filtered on its own
/// ([`crate::telemetry`]): what the log shows and what is exported are set
/// apart.
fn init_tracing(
    format: LogFormat,
    otlp: Option<&crate::config::OtlpConfig>,
) -> anyhow::Result<Option<crate::telemetry::Telemetry>> {
    use std::io::IsTerminal as _;
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,tower_http=warn,sqlx=warn")
        })
    };
    let ansi = std::io::stderr().is_terminal();
    let Some((export, telemetry)) = otlp.map(crate::telemetry::start).transpose()?.flatten() else {
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter())
            .with_writer(std::io::stderr)
            .with_ansi(ansi);
        let _ = match format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().flatten_event(true).try_init(),
        };
        return Ok(None);
    };
    let log = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let log = match format {
        LogFormat::Text => log.boxed(),
        LogFormat::Json => log.json().flatten_event(true).boxed(),
    };
    let _ = tracing_subscriber::registry()
        .with(log.with_filter(filter()))
        .with(export)
        .try_init();
    Ok(Some(telemetry))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve(config) => {
            if config.bench_native && !cfg!(feature = "bench-native") {
                anyhow::bail!(
                    "--bench-native needs a build with `--features bench-native` (benchmarks only)"
                );
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(crate::server::serve(*config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::DevToken {
            tenant,
            role,
            org,
            platform_admin,
            subject,
            ttl_secs,
        } => {
            let org = match (org, tenant) {
                (Some(org), _) => org,
                (None, Some(tenant)) => format!("org_{tenant}"),
                (None, None) if platform_admin => String::new(),
                (None, None) => bail!("give --tenant (or --org), or --platform-admin"),
            };
            let token = crate::auth::dev_token(
                &org,
                role,
                &subject,
                platform_admin,
                std::time::Duration::from_secs(ttl_secs),
            );
            outln!("{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Domains(command) => domains::run(command),
        Command::Tenant(command) => tenants::run(command),
        Command::Db(command) => db::run(command),
        Command::Plugin(PluginCommand::Run(args)) => plugin_run(args),
        Command::Plugin(PluginCommand::Check(args)) => plugin_check(args),
        Command::Plugin(PluginCommand::Diff(args)) => diff::run(args),
        Command::Plugin(PluginCommand::Replay(args)) => replay::run(args),
        Command::Plugin(PluginCommand::New(args)) => author::new(args),
        Command::Plugin(PluginCommand::Build(args)) => author::build(args),
        Command::Plugin(PluginCommand::Test(args)) => author::test(args),
        Command::Secrets(SecretsCommand::Rotate {
            database_url,
            secret_key,
            secret_old_keys,
            dev,
        }) => {
            let secrets = crate::secrets::SecretBox::from_env_or_dev(
                secret_key.as_deref(),
                &secret_old_keys,
                dev,
            )?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let report = runtime.block_on(async {
                let storage = crate::storage::Storage::connect(
                    &database_url,
                    &crate::storage::StorageOptions::default(),
                )
                .await?;
                crate::app::key_rotation::rotate(&storage, &secrets)
                    .await
                    .map_err(|err| anyhow::anyhow!("{err}"))
            })?;
            for (what, kind) in [
                ("Shopify credentials (stores)", &report.shopify),
                ("Shopify app client secrets", &report.shopify_apps),
                ("SMTP passwords", &report.smtp_passwords),
                ("DKIM keys", &report.dkim_keys),
                ("Job payloads", &report.job_payloads),
                ("Certificate keys", &report.certificate_keys),
                ("ACME accounts", &report.acme_accounts),
            ] {
                outln!(
                    "{what}: {} re-encrypted under key `{}`, {} already current, {} changed during the run (run again)",
                    kind.rotated,
                    secrets.current_key_id(),
                    kind.unchanged,
                    kind.raced
                );
                for (item, err) in &kind.failed {
                    outln!(
                        "  {item}: cannot be opened ({err}); configure the key it was sealed with in VENEER_SECRET_OLD_KEYS, or have the tenant enter it again"
                    );
                }
            }
            Ok(if report.complete() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Base(BaseCommand::Check {
            base_config,
            against,
            current,
        }) => {
            let base = BaseConfig::load_or_built_in(base_config.as_deref())?;
            let origin = base_config
                .as_ref()
                .map_or_else(|| "(built in)".to_owned(), |dir| dir.display().to_string());
            outln!(
                "base configuration {origin} is valid: version {}, {} categories, {} size charts, {} commission rules, {} email templates",
                base.version,
                base.categories.len(),
                base.size_charts.len(),
                base.commission.rules.len() + 1,
                base.emails.len()
            );
            match against {
                Some(url) => check_base_against(base, &url, current),
                None => Ok(ExitCode::SUCCESS),
            }
        }
    }
}

/// `veneer base check --against DATABASE`: the report of
/// [`crate::app::base::check`], from a state built as a server's would be on
/// that database (with the `VENEER_*` settings; without a secrets key, the
/// development one: nothing secret is read).
fn check_base_against(
    candidate: BaseConfig,
    database_url: &str,
    current: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let mut config = serve_config_on(database_url)?;
    config.base_config = current;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let app = crate::state::AppState::build(config).await?;
        crate::app::base::check(&app, Arc::new(candidate))
            .await
            .map_err(|err| anyhow::anyhow!("{err}"))
    })?;
    outln!(
        "against {}: {} tenants checked{}; from version {} to {}",
        crate::state::redact(database_url),
        report.tenants_checked,
        if report.truncated {
            " (stopped early: the time or tenant bound)"
        } else {
            ""
        },
        report.from_version,
        report.to_version
    );
    let mut failing = 0;
    for (tenant, impact) in &report.tenants {
        let changed = if impact.changed.is_empty() {
            "no section changes".to_owned()
        } else {
            format!("changes {}", impact.changed.join(", "))
        };
        outln!("  {tenant}: {changed}");
        for failure in &impact.failures {
            outln!("    would fail: {failure}");
        }
        if !impact.failures.is_empty() {
            failing += 1;
        }
    }
    outln!(
        "{} tenants change, {failing} with plugins that would fail (their input passes on)",
        report.tenants.len()
    );
    Ok(if failing == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `veneer serve`'s configuration on `database_url`, from the `VENEER_*`
/// settings, for a command that builds a server's state without serving;
/// without a secrets key, the development one (for commands that open no
/// secret).
fn serve_config_on(database_url: &str) -> anyhow::Result<ServeConfig> {
    let args = ["veneer-serve", "--database-url", database_url];
    let mut config = ServeSettings::try_parse_from(args)?.config;
    if config.secret_key.is_none() {
        config.dev = true;
    }
    Ok(config)
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let bytes = read(path)?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not the expected JSON", path.display()))
}

fn plugin_check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    check_component(&args.file, args.json)
}

/// `veneer plugin check FILE`: loads the component as an upload would and
/// reports what it is, or why it is refused (exit 1).
fn check_component(file: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let bytes = read(file)?;
    let runtime = Runtime::new(RuntimeConfig::default())?;
    let result = runtime.load(&bytes);
    let ok = result.is_ok();
    if as_json {
        let report = match &result {
            Ok(plugin) => json!({ "outcome": "ok", "plugin": plugin.info() }),
            Err(err) => rejected_json(err),
        };
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        match &result {
            Ok(plugin) => {
                let info = plugin.info();
                outln!(
                    "ok: {} {} ({} bytes, sha256 {})",
                    info.name,
                    info.version,
                    info.size_bytes,
                    info.sha256
                );
                let hooks: Vec<_> = info.hooks.iter().map(|h| h.as_str()).collect();
                outln!(
                    "hooks:   {}",
                    if hooks.is_empty() {
                        "none".into()
                    } else {
                        hooks.join(", ")
                    }
                );
                outln!("imports: {}", info.imports.join(", "));
                outln!("wit:     veneer:plugin@{}", info.wit_version);
                if !info.description.is_empty() {
                    outln!("about:   {}", info.description);
                }
                outln!(
                    "settings schema: {}",
                    match &info.settings_schema {
                        Some(schema) => format!("{} bytes (JSON Schema, valid)", schema.len()),
                        None => "none (any JSON object is accepted)".into(),
                    }
                );
            }
            Err(err) => outln!("rejected ({}): {err}", err.code()),
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn rejected_json(err: &CheckError) -> Value {
    json!({
        "outcome": OutcomeKind::Rejected,
        "code": err.code(),
        "message": err.to_string(),
        "fuel_used": 0,
        "peak_memory_bytes": 0,
        "wall_time_us": 0,
        "logs": [],
        "output": Value::Null,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommissionInput {
    sale: Sale,
    #[serde(default)]
    base: Option<CommissionDecision>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProductCategoryInput {
    product: Product,
    /// The base choice; absent or null: the platform's mapping of the
    /// product type.
    #[serde(default)]
    base: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailInput {
    template: TemplateRef,
    #[serde(default)]
    context: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TemplateRef {
    Id(String),
    Full(EmailTemplate),
}

/// The sale used when `--input` is not given for the commission hook.
fn sample_sale(currency: &str) -> Sale {
    Sale {
        order_id: "sample-1001".into(),
        sku: "SKU-BAG-001".into(),
        category_id: "bags".into(),
        unit_price: 125_000,
        quantity: 1,
        currency: currency.into(),
        seller_id: Some("seller-1".into()),
        attributes: vec![],
    }
}

/// A hook's outcome with the plugin's output, kept even when validation refused
/// it: the developer needs to see what was wrong.
struct HookResult {
    outcome: Outcome<()>,
    output: Value,
    stats: RunStats,
    /// Commission only: the fuel of the same call made again on an instance
    /// that has served it once, as the server's quote path does on the
    /// tenant's warm instance (one-time work such as parsing settings left out).
    warm_fuel_used: Option<u64>,
}

/// Runs hook `H` through the resolver's own run and check
/// ([`Resolver::run_checked`]), so the runner does what the host does.
fn finish<H: ResolveHook>(
    resolver: &Resolver<'_>,
    plugin: &LoadedPlugin,
    data: Arc<StaticTenantData>,
    quota: &Quota,
    input: H::Input<'_>,
    against: H::Against<'_>,
) -> HookResult {
    let Checked { run, violation } = resolver.run_checked::<H>(plugin, data, quota, input, against);
    let Run { outcome, stats } = run;
    match outcome {
        Outcome::Ok(value) => {
            let output = serde_json::to_value(&value).unwrap_or(Value::Null);
            let outcome = match violation {
                None => Outcome::Ok(()),
                Some(violation) => Outcome::InvalidOutput {
                    reason: format!("the output is invalid: {violation}"),
                },
            };
            HookResult {
                outcome,
                output,
                stats,
                warm_fuel_used: None,
            }
        }
        other => HookResult {
            outcome: other.map(|_| ()),
            output: Value::Null,
            stats,
            warm_fuel_used: None,
        },
    }
}

fn plugin_run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let base = BaseConfig::load_or_built_in(args.base_config.as_deref())?;
    let mut quota = Quota::default();
    if let Some(fuel) = args.fuel {
        quota.fuel = fuel;
    }
    if let Some(mib) = args.memory_mib {
        quota.memory_bytes = mib.saturating_mul(1 << 20);
    }
    if let Some(ms) = args.deadline_ms {
        quota.deadline_ms = ms;
    }
    quota.validate()?;

    let files: Vec<PathBuf> = args.file.iter().chain(&args.plugins).cloned().collect();
    match files.len() {
        0 => bail!(
            "give the plugin to run (a .wasm file), or a chain with --plugin a.wasm --plugin b.wasm"
        ),
        1 if args.settings.len() > 1 => {
            bail!("one plugin takes at most one --settings file")
        }
        1 => {}
        n if !args.settings.is_empty() && args.settings.len() != n => bail!(
            "a chain of {n} plugins takes {n} --settings files (one per --plugin, in order) or none; got {}",
            args.settings.len()
        ),
        _ => {}
    }
    let settings = |index: usize| -> anyhow::Result<String> {
        match args.settings.get(index) {
            Some(path) => {
                let text = String::from_utf8(read(path)?).context("settings must be UTF-8 JSON")?;
                serde_json::from_str::<Value>(&text)
                    .with_context(|| format!("{} is not valid JSON", path.display()))?;
                Ok(text)
            }
            None => Ok("{}".to_owned()),
        }
    };
    let kv: BTreeMap<String, String> = match &args.kv {
        Some(path) => read_json(path)?,
        None => BTreeMap::new(),
    };
    let runtime = Runtime::new(RuntimeConfig::default())?;
    if files.len() > 1 || args.policy.is_some() {
        return chain::run(&runtime, &base, &files, settings, &kv, &quota, &args);
    }
    let data = Arc::new(StaticTenantData {
        settings: settings(0)?,
        kv,
    });

    let bytes = read(&files[0])?;
    let plugin = match runtime.load(&bytes) {
        Ok(plugin) => plugin,
        Err(err) => {
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&rejected_json(&err))?);
            } else {
                outln!("outcome: rejected ({})\n{err}", err.code());
            }
            return Ok(ExitCode::from(1));
        }
    };

    let result = run_hook(&runtime, &plugin, &base, data, &quota, &args)?;
    report(&args, &plugin, &quota, result)
}

fn run_hook(
    runtime: &Runtime,
    plugin: &LoadedPlugin,
    base: &BaseConfig,
    data: Arc<StaticTenantData>,
    quota: &Quota,
    args: &RunArgs,
) -> anyhow::Result<HookResult> {
    if !plugin.implements(args.hook) {
        bail!(
            "the plugin does not implement the {} hook (it implements: {}); the host would serve the base without running it",
            args.hook,
            plugin
                .info()
                .hooks
                .iter()
                .map(|h| h.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let resolver = Resolver::new(runtime, base);
    Ok(match args.hook {
        Hook::Categories => {
            let input = categories_input(args, base)?;
            finish::<hook::Categories>(&resolver, plugin, data, quota, &input, ())
        }
        Hook::SizeCharts => {
            let input = size_charts_input(args, base)?;
            finish::<hook::SizeCharts>(&resolver, plugin, data, quota, &input, &base.categories)
        }
        Hook::Commission => {
            let (sale, decision) = commission_input(args, base)?;
            let mut result = finish::<hook::Commission>(
                &resolver,
                plugin,
                data.clone(),
                quota,
                (&sale, &decision),
                (),
            );
            if matches!(result.outcome, Outcome::Ok(())) {
                result.warm_fuel_used =
                    warm_commission_fuel(runtime, plugin, data, quota, &sale, &decision);
            }
            result
        }
        Hook::Email => {
            let (def, template, context) = email_input(args, base)?;
            finish::<hook::Email>(&resolver, plugin, data, quota, (&template, &context), def)
        }
        Hook::ProductCategory => {
            let (product, choice) = product_category_input(args, base)?;
            finish::<hook::ProductCategory>(
                &resolver,
                plugin,
                data,
                quota,
                (&product, choice.as_deref()),
                &base.categories,
            )
        }
    })
}

/// The `--input` file's JSON, if one was given.
fn input_json(args: &RunArgs) -> anyhow::Result<Option<Value>> {
    args.input.as_deref().map(read_json).transpose()
}

/// The product and base choice a `product-category` run starts from: `--input`
/// is a product or `{"product": .., "base": "<category id>"}`; without `base`
/// the platform's mapping of the product type chooses, as the Shopify products
/// webhook does.
fn product_category_input(
    args: &RunArgs,
    base: &BaseConfig,
) -> anyhow::Result<(Product, Option<String>)> {
    product_category_from(input_json(args)?, base)
}

/// [`product_category_input`] for a JSON value already read (`plugin test` cases).
fn product_category_from(
    input: Option<Value>,
    base: &BaseConfig,
) -> anyhow::Result<(Product, Option<String>)> {
    let (product, choice) = match input {
        Some(value) => {
            if value.get("product").is_some() {
                let input: ProductCategoryInput = serde_json::from_value(value).context(
                    "product-category input must be a product or {\"product\": .., \"base\": ..}",
                )?;
                (input.product, input.base)
            } else {
                let product: Product = serde_json::from_value(value).context(
                    "product-category input must be a product (title, vendor, product_type, tags) or {\"product\": .., \"base\": ..}",
                )?;
                (product, None)
            }
        }
        None => (
            Product {
                title: "Air Jordan 1 Retro High OG".into(),
                vendor: "Nike".into(),
                product_type: "Sneakers".into(),
                tags: vec!["basketball".into()],
            },
            None,
        ),
    };
    let choice = choice
        .or_else(|| crate::shopify::map_product_type(&product.product_type, &base.categories));
    Ok((product, choice))
}

fn categories_input(args: &RunArgs, base: &BaseConfig) -> anyhow::Result<Vec<Category>> {
    categories_from(input_json(args)?, base)
}

fn size_charts_input(args: &RunArgs, base: &BaseConfig) -> anyhow::Result<Vec<SizeChart>> {
    size_charts_from(input_json(args)?, base)
}

fn commission_input(
    args: &RunArgs,
    base: &BaseConfig,
) -> anyhow::Result<(Sale, CommissionDecision)> {
    commission_from(input_json(args)?, base)
}

fn email_input<'b>(
    args: &RunArgs,
    base: &'b BaseConfig,
) -> anyhow::Result<(
    &'b crate::base::EmailDef,
    EmailTemplate,
    BTreeMap<String, String>,
)> {
    email_from(input_json(args)?, base)
}

/// A categories run's input: a list (default: the base's tree).
fn categories_from(input: Option<Value>, base: &BaseConfig) -> anyhow::Result<Vec<Category>> {
    Ok(match input {
        Some(value) => serde_json::from_value(value)
            .context("categories input must be a list of categories")?,
        None => base.categories.clone(),
    })
}

/// A size-charts run's input: a list (default: the base's charts).
fn size_charts_from(input: Option<Value>, base: &BaseConfig) -> anyhow::Result<Vec<SizeChart>> {
    Ok(match input {
        Some(value) => serde_json::from_value(value)
            .context("size-charts input must be a list of size charts")?,
        None => base.size_charts.clone(),
    })
}

/// The sale and the base decision a commission run starts from.
fn commission_from(
    input: Option<Value>,
    base: &BaseConfig,
) -> anyhow::Result<(Sale, CommissionDecision)> {
    let (sale, decision) = match input {
        Some(value) => {
            if value.get("sale").is_some() {
                let input: CommissionInput = serde_json::from_value(value)
                    .context("commission input must be a sale or {\"sale\": .., \"base\": ..}")?;
                let decision = input
                    .base
                    .unwrap_or_else(|| base.decide_commission(&input.sale));
                (input.sale, decision)
            } else {
                let sale: Sale = serde_json::from_value(value)
                    .context("commission input must be a sale or {\"sale\": .., \"base\": ..}")?;
                let decision = base.decide_commission(&sale);
                (sale, decision)
            }
        }
        None => {
            let sale = sample_sale(&base.commission.currency);
            let decision = base.decide_commission(&sale);
            (sale, decision)
        }
    };
    resolve::check_sale(base, &sale)?;
    Ok((sale, decision))
}

/// The template definition, the template a run starts from and its context.
fn email_from(
    input: Option<Value>,
    base: &BaseConfig,
) -> anyhow::Result<(
    &crate::base::EmailDef,
    EmailTemplate,
    BTreeMap<String, String>,
)> {
    let input: EmailInput = match input {
        Some(value) => serde_json::from_value(value).context(
            "email input must be {\"template\": \"<id>\" or a template, \"context\": {..}}",
        )?,
        None => EmailInput {
            template: TemplateRef::Id("order-confirmation".into()),
            context: None,
        },
    };
    let id = match &input.template {
        TemplateRef::Id(id) => id.clone(),
        TemplateRef::Full(t) => t.id.clone(),
    };
    let def = base
        .email(&id)
        .ok_or_else(|| resolve::InputError::UnknownTemplate(id.clone()))?;
    let template = match input.template {
        TemplateRef::Id(_) => def.template.clone(),
        TemplateRef::Full(t) => t,
    };
    let context = input.context.unwrap_or_else(|| def.sample.clone());
    Ok((def, template, context))
}

/// The fuel of a second commission call on one instance (`None` if either
/// call fails): what each quote costs on a warm instance.
fn warm_commission_fuel(
    runtime: &Runtime,
    plugin: &LoadedPlugin,
    data: Arc<StaticTenantData>,
    quota: &Quota,
    sale: &Sale,
    decision: &CommissionDecision,
) -> Option<u64> {
    let mut session = runtime.session(plugin, data, quota).ok()?;
    for _ in 0..2 {
        if !matches!(
            session.run::<hook::Commission>((sale, decision)),
            Outcome::Ok(_)
        ) {
            return None;
        }
    }
    Some(session.last_fuel_used())
}

fn report(
    args: &RunArgs,
    plugin: &LoadedPlugin,
    quota: &Quota,
    result: HookResult,
) -> anyhow::Result<ExitCode> {
    let HookResult {
        outcome,
        output,
        stats,
        warm_fuel_used,
    } = result;
    let kind = outcome.kind();
    let wall_time_us = u64::try_from(stats.wall_time.as_micros()).unwrap_or(u64::MAX);
    let defaults = Quota::default();
    let exceeds: Vec<Value> = limits_reached(&defaults, &stats)
        .into_iter()
        .map(|(field, limit)| json!({ "quota": field, "default": limit }))
        .collect();
    let reached_limits = limits_reached(quota, &stats);
    let reached: Vec<Value> = reached_limits
        .iter()
        .map(|(field, limit)| json!({ "quota": field, "limit": limit }))
        .collect();
    if args.json {
        let report = json!({
            "outcome": kind,
            "message": outcome.message(),
            "hook": args.hook,
            "plugin": plugin.info(),
            "fuel_used": stats.fuel_used,
            "warm_fuel_used": warm_fuel_used,
            "peak_memory_bytes": stats.peak_memory_bytes,
            "wall_time_us": wall_time_us,
            "output_bytes": stats.output_bytes,
            "logs": stats.logs,
            "logs_truncated": stats.logs_truncated,
            "quota": quota,
            "limits_reached": reached,
            "exceeds_default_quota": exceeds,
            "output": output,
        });
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if !output.is_null() {
            outln!("{}", serde_json::to_string_pretty(&output)?);
            outln!();
        }
        outln!("outcome      {kind}");
        if let Some(message) = outcome.message() {
            outln!("message      {message}");
        }
        if let Outcome::Trap {
            backtrace: Some(bt),
            ..
        } = &outcome
        {
            outln!("backtrace\n{bt}");
        }
        outln!(
            "fuel used    {} ({:.2} % of the default quota {})",
            stats.fuel_used,
            percent(stats.fuel_used, defaults.fuel),
            defaults.fuel
        );
        if let Some(warm) = warm_fuel_used {
            outln!(
                "fuel, warm   {warm} (the same call again on this instance, as each quote on the server's kept instance)"
            );
        }
        outln!(
            "peak memory  {} bytes ({:.2} % of the default quota {})",
            stats.peak_memory_bytes,
            percent(stats.peak_memory_bytes, defaults.memory_bytes),
            defaults.memory_bytes
        );
        outln!(
            "wall time    {wall_time_us} µs (default deadline {} ms)",
            defaults.deadline_ms
        );
        outln!(
            "output       {} bytes (cap {})",
            stats.output_bytes,
            quota.output_bytes
        );
        for r in &reached {
            outln!(
                "limit reached: {} ({}): the run used all of it",
                r["quota"].as_str().unwrap_or_default(),
                r["limit"]
            );
        }
        // A default limit the run's own reached already is said once.
        let said = |e: &Value| {
            reached_limits
                .iter()
                .any(|(field, limit)| e["quota"] == *field && e["default"] == *limit)
        };
        for e in exceeds.iter().filter(|e| !said(e)) {
            outln!(
                "default quota: reaches {} (default {}); a tenant on the default quota would be stopped",
                e["quota"].as_str().unwrap_or_default(),
                e["default"]
            );
        }
        if reached.is_empty() && exceeds.is_empty() {
            outln!("quota: below every limit, this run's and the default's");
        }
        if !stats.logs.is_empty() {
            outln!(
                "logs{}:",
                if stats.logs_truncated {
                    " (truncated)"
                } else {
                    ""
                }
            );
            for line in &stats.logs {
                outln!(
                    "  [{}] {}",
                    serde_json::to_value(line.source)?.as_str().unwrap_or("?"),
                    line.message
                );
            }
        }
    }
    Ok(if kind == OutcomeKind::Ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The limits of `quota` a run with `stats` reached, as `(field, limit)`: a
/// figure at its limit counts (a run stopped for fuel used exactly all of it).
/// Output and memory count too: the host stops a plugin at its cap.
fn limits_reached(quota: &Quota, stats: &RunStats) -> Vec<(&'static str, u64)> {
    let wall_ms = u64::try_from(stats.wall_time.as_millis()).unwrap_or(u64::MAX);
    [
        ("fuel", stats.fuel_used, quota.fuel),
        ("memory_bytes", stats.peak_memory_bytes, quota.memory_bytes),
        ("deadline_ms", wall_ms, quota.deadline_ms),
        ("output_bytes", stats.output_bytes, quota.output_bytes),
    ]
    .into_iter()
    .filter(|(_, used, limit)| used >= limit)
    .map(|(field, _, limit)| (field, limit))
    .collect()
}

fn percent(used: u64, of: u64) -> f64 {
    if of == 0 {
        return 0.0;
    }
    // Display only: precision loss on huge values is irrelevant.
    #[allow(clippy::cast_precision_loss)]
    let ratio = used as f64 / of as f64;
    ratio * 100.0
}
