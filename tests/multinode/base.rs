//! A base-configuration reload reaches every node: SIGHUP on one node reloads
//! its `--base-config` directory and the other node, told through the
//! invalidation feed, reloads its own; both serve the new base.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use veneer::auth::OrgRole;

use crate::harness::{Node, TestDb, runtime, serial, token};
use veneer::test_support::Db;

fn base_copy(into: &std::path::Path) -> std::path::PathBuf {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read") {
            let entry = entry.expect("entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }
    let dir = into.join("base-config");
    copy(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../base-config"),
        &dir,
    );
    dir
}

async fn serves_category(node: &Node, id: &str, within: Duration) -> bool {
    let admin = token("globex", OrgRole::Admin);
    let start = Instant::now();
    loop {
        let (status, body) = node
            .call(
                Method::GET,
                "globex",
                "/v1/config/categories",
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body.to_string().contains(&format!("\"{id}\"")) {
            return true;
        }
        if start.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn a_sighup_reload_on_one_node_reaches_the_other() {
    let _serial = serial();
    runtime().block_on(async {
        let db = TestDb::new(Db::Postgres).await;
        let dirs = tempfile::tempdir().expect("tempdir");
        let (one, two) = (
            base_copy(&dirs.path().join("one")),
            base_copy(&dirs.path().join("two")),
        );
        let flag = |dir: &std::path::Path| vec!["--base-config".to_owned(), dir.display().to_string()];
        let node1 = Node::start("node1", &db, &flag(&one)).await;
        let node2 = Node::start("node2", &db, &flag(&two)).await;
        assert!(!serves_category(&node2, "bags-retro", Duration::ZERO).await);

        // The same new base deployed to both nodes' directories.
        let extra = "\n[[category]]\nid = \"bags-retro\"\nparent = \"bags\"\nname = \"Retro\"\nslug = \"retro\"\nposition = 95\n";
        for dir in [&one, &two] {
            let path = dir.join("categories.toml");
            let mut text = std::fs::read_to_string(&path).expect("read");
            text.push_str(extra);
            std::fs::write(&path, text).expect("write");
        }
        // Nothing changes until a reload is asked for.
        assert!(!serves_category(&node1, "bags-retro", Duration::from_millis(300)).await);

        node1.signal("HUP");
        assert!(
            serves_category(&node1, "bags-retro", Duration::from_secs(10)).await,
            "node1 reloaded on SIGHUP:\n{}",
            node1.log()
        );
        assert!(
            serves_category(&node2, "bags-retro", Duration::from_secs(5)).await,
            "node2 followed:\n{}",
            node2.log()
        );
    });
}
