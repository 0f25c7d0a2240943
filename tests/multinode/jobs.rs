//! 1,000 email sends queued, two nodes working them, one node killed (SIGKILL)
//! halfway: every job ends done exactly once and every message is sent.
//!
//! What "exactly once" can mean for SMTP: a job's effect (the relay accepting
//! the message) and its record (`sent`, job `done`) cannot commit together. A
//! node killed after the relay's 250 and before the database commit leaves a
//! job that another node reclaims after the lease and sends again, with the
//! same Message-ID (receivers deduplicate on it). So the test asserts: every
//! job done once, every message sent once in the database, 1,000 distinct
//! Message-IDs received, and any duplicate is one of the killed node's
//! in-flight jobs (reclaimed, attempts ≥ 2) — at most its worker concurrency.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;
use veneer::auth::OrgRole;

use crate::harness::{
    Node, RawSql, TestDb, message_id, platform_admin, runtime, serial, smtp_flags, token,
};
use crate::smtp_server::SmtpServer;
use veneer::test_support::Db;

const JOBS: usize = 1_000;
const CONCURRENCY: usize = 4;

#[test]
fn a_killed_node_loses_no_job_and_none_runs_twice_to_completion() {
    let _serial = serial();
    runtime().block_on(async {
        let db = TestDb::new(Db::Postgres).await;
        let smtp = SmtpServer::start().await;
        let mut flags = smtp_flags(smtp.port());
        // One tenant's 1,000 sends: its running jobs may use every worker
        // (the per-tenant cap is tested in the storage and e2e suites).
        flags.extend([
            "--worker-concurrency".into(),
            CONCURRENCY.to_string(),
            "--jobs-per-tenant".into(),
            CONCURRENCY.to_string(),
        ]);
        let node1 = Node::start("node1", &db, &flags).await;
        let mut node2 = Node::start("node2", &db, &flags).await;
        let admin = token("acme", OrgRole::Admin);

        // Room for 1,000 quick sends in the tenant's rate.
        let (status, body) = node1
            .call(
                Method::PATCH,
                "",
                "/v1/admin/tenants/acme",
                Some(&platform_admin()),
                Some(&json!({ "rate_limit_per_sec": 5_000, "rate_limit_burst": 5_000 })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let settings = json!({
            "sending_domain": "acme.example",
            "from_name": "Acme",
            "from_address": "orders@acme.example",
            "relay": "platform",
        });
        let (status, body) = node1
            .call(
                Method::PUT,
                "acme",
                "/v1/email/settings",
                Some(&admin),
                Some(&settings),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // Enqueue through both nodes, 16 at a time.
        let nodes = [&node1, &node2];
        let mut headers = Vec::with_capacity(JOBS);
        for chunk in (0..JOBS).collect::<Vec<_>>().chunks(16) {
            let sends = chunk.iter().map(|&i| {
                let node = nodes[i % 2];
                let admin = admin.clone();
                async move {
                    let body = json!({
                        "template": "welcome",
                        "to": format!("user{i}@example.com"),
                        "context": { "customer_name": format!("Customer {i}") },
                    });
                    node.call(
                        Method::POST,
                        "acme",
                        "/v1/email/send",
                        Some(&admin),
                        Some(&body),
                    )
                    .await
                }
            });
            for (status, body) in futures_join(sends).await {
                assert_eq!(status, StatusCode::ACCEPTED, "{body}");
                headers.push(
                    body["message_id_header"]
                        .as_str()
                        .expect("header")
                        .to_owned(),
                );
            }
        }

        // Halfway, node 2 dies without a word. The moment is taken from the
        // database's progress, not from a message arriving: killing right as
        // the relay stores a message would aim at the one window where a send
        // cannot be recorded yet.
        let mut sql = RawSql::connect(&db.url).await;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let done = sql
                .scalar("SELECT count(*) FROM jobs WHERE kind = 'email.send' AND state = 'done'")
                .await;
            if done as usize >= JOBS / 2 {
                break;
            }
            assert!(Instant::now() < deadline, "only {done} jobs done");
            tokio::time::sleep(Duration::from_millis(37)).await;
        }
        node2.kill();
        assert!(!node2.alive());
        let at_kill = smtp.messages().len();
        eprintln!("killed node 2 after {at_kill} messages");

        // Node 1 finishes, reclaiming node 2's jobs after their lease (30 s).
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let open = sql
                .scalar("SELECT count(*) FROM jobs WHERE kind = 'email.send' AND state <> 'done'")
                .await;
            if open == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{open} jobs not done; node 1 log:\n{}",
                node1.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }

        let jobs = sql
            .rows("SELECT state, count(*) AS n FROM jobs WHERE kind = 'email.send' GROUP BY state")
            .await;
        assert_eq!(jobs, vec![json!({"state": "done", "n": JOBS})]);
        let states = sql
            .rows("SELECT state, count(*) AS n FROM email_messages GROUP BY state")
            .await;
        assert_eq!(states, vec![json!({"state": "sent", "n": JOBS})]);

        // What the relay saw.
        let received = smtp.messages();
        let mut seen: HashMap<String, usize> = HashMap::new();
        for mail in &received {
            let id = message_id(&mail.text()).expect("every message has a Message-ID");
            *seen.entry(id).or_default() += 1;
        }
        let mut expected = headers.clone();
        expected.sort();
        let mut got: Vec<_> = seen.keys().cloned().collect();
        got.sort();
        assert_eq!(got, expected, "exactly the 1,000 enqueued messages arrived");
        let twice: Vec<_> = seen
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(id, _)| id.clone())
            .collect();
        eprintln!(
            "{} messages received, {} distinct, sent twice: {twice:?}",
            received.len(),
            seen.len()
        );
        assert!(
            twice.len() <= CONCURRENCY,
            "more duplicates ({}) than jobs node 2 could have had in flight",
            twice.len()
        );
        for id in &twice {
            // Our Message-IDs are `<hex@domain>`: safe to splice once checked.
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "<>@.-".contains(c)),
                "{id}"
            );
            let attempts = sql
                .scalar(&format!(
                    "SELECT j.attempts FROM jobs j JOIN email_messages m \
                       ON m.tenant_id = j.tenant_id AND j.dedupe_key = 'email:' || m.id \
                      WHERE m.message_id = '{id}'"
                ))
                .await;
            assert!(attempts >= 2, "{id} was sent twice by a job that ran once");
        }
        drop(node1);
    });
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T>,
{
    let mut pinned: Vec<_> = futures.map(Box::pin).collect();
    let mut out: Vec<Option<T>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, fut) in out.iter_mut().zip(pinned.iter_mut()) {
            if slot.is_none() {
                match fut.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *slot = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("ready")).collect()
}
