//! The global rate-limit mode: a tenant's request rate is shared by every node,
//! where the local mode gives each node the whole rate.

use reqwest::{Method, StatusCode};
use serde_json::json;
use veneer::auth::OrgRole;

use crate::harness::{Node, TestDb, platform_admin, runtime, serial, token};
use veneer::test_support::Db;

/// Successes out of `total` GET /v1/quota requests sent alternately to both
/// nodes as fast as they answer.
async fn successes(nodes: [&Node; 2], total: usize) -> usize {
    let member = token("acme", OrgRole::Member);
    let mut ok = 0;
    for i in 0..total {
        let (status, body) = nodes[i % 2]
            .call(Method::GET, "acme", "/v1/quota", Some(&member), None)
            .await;
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {}
            other => panic!("unexpected {other}: {body}"),
        }
    }
    ok
}

#[test]
fn the_global_mode_shares_one_rate_between_nodes() {
    let _serial = serial();
    runtime().block_on(async {
        let db = TestDb::new(Db::Postgres).await;
        let global = ["--rate-limit-mode".to_owned(), "global".to_owned()];
        let node1 = Node::start("node1", &db, &global).await;
        let node2 = Node::start("node2", &db, &global).await;
        // 4 requests a second, burst 4: two local limiters would let 8 through.
        let (status, body) = node1
            .call(
                Method::PATCH,
                "",
                "/v1/admin/tenants/acme",
                Some(&platform_admin()),
                Some(&json!({ "rate_limit_per_sec": 4, "rate_limit_burst": 4 })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Let the tenant change reach node 2 and a fresh window start.
        tokio::time::sleep(std::time::Duration::from_millis(1_200)).await;
        let ok = successes([&node1, &node2], 24).await;
        assert!(ok >= 1, "some requests pass");
        assert!(
            ok <= 6,
            "{ok} requests passed across two nodes; the shared rate is 4 a second"
        );
    });
}
