//! The hostile-plugin suite: each misbehaviour ends in its classified outcome,
//! within its limits, and the host stays healthy — a good call right after every
//! failure still succeeds. `docs/security.md` lists these cases.

use std::sync::Arc;

use veneer::base::Category;
use veneer::resolve::{Resolver, Source};
use veneer::runtime::hook;
use veneer::runtime::{
    CheckError, Outcome, OutcomeKind, Quota, Run, Runtime, RuntimeConfig, TenantData,
};

use crate::util::{base, fixture, hostile, runtime, sale, settings, tenant};

fn categories(data: Arc<dyn TenantData>, quota: &Quota) -> Run<Vec<Category>> {
    let plugin = hostile();
    runtime().run::<hook::Categories>(&plugin, None, data, quota, &base().categories)
}

/// The host is unharmed: the same plugin, well-behaved, succeeds right away.
fn good_call_succeeds() {
    let plugin = hostile();
    let run = runtime().run::<hook::Commission>(
        &plugin,
        None,
        settings(r#"{"mode": "ok"}"#),
        &Quota::default(),
        (
            &sale("bags", 10_000),
            &base().decide_commission(&sale("bags", 10_000)),
        ),
    );
    assert_eq!(
        run.outcome.kind(),
        OutcomeKind::Ok,
        "{:?}",
        run.outcome.message()
    );
}

fn mode(json: &str) -> Arc<dyn TenantData> {
    settings(json)
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let quota = Quota::default();
    let run = categories(mode(r#"{"mode": "spin"}"#), &quota);
    assert_eq!(run.outcome, Outcome::OutOfFuel);
    assert!(
        run.stats.fuel_used >= quota.fuel - 10,
        "used {}",
        run.stats.fuel_used
    );
    good_call_succeeds();
}

#[test]
fn loop_under_a_huge_fuel_budget_hits_the_deadline() {
    let quota = Quota {
        fuel: u64::MAX / 4,
        deadline_ms: 50,
        ..Quota::default()
    };
    let run = categories(mode(r#"{"mode": "spin"}"#), &quota);
    assert_eq!(run.outcome, Outcome::Deadline);
    assert!(run.stats.wall_time.as_millis() >= 50);
    good_call_succeeds();
}

#[test]
fn memory_grow_towards_4_gib_is_out_of_memory() {
    let quota = Quota::default();
    let run = categories(mode(r#"{"mode": "grow"}"#), &quota);
    assert_eq!(
        run.outcome.kind(),
        OutcomeKind::OutOfMemory,
        "{:?}",
        run.outcome
    );
    assert!(run.stats.peak_memory_bytes <= quota.memory_bytes);
    good_call_succeeds();
}

#[test]
fn allocating_forever_is_out_of_memory() {
    // Touching every page costs fuel: give enough that memory is what runs out.
    let quota = Quota {
        fuel: 2_000_000_000,
        deadline_ms: 10_000,
        ..Quota::default()
    };
    let run = categories(mode(r#"{"mode": "alloc"}"#), &quota);
    assert_eq!(
        run.outcome.kind(),
        OutcomeKind::OutOfMemory,
        "{:?}",
        run.outcome
    );
    good_call_succeeds();
}

#[test]
fn initial_memory_above_the_cap_is_refused_at_instantiation() {
    // A Rust component starts with over 1 MiB (its stack alone); allow 512 KiB.
    let quota = Quota {
        memory_bytes: 512 << 10,
        ..Quota::default()
    };
    let run = categories(mode(r#"{"mode": "ok"}"#), &quota);
    assert_eq!(
        run.outcome.kind(),
        OutcomeKind::OutOfMemory,
        "{:?}",
        run.outcome
    );
    assert_eq!(run.stats.fuel_used, 0, "nothing ran");
    good_call_succeeds();
}

#[test]
fn unbounded_recursion_is_a_stack_overflow_trap() {
    // Small frames live in wasm locals: the engine's bounded wasm stack stops them.
    let run = categories(mode(r#"{"mode": "recurse-small"}"#), &Quota::default());
    match &run.outcome {
        Outcome::Trap { message, .. } => {
            assert!(message.contains("overflowed its stack"), "{message}")
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    good_call_succeeds();
}

#[test]
fn recursion_with_big_frames_exhausts_the_linear_memory_stack_and_traps() {
    // Big frames live on Rust's stack in linear memory, which ends at address 0.
    let run = categories(mode(r#"{"mode": "recurse"}"#), &Quota::default());
    match &run.outcome {
        Outcome::Trap { message, .. } => assert!(message.contains("stack"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    good_call_succeeds();
}

#[test]
fn a_100_mib_output_runs_out_of_memory_first() {
    let run = categories(
        mode(r#"{"mode": "big-output", "bytes": 104857600}"#),
        &Quota::default(),
    );
    assert_eq!(
        run.outcome.kind(),
        OutcomeKind::OutOfMemory,
        "{:?}",
        run.outcome
    );
    good_call_succeeds();
}

#[test]
fn an_output_over_the_output_cap_is_invalid() {
    let quota = Quota {
        memory_bytes: 256 << 20,
        ..Quota::default()
    };
    let run = categories(mode(r#"{"mode": "big-output", "bytes": 2097152}"#), &quota);
    match &run.outcome {
        Outcome::InvalidOutput { reason } => assert!(reason.contains("output cap"), "{reason}"),
        other => panic!("expected invalid output, got {other:?}"),
    }
    good_call_succeeds();
}

#[test]
fn unreachable_is_a_trap_with_a_backtrace() {
    let run = categories(mode(r#"{"mode": "unreachable"}"#), &Quota::default());
    match &run.outcome {
        Outcome::Trap { message, backtrace } => {
            assert!(message.contains("unreachable"), "{message}");
            let backtrace = backtrace.as_deref().unwrap_or_default();
            assert!(backtrace.contains("wasm"), "backtrace: {backtrace}");
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    good_call_succeeds();
}

#[test]
fn division_by_zero_is_a_trap_and_says_so_on_stderr() {
    let run = categories(mode(r#"{"mode": "div-zero"}"#), &Quota::default());
    assert_eq!(run.outcome.kind(), OutcomeKind::Trap, "{:?}", run.outcome);
    let stderr: String = run.stats.logs.iter().map(|l| l.message.as_str()).collect();
    assert!(stderr.contains("divide by zero"), "logs: {stderr}");
    good_call_succeeds();
}

#[test]
fn a_rust_panic_is_a_trap_with_the_panic_message_in_the_log() {
    let run = categories(mode(r#"{"mode": "panic"}"#), &Quota::default());
    assert_eq!(run.outcome.kind(), OutcomeKind::Trap, "{:?}", run.outcome);
    assert!(
        run.stats
            .logs
            .iter()
            .any(|l| l.message.contains("panicked on purpose")),
        "{:?}",
        run.stats.logs
    );
    good_call_succeeds();
}

#[test]
fn a_stdout_flood_is_cut_at_the_log_cap_and_the_call_still_succeeds() {
    // A generous deadline: the test is about the log cap, and 320 writes of
    // a debug build on a loaded machine can take more than the default 250 ms.
    let quota = Quota {
        deadline_ms: 10_000,
        ..Quota::default()
    };
    let run = categories(
        mode(r#"{"mode": "stdout-flood", "bytes": 1048576}"#),
        &quota,
    );
    assert_eq!(run.outcome.kind(), OutcomeKind::Ok, "{:?}", run.outcome);
    assert!(run.stats.logs_truncated);
    let kept: usize = run.stats.logs.iter().map(|l| l.message.len()).sum();
    assert!(kept as u64 <= quota.log_bytes, "kept {kept} bytes");
    good_call_succeeds();
}

#[test]
fn a_log_flood_past_the_host_call_cap_traps() {
    let run = categories(
        mode(r#"{"mode": "log-flood", "bytes": 1048576, "count": 64}"#),
        &Quota::default(),
    );
    match &run.outcome {
        Outcome::Trap { message, .. } => assert!(message.contains("host calls"), "{message}"),
        other => panic!("expected a trap, got {other:?}"),
    }
    good_call_succeeds();
}

#[test]
fn invalid_category_tree_falls_back_to_the_base() {
    let plugin = hostile();
    let resolved = Resolver::new(runtime(), base()).resolve::<hook::Categories>(
        Some(&plugin),
        None,
        mode(r#"{"mode": "bad-tree"}"#),
        &Quota::default(),
        &base().categories,
        (),
    );
    assert_eq!(resolved.source, Source::Base);
    assert_eq!(resolved.value, base().categories);
    let run = resolved.last_run().cloned().expect("the plugin ran");
    assert_eq!(run.outcome, OutcomeKind::InvalidOutput);
    assert!(run.message.unwrap_or_default().contains("cycle"));
    good_call_succeeds();
}

#[test]
fn a_fee_above_the_price_falls_back_to_the_base_decision() {
    let plugin = hostile();
    let sale = sale("bags", 10_000);
    let resolved = Resolver::new(runtime(), base())
        .commission(
            Some(&plugin),
            None,
            mode(r#"{"mode": "bad-tree"}"#),
            &Quota::default(),
            &sale,
        )
        .expect("the sale is valid");
    assert_eq!(resolved.source, Source::Base);
    assert_eq!(resolved.value, base().decide_commission(&sale));
    assert_eq!(
        resolved.last_run().cloned().expect("ran").outcome,
        OutcomeKind::InvalidOutput
    );
}

#[test]
fn a_plugin_error_is_recorded_and_the_base_served() {
    let plugin = hostile();
    let sale = sale("watches", 500_000);
    let resolved = Resolver::new(runtime(), base())
        .commission(
            Some(&plugin),
            None,
            mode(r#"{"mode": "error"}"#),
            &Quota::default(),
            &sale,
        )
        .expect("the sale is valid");
    assert_eq!(resolved.source, Source::Base);
    let run = resolved.last_run().cloned().expect("ran");
    assert_eq!(run.outcome, OutcomeKind::PluginError);
    assert_eq!(
        run.message.as_deref(),
        Some("hostile-error: refused on purpose")
    );
}

#[test]
fn a_plugin_sees_only_the_data_of_the_tenant_it_runs_for() {
    let plugin = hostile();
    let acme = tenant(r#"{"mode": "kv-probe"}"#, &[("acme:secret", "acme-only")]);
    let globex = tenant(
        r#"{"mode": "kv-probe"}"#,
        &[("globex:secret", "globex-only")],
    );
    let sale = sale("bags", 10_000);
    let decision = base().decide_commission(&sale);
    let for_acme = runtime().run::<hook::Commission>(
        &plugin,
        None,
        acme,
        &Quota::default(),
        (&sale, &decision),
    );
    let for_globex = runtime().run::<hook::Commission>(
        &plugin,
        None,
        globex,
        &Quota::default(),
        (&sale, &decision),
    );
    let note = |run: Run<veneer::base::CommissionDecision>| match run.outcome {
        Outcome::Ok(d) => d.note,
        other => panic!("kv-probe should succeed: {other:?}"),
    };
    let (a, g) = (note(for_acme), note(for_globex));
    assert!(a.contains("acme-only") && !a.contains("globex"), "{a}");
    assert!(g.contains("globex-only") && !g.contains("acme"), "{g}");
}

fn rejected(bytes: &[u8]) -> CheckError {
    runtime()
        .load(bytes)
        .expect_err("the component must be refused")
}

#[test]
fn components_importing_filesystem_sockets_or_http_are_rejected_by_name() {
    for (file, import) in [
        ("imports-filesystem.wat", "wasi:filesystem/"),
        ("imports-sockets.wat", "wasi:sockets/"),
        ("imports-http.wat", "wasi:http/"),
    ] {
        let err = rejected(&fixture(file));
        assert_eq!(err.code(), "forbidden_import", "{file}: {err}");
        assert!(err.to_string().contains(import), "{file}: {err}");
    }
    good_call_succeeds();
}

#[test]
fn a_core_module_is_rejected_as_not_a_component() {
    let err = rejected(&fixture("core-module.wat"));
    assert_eq!(err, CheckError::CoreModule);
    assert!(err.to_string().contains("not a component"));
}

#[test]
fn garbage_and_empty_files_are_rejected() {
    assert_eq!(rejected(&fixture("garbage.bin")), CheckError::NotWasm);
    assert_eq!(rejected(&fixture("empty.wasm")), CheckError::Empty);
    let err = rejected(b"(component)");
    assert_eq!(err, CheckError::NotWasm, "text format is not accepted");
}

#[test]
fn a_component_of_another_world_is_rejected() {
    let err = rejected(&fixture("wrong-world.wat"));
    assert_eq!(err.code(), "wrong_world", "{err}");
    assert!(
        err.to_string().contains("veneer:plugin/hooks@0.1.0"),
        "{err}"
    );
}

#[test]
fn a_component_over_the_size_cap_is_rejected() {
    let small = Runtime::new(RuntimeConfig {
        max_component_bytes: 4 << 10,
        max_concurrent_calls: 2,
        ..RuntimeConfig::default()
    })
    .expect("runtime starts");
    let bytes = crate::util::read(veneer_plugin_artifacts::LUXURY_CONSIGNMENT);
    match small.load(&bytes) {
        Err(CheckError::TooLarge { size, cap }) => assert_eq!((size, cap), (bytes.len(), 4 << 10)),
        other => panic!("expected too large, got {other:?}"),
    }
}

// Host calls: the deadline bounds the plugin's waiting in WASI, not only its
// wasm code, and stdio never blocks or touches an async runtime.

/// Far past any deadline below: on a host whose WASI waits block, a call
/// would take this long.
const SLEEP_MS: u64 = 60_000;
/// Generous for a loaded 2-core CI machine, and still far below `SLEEP_MS`.
const SLACK: std::time::Duration = std::time::Duration::from_secs(5);

fn short_deadline() -> Quota {
    Quota {
        deadline_ms: 50,
        ..Quota::default()
    }
}

fn sleeper() -> Arc<dyn TenantData> {
    settings(&format!(r#"{{"mode": "sleep", "count": {SLEEP_MS}}}"#))
}

#[test]
fn a_sleeping_plugin_ends_at_its_deadline_on_every_hook() {
    let plugin = hostile();
    let quota = short_deadline();
    let rt = runtime();
    let email = &base().emails["welcome"];
    let runs = [
        ("categories", {
            let run =
                rt.run::<hook::Categories>(&plugin, None, sleeper(), &quota, &base().categories);
            (run.outcome.kind(), run.stats.wall_time)
        }),
        ("size_charts", {
            let run =
                rt.run::<hook::SizeCharts>(&plugin, None, sleeper(), &quota, &base().size_charts);
            (run.outcome.kind(), run.stats.wall_time)
        }),
        ("commission", {
            let s = sale("bags", 10_000);
            let run = rt.run::<hook::Commission>(
                &plugin,
                None,
                sleeper(),
                &quota,
                (&s, &base().decide_commission(&s)),
            );
            (run.outcome.kind(), run.stats.wall_time)
        }),
        ("email", {
            let run = rt.run::<hook::Email>(
                &plugin,
                None,
                sleeper(),
                &quota,
                (&email.template, &email.sample),
            );
            (run.outcome.kind(), run.stats.wall_time)
        }),
    ];
    for (hook, (kind, wall)) in runs {
        assert_eq!(kind, OutcomeKind::Deadline, "{hook}");
        assert!(wall < SLACK, "{hook} held its thread for {wall:?}");
    }
    good_call_succeeds();
}

#[test]
fn a_sleep_that_fits_in_the_deadline_is_slept() {
    let quota = Quota {
        deadline_ms: 5_000,
        ..Quota::default()
    };
    let run = categories(mode(r#"{"mode": "sleep", "count": 30}"#), &quota);
    assert_eq!(
        run.outcome.kind(),
        OutcomeKind::Ok,
        "{:?}",
        run.outcome.message()
    );
    assert!(run.stats.wall_time >= std::time::Duration::from_millis(30));
}

#[test]
fn a_session_call_that_sleeps_ends_at_its_deadline() {
    let plugin = hostile();
    let mut session = runtime()
        .session(&plugin, sleeper(), &short_deadline())
        .unwrap_or_else(|_| panic!("instantiates"));
    let s = sale("bags", 10_000);
    let started = std::time::Instant::now();
    let outcome = session.run::<hook::Commission>((&s, &base().decide_commission(&s)));
    assert_eq!(outcome.kind(), OutcomeKind::Deadline);
    assert!(started.elapsed() < SLACK);
}

/// On a Tokio worker thread (where a quote's in-place attempt runs), a plugin
/// that prints, panics or sleeps ends in its outcome; the thread never panics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_and_sleep_on_an_async_worker_never_panic_the_host() {
    let plugin = hostile();
    let s = sale("bags", 10_000);
    let decision = base().decide_commission(&s);
    let call = |json: &str, quota: &Quota| {
        runtime().run::<hook::Commission>(&plugin, None, settings(json), quota, (&s, &decision))
    };

    let printed = call(r#"{"mode": "print"}"#, &Quota::default());
    assert_eq!(
        printed.outcome.kind(),
        OutcomeKind::Ok,
        "{:?}",
        printed.outcome.message()
    );
    let lines: Vec<_> = printed
        .stats
        .logs
        .iter()
        .map(|l| l.message.as_str())
        .collect();
    assert!(
        lines.contains(&"hostile plugin printing to stdout"),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"hostile plugin printing to stderr"),
        "{lines:?}"
    );

    let flooded = call(
        r#"{"mode": "stdout-flood", "bytes": 200000}"#,
        &Quota::default(),
    );
    assert_eq!(flooded.outcome.kind(), OutcomeKind::Ok);
    assert!(flooded.stats.logs_truncated);

    let panicked = call(r#"{"mode": "panic"}"#, &Quota::default());
    assert_eq!(panicked.outcome.kind(), OutcomeKind::Trap);
    assert!(
        panicked
            .stats
            .logs
            .iter()
            .any(|l| l.message.contains("panicked on purpose")),
        "{:?}",
        panicked.stats.logs
    );

    let slept = call(
        &format!(r#"{{"mode": "sleep", "count": {SLEEP_MS}}}"#),
        &short_deadline(),
    );
    assert_eq!(slept.outcome.kind(), OutcomeKind::Deadline);
    assert!(slept.stats.wall_time < SLACK);
    good_call_succeeds();
}

#[test]
fn a_component_whose_describe_sleeps_is_rejected_at_its_deadline() {
    let rt = Runtime::new(RuntimeConfig::default()).expect("runtime starts");
    let started = std::time::Instant::now();
    let err = rt
        .load(&crate::util::read(
            veneer_plugin_artifacts::HOSTILE_DESCRIBE,
        ))
        .expect_err("refused");
    assert_eq!(err.code(), "describe_failed", "{err}");
    assert!(err.to_string().contains("deadline"), "{err}");
    assert!(started.elapsed() < SLACK + std::time::Duration::from_secs(10));
    good_call_succeeds();
}
