//! The `veneer` binary as a plugin developer uses it.

use std::process::{Command, Output};

use serde_json::Value;
use veneer_plugin_artifacts as built_plugins;

use crate::util::fixture_path;

fn veneer(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_veneer"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("the veneer binary runs")
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is not JSON ({err}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

fn write_temp(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write temp file");
    path.display().to_string()
}

#[test]
fn plugin_run_reports_outcome_fuel_memory_time_logs_and_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = write_temp(
        &dir,
        "sale.json",
        r#"{"order_id": "o-9", "sku": "W-1", "category_id": "watches", "unit_price": 800000, "quantity": 1, "currency": "EUR"}"#,
    );
    let settings = write_temp(
        &dir,
        "settings.json",
        r#"{"cap": 120000, "unauthenticated_surcharge_bps": 500, "tiers": [{"from": 0, "rate_bps": 2500}, {"from": 100000, "rate_bps": 1800}]}"#,
    );
    let out = veneer(&[
        "plugin",
        "run",
        built_plugins::LUXURY_CONSIGNMENT,
        "--hook",
        "commission",
        "--input",
        &input,
        "--settings",
        &settings,
        "--json",
    ]);
    let report = json(&out);
    assert!(out.status.success(), "{report}");
    // The same call again on the instance skips the one-time work (the
    // plugin parses its settings once per instance).
    let (fresh, warm) = (
        report["fuel_used"].as_u64().unwrap_or(0),
        report["warm_fuel_used"].as_u64().unwrap_or(0),
    );
    assert!(
        warm > 0 && warm < fresh,
        "fresh {fresh}, warm {warm}: {report}"
    );
    assert_eq!(report["outcome"], "ok");
    for key in [
        "fuel_used",
        "peak_memory_bytes",
        "wall_time_us",
        "logs",
        "output",
    ] {
        assert!(report.get(key).is_some(), "missing {key}: {report}");
    }
    assert!(report["fuel_used"].as_u64().unwrap_or(0) > 0);
    assert!(
        report["output"]["rule_id"]
            .as_str()
            .unwrap_or("")
            .starts_with("luxury-tier")
    );
}

#[test]
fn plugin_run_exits_non_zero_and_names_the_outcome_of_a_runaway_plugin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = write_temp(&dir, "settings.json", r#"{"mode": "spin"}"#);
    let out = veneer(&[
        "plugin",
        "run",
        built_plugins::HOSTILE,
        "--hook",
        "categories",
        "--settings",
        &settings,
        "--fuel",
        "1000000",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["outcome"], "out_of_fuel");
    assert_eq!(report["fuel_used"], 1_000_000);
    assert!(report["output"].is_null());
}

#[test]
fn plugin_run_shows_invalid_output_with_the_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = write_temp(&dir, "settings.json", r#"{"mode": "bad-tree"}"#);
    let out = veneer(&[
        "plugin",
        "run",
        built_plugins::HOSTILE,
        "--hook",
        "categories",
        "--settings",
        &settings,
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["outcome"], "invalid_output");
    assert!(
        report["message"].as_str().unwrap_or("").contains("cycle"),
        "{report}"
    );
}

#[test]
fn plugin_run_human_report_mentions_the_default_quota() {
    let out = veneer(&[
        "plugin",
        "run",
        built_plugins::SNEAKER_STORE,
        "--hook",
        "size-charts",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("outcome      ok"), "{text}");
    assert!(text.contains("of the default quota"), "{text}");
}

#[test]
fn plugin_run_ends_quietly_when_its_reader_closes_the_pipe() {
    // `veneer plugin run … | head -0`: the reader is gone before the report.
    let mut child = Command::new(env!("CARGO_BIN_EXE_veneer"))
        .args([
            "plugin",
            "run",
            built_plugins::SNEAKER_STORE,
            "--hook",
            "size-charts",
        ])
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the veneer binary runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("it ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("error:"), "{stderr}");
}

#[test]
fn plugin_check_accepts_a_plugin_and_lists_its_hooks() {
    let out = veneer(&["plugin", "check", built_plugins::EMAIL_REBRAND, "--json"]);
    assert!(out.status.success());
    let report = json(&out);
    assert_eq!(report["outcome"], "ok");
    assert_eq!(report["plugin"]["hooks"], serde_json::json!(["email"]));
}

#[test]
fn plugin_check_rejects_with_a_reason() {
    let dir = tempfile::tempdir().expect("tempdir");
    let core = wat::parse_file(fixture_path("core-module.wat")).expect("assembles");
    let path = dir.path().join("core.wasm");
    std::fs::write(&path, core).expect("write");
    let out = veneer(&[
        "plugin",
        "check",
        path.to_str().expect("utf-8 path"),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["outcome"], "rejected");
    assert_eq!(report["code"], "core_module");
    assert!(
        report["message"]
            .as_str()
            .unwrap_or("")
            .contains("wasm32-wasip2")
    );

    let empty = fixture_path("empty.wasm");
    let out = veneer(&[
        "plugin",
        "run",
        empty.to_str().expect("utf-8"),
        "--hook",
        "email",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["outcome"], "rejected");
}

#[test]
fn base_check_prints_the_content_version() {
    let out = veneer(&["base", "check"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("is valid: version"), "{text}");
    assert!(text.contains("(built in)"), "{text}");
    // The repository's directory is the same configuration, same version.
    let dir = veneer::base::default_dir().display().to_string();
    let out = veneer(&["base", "check", "--base-config", &dir]);
    let from_dir = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{from_dir}");
    let version = |t: &str| {
        t.split("version ")
            .nth(1)
            .and_then(|v| v.split(',').next())
            .map(str::to_owned)
    };
    assert_eq!(version(&text), version(&from_dir));
}

/// `veneer serve --dev` on an empty database: seeds the demo tenants, prints the
/// curl lines, and the tenants' configurations differ. A real process on loopback.
#[test]
fn serve_dev_seeds_the_demo_and_prints_working_commands() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("demo.db").display());
    // A copy of the binary, run from elsewhere: it needs nothing of the
    // checkout it was built from (the base configuration is built in).
    let binary = dir.path().join("veneer");
    std::fs::copy(env!("CARGO_BIN_EXE_veneer"), &binary).expect("copy the binary");
    let mut child = Command::new(&binary)
        .current_dir(dir.path())
        .env_remove("VENEER_BASE_CONFIG")
        .args([
            "serve",
            "--dev",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &db,
            "--artifact-dir",
        ])
        .arg(dir.path().join("artifacts"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("veneer serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut printed = Vec::new();
    let mut addr = None;
    for line in lines.by_ref() {
        let line = line.expect("utf-8 output");
        if addr.is_none()
            && let Some(rest) = line.strip_prefix("veneer listening on http://")
        {
            addr = rest.split_whitespace().next().map(str::to_owned);
        }
        let done = line.contains("/v1/admin/tenants");
        printed.push(line);
        if done {
            break;
        }
    }
    let addr = addr.expect("the server prints its address");
    let text = printed.join("\n");
    assert!(
        text.contains("export ACME_TOKEN=") && text.contains("export GLOBEX_TOKEN="),
        "{text}"
    );
    assert!(text.contains("http://acme.localhost:"), "{text}");

    let token = |name: &str| {
        printed
            .iter()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(&format!("export {name}="))
                    .map(str::to_owned)
            })
            .expect("token line")
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let fetch = |tenant: &str, token: String| {
        rt.block_on(async {
            reqwest::Client::new()
                .get(format!("http://{addr}/v1/config/categories"))
                .header("host", format!("{tenant}.localhost"))
                .bearer_auth(token)
                .send()
                .await
                .expect("answered")
                .json::<Value>()
                .await
                .expect("json")
        })
    };
    let acme = fetch("acme", token("ACME_TOKEN"));
    let globex = fetch("globex", token("GLOBEX_TOKEN"));
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(acme["source"], "plugin", "{acme}");
    assert_ne!(
        acme["value"], globex["value"],
        "the demo tenants' categories differ"
    );
}

#[test]
fn plugin_run_ends_a_sleeping_plugin_at_its_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = write_temp(
        &dir,
        "settings.json",
        r#"{"mode": "sleep", "count": 60000}"#,
    );
    let started = std::time::Instant::now();
    let out = veneer(&[
        "plugin",
        "run",
        built_plugins::HOSTILE,
        "--hook",
        "categories",
        "--settings",
        &settings,
        "--deadline-ms",
        "50",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["outcome"], "deadline", "{report}");
    // Ends at the deadline, not after the minute the plugin asked to sleep.
    assert!(report["wall_time_us"].as_u64().expect("wall time") < 5_000_000);
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

/// `--plugin a --settings a --plugin b --settings b` runs the chain the host
/// composes from installations, and reports each step.
#[test]
fn plugin_run_runs_a_chain_as_the_host_composes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let luxury = write_temp(
        &dir,
        "luxury.json",
        r#"{"cap": 120000, "unauthenticated_surcharge_bps": 500, "tiers": [{"from": 0, "rate_bps": 2500}]}"#,
    );
    let patches = write_temp(
        &dir,
        "patches.json",
        r#"{"commission": [{"when": {}, "patch": [{"op": "replace", "path": "/rate_bps", "value": 900}]}]}"#,
    );
    let sale = write_temp(
        &dir,
        "sale.json",
        r#"{"order_id": "o-1", "sku": "B-1", "category_id": "bags", "unit_price": 250000, "quantity": 1, "currency": "EUR"}"#,
    );
    let run = |order: [(&str, &str); 2]| {
        let output = veneer(&[
            "plugin",
            "run",
            "--hook",
            "commission",
            "--input",
            &sale,
            "--plugin",
            order[0].0,
            "--settings",
            order[0].1,
            "--plugin",
            order[1].0,
            "--settings",
            order[1].1,
            "--json",
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        json(&output)
    };
    let lux = (built_plugins::LUXURY_CONSIGNMENT, luxury.as_str());
    let decl = (built_plugins::DECLARATIVE_OVERRIDES, patches.as_str());
    let report = run([lux, decl]);
    assert_eq!(report["source"], "plugin", "{report}");
    assert_eq!(report["output"]["rate_bps"], 900, "patches last: {report}");
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2);
    assert!(
        steps
            .iter()
            .all(|s| s["outcome"] == "ok" && s["fuel_used"].as_u64() > Some(0))
    );
    // The other order: luxury decides last.
    let report = run([decl, lux]);
    assert_eq!(report["output"]["rule_id"], "luxury-tier-0", "{report}");
    assert_ne!(report["output"]["rate_bps"], 900, "{report}");

    // A step that refuses its settings is skipped, as the host does; exit 1.
    let bad = write_temp(&dir, "bad.json", r#"{"accent_color": "gold"}"#);
    let output = veneer(&[
        "plugin",
        "run",
        "--hook",
        "commission",
        "--input",
        &sale,
        "--plugin",
        built_plugins::LUXURY_CONSIGNMENT,
        "--settings",
        &bad,
        "--plugin",
        built_plugins::DECLARATIVE_OVERRIDES,
        "--settings",
        &patches,
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let report = json(&output);
    assert_eq!(report["steps"][0]["outcome"], "plugin_error", "{report}");
    assert_eq!(report["steps"][1]["outcome"], "ok");
    assert_eq!(report["output"]["rate_bps"], 900, "its input passed on");

    // Settings must pair with plugins.
    let output = veneer(&[
        "plugin",
        "run",
        "--hook",
        "commission",
        "--plugin",
        built_plugins::LUXURY_CONSIGNMENT,
        "--plugin",
        built_plugins::DECLARATIVE_OVERRIDES,
        "--settings",
        &patches,
    ]);
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("one per --plugin"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// `--policy` applies an output policy as the host does: a result breaking it
/// ends `policy_violation` and is not what the run outputs.
#[test]
fn plugin_run_applies_an_output_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = write_temp(
        &dir,
        "policy.json",
        r#"{"commission": {"max_rate_bps": 100}}"#,
    );
    let output = veneer(&[
        "plugin",
        "run",
        built_plugins::LUXURY_CONSIGNMENT,
        "--hook",
        "commission",
        "--policy",
        &policy,
        "--json",
    ]);
    assert_eq!(output.status.code(), Some(1));
    let report = json(&output);
    assert_eq!(
        report["steps"][0]["outcome"], "policy_violation",
        "{report}"
    );
    assert!(
        report["steps"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("maximum of 100")),
        "{report}"
    );
    assert_eq!(report["source"], "base", "{report}");
    let bad = write_temp(
        &dir,
        "bad.json",
        r#"{"commission": {"max_rate_bps": 20000}}"#,
    );
    let output = veneer(&[
        "plugin",
        "run",
        built_plugins::LUXURY_CONSIGNMENT,
        "--hook",
        "commission",
        "--policy",
        &bad,
    ]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("max_rate_bps"));
}

/// `plugin diff` compares two plugins (or settings) locally: the sections
/// they change and the commission's blast radius over a file of sales.
#[test]
fn plugin_diff_reports_sections_and_the_blast_radius() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tiers = r#""tiers": [{"from": 0, "rate_bps": 2500}], "unauthenticated_surcharge_bps": 0"#;
    let old = write_temp(&dir, "old.json", &format!(r#"{{"cap": 120000, {tiers}}}"#));
    let new = write_temp(&dir, "new.json", &format!(r#"{{"cap": 5000, {tiers}}}"#));
    let sale = |order: &str, price: u64| {
        format!(
            r#"{{"order_id": "{order}", "sku": "S-{order}", "category_id": "bags", "unit_price": {price}, "quantity": 1, "currency": "EUR"}}"#
        )
    };
    let sales = write_temp(
        &dir,
        "sales.jsonl",
        &[
            sale("small", 1_000),
            sale("big-1", 100_000),
            sale("big-2", 200_000),
        ]
        .join("\n"),
    );
    let output = veneer(&[
        "plugin",
        "diff",
        built_plugins::LUXURY_CONSIGNMENT,
        built_plugins::LUXURY_CONSIGNMENT,
        "--old-settings",
        &old,
        "--settings",
        &new,
        "--sales",
        &sales,
        "--json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json(&output);
    assert_eq!(
        report["diff"]["unchanged"], true,
        "same plugin, same sections: {report}"
    );
    let b = &report["blast_radius"];
    assert_eq!(b["lines"], 3, "{report}");
    assert_eq!(
        b["affected"], 2,
        "the two big lines hit the new cap: {report}"
    );
    assert_eq!(b["largest_increase"], serde_json::Value::Null);
    assert_eq!(b["largest_decrease"]["order_id"], "big-2", "{report}");
    assert_eq!(b["largest_decrease"]["after"], 5000);
    // Fees: 25 % of 100000 and of 200000 before, 5000 each after; the small
    // line (250 at 25 %) is unchanged.
    assert_eq!(b["total_before"], 250 + 25_000 + 50_000, "{report}");
    assert_eq!(b["total_after"], 250 + 5_000 + 5_000, "{report}");

    // Two different plugins: their sections differ.
    let output = veneer(&[
        "plugin",
        "diff",
        built_plugins::LUXURY_CONSIGNMENT,
        built_plugins::SNEAKER_STORE,
        "--old-settings",
        &old,
        "--json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report = json(&output);
    assert_eq!(report["diff"]["unchanged"], false, "{report}");
    assert!(
        report["diff"]["categories"]["added"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    );
}

/// `veneer serve --log-format json`: one JSON access line per request with the
/// tenant, path, status, latency and request id (the client's, echoed back, or
/// a fresh one), and no terminal colour codes when stderr is not a terminal.
#[test]
fn serve_writes_one_json_access_line_per_request() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("log.db").display());
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut child = Command::new(env!("CARGO_BIN_EXE_veneer"))
        .args([
            "serve",
            "--dev",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            &db,
            "--artifact-dir",
        ])
        .arg(dir.path().join("artifacts"))
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .expect("veneer serve starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut addr = None;
    let mut token = None;
    // Kept open (and drained) to the end: a closed pipe would end the server.
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("utf-8 output");
        if let Some(rest) = line.strip_prefix("veneer listening on http://") {
            addr = rest.split_whitespace().next().map(str::to_owned);
        }
        if let Some(t) = line.trim().strip_prefix("export ACME_TOKEN=") {
            token = Some(t.to_owned());
        }
        if line.contains("/v1/admin/tenants") {
            break;
        }
    }
    let (addr, token) = (addr.expect("address"), token.expect("token"));
    let drain = std::thread::spawn(move || lines.count());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let (echoed, fresh) = rt.block_on(async {
        let client = reqwest::Client::new();
        let one = client
            .get(format!("http://{addr}/v1/config/categories"))
            .header("host", "acme.localhost")
            .header("x-request-id", "req-42.a_b")
            .bearer_auth(&token)
            .send()
            .await
            .expect("answered");
        assert_eq!(one.status(), 200);
        let two = client
            .get(format!("http://{addr}/v1/nothing-here"))
            .header("host", "acme.localhost")
            .header("x-request-id", "not ok: spaces")
            .send()
            .await
            .expect("answered");
        assert_eq!(two.status(), 404);
        (
            one.headers()["x-request-id"].to_str().unwrap().to_owned(),
            two.headers()["x-request-id"].to_str().unwrap().to_owned(),
        )
    });
    assert_eq!(echoed, "req-42.a_b");
    assert_ne!(fresh, "not ok: spaces");
    assert_eq!(fresh.len(), 16, "{fresh}");
    // Lines are written as requests end; give the writer a moment.
    let mut text = String::new();
    for _ in 0..50 {
        text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains(&fresh) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = drain.join();
    assert!(!text.contains('\u{1b}'), "no ANSI codes: {text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let access = |id: &str| {
        lines
            .iter()
            .find(|l| l["target"] == "veneer::access" && l["request_id"] == id)
            .unwrap_or_else(|| panic!("an access line for {id} in {text}"))
            .clone()
    };
    let one = access(&echoed);
    assert_eq!(one["tenant"], "acme", "{one}");
    assert_eq!(one["method"], "GET", "{one}");
    assert_eq!(one["path"], "/v1/config/categories", "{one}");
    assert_eq!(one["status"], 200, "{one}");
    assert!(one["latency_us"].as_u64().is_some(), "{one}");
    assert_eq!(access(&fresh)["status"], 404);
}

#[test]
fn tenant_create_bootstraps_the_first_tenant_of_a_fresh_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let create = |extra: &[&str]| {
        let mut args = vec!["tenant", "create", "--database-url", &url];
        args.extend_from_slice(extra);
        veneer(&args)
    };
    let out = create(&["--id", "acme", "--name", "Acme", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tenant = json(&out);
    assert_eq!(tenant["id"], "acme");
    assert_eq!(
        tenant["org_id"], "org_acme",
        "the API's default organisation"
    );
    assert_eq!(tenant["status"], "active");
    assert_eq!(tenant["rate_limit_per_sec"], 200, "the API's default rate");

    // Refused, with the reason: exit 1.
    for (args, says) in [
        (vec!["--id", "acme", "--name", "Again"], "taken"),
        (vec!["--id", "Not An Id", "--name", "X"], "--id"),
        (vec!["--id", "beta", "--name", " "], "name"),
        (
            vec!["--id", "beta", "--name", "Beta", "--max-concurrency", "0"],
            "max_concurrency",
        ),
        (
            vec!["--id", "beta", "--name", "Beta", "--org", "org_acme"],
            "org_acme",
        ),
    ] {
        let out = create(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }

    let out = veneer(&["tenant", "list", "--json", "--database-url", &url]);
    assert!(out.status.success());
    let lines: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["id"], "acme");

    // The command could not run at all: exit 2.
    let out = veneer(&[
        "tenant",
        "create",
        "--id",
        "beta",
        "--name",
        "Beta",
        "--database-url",
        "mysql://nowhere/db",
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn plugin_run_says_when_a_run_reaches_its_limit() {
    // A plugin that spins until its fuel is gone used all of it: the report
    // says the limit was reached (it once said "within every limit").
    let dir = tempfile::tempdir().expect("tempdir");
    let settings = write_temp(&dir, "settings.json", r#"{"mode": "spin"}"#);
    let args = [
        "plugin",
        "run",
        built_plugins::v0_1_0::HOSTILE,
        "--hook",
        "categories",
        "--settings",
        &settings,
        "--fuel",
        "1000000",
    ];
    let out = veneer(&args);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("outcome      out_of_fuel"), "{text}");
    assert!(
        text.contains("limit reached: fuel (1000000): the run used all of it"),
        "{text}"
    );
    assert!(!text.contains("below every limit"), "{text}");
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let report = json(&veneer(&json_args));
    assert_eq!(
        report["limits_reached"],
        serde_json::json!([{"quota": "fuel", "limit": 1_000_000}])
    );
}

#[test]
fn plugin_new_writes_a_typescript_project_and_refuses_bad_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let target = dir.path().join("js-plugin");
    let target = target.to_str().expect("utf-8");
    let out = veneer(&[
        "plugin",
        "new",
        "js-plugin",
        "--lang",
        "js",
        "--dir",
        target,
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let project = dir.path().join("js-plugin");
    for file in ["package.json", "src/plugin.ts"] {
        assert!(project.join(file).is_file(), "{file} written");
    }
    assert!(
        std::fs::read_dir(project.join("tests/cases"))
            .expect("fixture cases written")
            .next()
            .is_some()
    );
    // The same project directory again: refused, nothing overwritten.
    let out = veneer(&[
        "plugin",
        "new",
        "js-plugin",
        "--lang",
        "js",
        "--dir",
        target,
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = veneer(&["plugin", "new", "Bad_Name", "--lang", "js", "--dir", target]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a plugin name"));
    let out = veneer(&["plugin", "new", "Bad_Name", "--dir", target]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a plugin name"));
}

/// `veneer` with the plugin builds it starts kept under this build's target
/// directory (and never in the host's own build directory, which cargo holds
/// locked while tests run).
fn veneer_building(args: &[&str]) -> Output {
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_veneer"));
    let target = exe
        .ancestors()
        .nth(2)
        .expect("the binary sits in <target>/<profile>/")
        .join("scaffolded-plugins");
    Command::new(exe)
        .args(args)
        .env_remove("RUST_LOG")
        .env("CARGO_TARGET_DIR", target)
        .output()
        .expect("the veneer binary runs")
}

#[test]
fn a_scaffolded_rust_plugin_builds_and_passes_its_cases_outside_the_repository() {
    let dir = tempfile::tempdir().expect("tempdir");
    let checkout = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("checkout");
    assert!(
        !dir.path()
            .canonicalize()
            .expect("tempdir")
            .starts_with(&checkout),
        "the project is made outside the checkout"
    );
    let project = dir.path().join("capped-fees");
    let project_arg = project.to_str().expect("utf-8 path");
    let out = veneer(&["plugin", "new", "capped-fees", "--dir", project_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).expect("Cargo.toml");
    assert!(
        manifest.contains("veneer-sdk = { path = "),
        "a checkout's veneer depends on its own SDK: {manifest}"
    );
    for file in [
        "README.md",
        "src/lib.rs",
        "tests/cases/commission-capped.json",
    ] {
        assert!(project.join(file).is_file(), "{file}");
    }

    // Build: cargo for wasm32-wasip2, then the upload check.
    let out = veneer_building(&["plugin", "build", project_arg, "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let check = json(&out);
    assert_eq!(check["outcome"], "ok", "{check}");
    assert_eq!(check["plugin"]["hooks"], serde_json::json!(["commission"]));

    // Its cases pass as written...
    let out = veneer_building(&["plugin", "test", project_arg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("3 passed, 0 failed"), "{text}");
    assert!(text.contains("pass  commission-capped.json"), "{text}");
    assert!(text.contains("% left)"), "headroom per case: {text}");

    // ...and a wrong expectation fails the run with exit 1, saying where.
    let case = project.join("tests/cases/commission-capped.json");
    let wrong = std::fs::read_to_string(&case)
        .expect("case")
        .replace("\"fee\": 1500", "\"fee\": 1499");
    std::fs::write(&case, wrong).expect("write case");
    let out = veneer_building(&["plugin", "test", project_arg, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(
        (report["passed"].clone(), report["failed"].clone()),
        (2.into(), 1.into())
    );
    let failed = report["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|case| case["passed"] == false)
        .expect("one failed case");
    assert_eq!(failed["case"], "commission-capped.json");
    assert!(
        failed["failure"]
            .as_str()
            .unwrap_or_default()
            .contains("the output differs at /fee: expected 1499, got 1500"),
        "{failed}"
    );
}

#[test]
fn plugin_test_runs_fixture_cases_against_a_component_and_fails_on_a_wrong_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = dir.path().join("cases");
    std::fs::create_dir(&cases).expect("cases dir");
    let settings = r#"{"cap": 120000, "unauthenticated_surcharge_bps": 500, "tiers": [{"from": 0, "rate_bps": 2500}, {"from": 100000, "rate_bps": 1800}]}"#;
    let input = r#"{"sale": {"order_id": "o-1", "sku": "W-1", "category_id": "watches", "unit_price": 200000, "quantity": 1, "currency": "EUR", "attributes": [{"key": "authenticated", "value": "true"}]},
                    "base": {"rule_id": "watches", "rate_bps": 1500, "min_fee": 500, "max_fee": 100000, "fee": 30000, "note": ""}}"#;
    let case = |name: &str, rest: &str| {
        std::fs::write(
            cases.join(name),
            format!(
                r#"{{"hook": "commission", "settings": {settings}, "input": {input}, {rest}}}"#
            ),
        )
        .expect("write case");
    };
    case(
        "a-tier.json",
        r#""expect": {"output": {"rule_id": "luxury-tier-100000", "rate_bps": 1800, "min_fee": 500, "max_fee": 120000, "fee": 36000, "note": "consignment tier from 100000 at 1800 bp, capped at 120000"}}"#,
    );
    case(
        "b-policy.json",
        r#""policy": {"commission": {"max_rate_bps": 1000}}, "expect": {"outcome": "policy_violation"}"#,
    );
    case(
        "c-fuel.json",
        r#""quota": {"fuel": 1000}, "expect": {"outcome": "out_of_fuel"}"#,
    );
    let run = |json: bool| {
        let mut args = vec![
            "plugin",
            "test",
            "--component",
            built_plugins::v0_1_0::LUXURY_CONSIGNMENT,
            "--cases",
            cases.to_str().expect("utf-8"),
        ];
        if json {
            args.push("--json");
        }
        veneer(&args)
    };
    let out = run(false);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("pass  a-tier.json"), "{text}");
    assert!(text.contains("% left)"), "headroom per case: {text}");
    assert!(
        text.contains("fuel 1000 of 1000: LIMIT REACHED"),
        "a run at its limit says so: {text}"
    );
    assert!(text.ends_with("3 passed, 0 failed\n"), "{text}");

    case(
        "d-wrong.json",
        r#""expect": {"output": {"rule_id": "luxury-tier-100000", "rate_bps": 1800, "min_fee": 500, "max_fee": 120000, "fee": 35999, "note": "consignment tier from 100000 at 1800 bp, capped at 120000"}}"#,
    );
    let out = run(true);
    assert_eq!(out.status.code(), Some(1));
    let report = json(&out);
    assert_eq!(report["passed"], 3);
    assert_eq!(report["failed"], 1);
    assert_eq!(report["cases"][3]["case"], "d-wrong.json");
    assert_eq!(
        report["cases"][3]["failure"],
        "the output differs at /fee: expected 35999, got 36000"
    );
    assert_eq!(
        report["cases"][2]["run"]["limits_reached"],
        serde_json::json!(["fuel"])
    );
}
