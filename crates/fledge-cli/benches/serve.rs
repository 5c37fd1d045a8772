//! How many concurrent deployments one `fledge serve` holds, each evaluated every 5 s, and
//! how long a restart takes to resume them all.
//!
//! `cargo bench -p fledge-cli --bench serve` (release build). BENCH_DEPLOYMENTS (default
//! 10000) deployments, spread over functions of 100 aliases each, are created on a
//! `fledge local` running as its own process; each holds at 10% for a day and reads its
//! CloudWatch metrics every 5 s. After BENCH_SECONDS (default 60) of steady state the server
//! is killed with SIGKILL and started again, and the time until every deployment has
//! resumed is measured. Reported: the server's resident memory (now and peak), its CPU, the
//! checks committed per second, and the gaps between one deployment's checks.

use std::process::Child;
use std::time::{Duration, Instant};

#[path = "../tests/support/mod.rs"]
mod support;
use support::{create_sample, lambda_client, spawn_until};

const TOKEN: &str = "bench";
const ALIASES_PER_FUNCTION: usize = 100;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Starts `fledge …` and returns it once it printed `marker`, with the rest of that line.
fn start(args: &[&str], marker: &str) -> (Child, String) {
    spawn_until(args, &[("FLEDGE_LOG", "error")], marker)
}

/// (resident KiB, peak resident KiB, CPU seconds) of a process.
fn usage(pid: u32) -> (u64, u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat; 12 and 13 after the command name.
    (
        kib("VmRSS:"),
        kib("VmHWM:"),
        (ticks(11) + ticks(12)) / 100.0,
    )
}

/// One number from the server's database (read-only, beside the running server: WAL
/// lets a reader in).
fn sql_count(db: &std::path::Path, query: &str) -> u64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row(query, [], |r| r.get::<_, Option<f64>>(0))
        .unwrap()
        .unwrap_or(0.0) as u64
}

#[tokio::main]
async fn main() {
    let n: usize = env_or("BENCH_DEPLOYMENTS", 10_000);
    let seconds: u64 = env_or("BENCH_SECONDS", 60);
    let dir = std::env::temp_dir().join(format!("fledge-bench-serve-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("fledge.db");
    let (mut local, endpoint) = start(
        &[
            "local",
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            dir.join("local").to_str().unwrap(),
        ],
        "serving the Lambda and CloudWatch APIs on ",
    );
    let endpoint = endpoint.trim().to_owned();
    let lambda = lambda_client(&endpoint);
    let functions = n.div_ceil(ALIASES_PER_FUNCTION);
    let t = Instant::now();
    for f in 0..functions {
        let name = format!("f{f}");
        create_sample(&lambda, &name, &[]).await;
        lambda
            .update_function_configuration()
            .function_name(&name)
            .description("v2")
            .send()
            .await
            .unwrap();
        lambda
            .publish_version()
            .function_name(&name)
            .send()
            .await
            .unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for a in 0..ALIASES_PER_FUNCTION.min(n - f * ALIASES_PER_FUNCTION) {
            let (lambda, name) = (lambda.clone(), name.clone());
            tasks.spawn(async move {
                lambda
                    .create_alias()
                    .function_name(name)
                    .name(format!("a{a}"))
                    .function_version("1")
                    .send()
                    .await
                    .unwrap();
            });
        }
        tasks.join_all().await;
    }
    eprintln!(
        "{functions} functions and {n} aliases on fledge local in {:.1}s",
        t.elapsed().as_secs_f64()
    );

    let serve_args = |db: &std::path::Path| {
        vec![
            "serve".to_owned(),
            "--addr".into(),
            "127.0.0.1:0".into(),
            "--token".into(),
            TOKEN.into(),
            "--db".into(),
            db.display().to_string(),
            "--endpoint-url".into(),
            endpoint.clone(),
        ]
    };
    let args = serve_args(&db);
    let (mut server, url) = start(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "listening on ",
    );
    let url = url.split_whitespace().next().unwrap().to_owned();
    let http = reqwest::Client::new();
    let t = Instant::now();
    let file = |f: usize, a: usize| {
        format!(
            "function: f{f}\nalias: a{a}\nversion: 2\nstrategy: canary:10%/1d\nchecks:\n  interval: 5s\n"
        )
    };
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (http, url, sem) = (http.clone(), url.clone(), sem.clone());
        let body =
            serde_json::json!({"file": file(i / ALIASES_PER_FUNCTION, i % ALIASES_PER_FUNCTION)});
        tasks.spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            let answer = http
                .post(format!("{url}/v1/deployments"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(
                answer.status().as_u16(),
                201,
                "{}",
                answer.text().await.unwrap()
            );
        });
    }
    tasks.join_all().await;
    let created_in = t.elapsed().as_secs_f64();
    eprintln!(
        "{n} deployments created in {created_in:.1}s ({:.0}/s)",
        n as f64 / created_in
    );

    // Let every deployment shift and settle into its 5 s checks, then measure.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let checked = |db: &std::path::Path| {
        sql_count(
            db,
            "SELECT COUNT(*) FROM events WHERE body LIKE '{\"at\":%,\"event\":\"checked\"%'",
        )
    };
    let (_, _, cpu0) = usage(server.id());
    let (_, _, local_cpu0) = usage(local.id());
    let c0 = checked(&db);
    let window_start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut rss_max = 0;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(seconds) {
        tokio::time::sleep(Duration::from_secs(5)).await;
        rss_max = rss_max.max(usage(server.id()).0);
    }
    let elapsed = t.elapsed().as_secs_f64();
    let (rss, hwm, cpu1) = usage(server.id());
    let (_, _, local_cpu1) = usage(local.id());
    let c1 = checked(&db);
    let shifted = sql_count(
        &db,
        "SELECT COUNT(*) FROM deployments WHERE step = 1 AND finished_at IS NULL",
    );
    // Gaps between a deployment's consecutive checks within the window.
    let gaps = format!(
        "WITH c AS (SELECT deployment_id d, at, LAG(at) OVER (PARTITION BY deployment_id ORDER BY seq) prev FROM events
          WHERE at >= {window_start} AND body LIKE '{{\"at\":%,\"event\":\"checked\"%')
         SELECT {{}} FROM c WHERE prev IS NOT NULL"
    );
    let max_gap = sql_count(&db, &gaps.replace("{}", "MAX(at - prev)"));
    let mean_gap = sql_count(&db, &gaps.replace("{}", "AVG(at - prev)"));
    let db_size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.join("fledge.db-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!("deployments: {n} active ({shifted} holding at 10%), each checked every 5 s");
    println!(
        "server memory: {:.0} MiB resident now, {:.0} MiB peak (sampled max {:.0} MiB)",
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        rss_max as f64 / 1024.0
    );
    println!(
        "server CPU: {:.0}% of one core; fledge local (answering GetMetricData) {:.0}%",
        (cpu1 - cpu0) / elapsed * 100.0,
        (local_cpu1 - local_cpu0) / elapsed * 100.0
    );
    println!(
        "checks committed: {:.0}/s over {elapsed:.0}s (one per deployment per 5 s would be {:.0}/s)",
        (c1 - c0) as f64 / elapsed,
        n as f64 / 5.0
    );
    println!("gap between one deployment's checks: mean {mean_gap} ms, max {max_gap} ms");
    println!("database: {:.0} MiB", db_size as f64 / 1_048_576.0);

    // Restart: SIGKILL, start again, and time until every deployment has resumed.
    server.kill().unwrap();
    server.wait().unwrap();
    let restarted_before = sql_count(
        &db,
        "SELECT COUNT(*) FROM events WHERE body LIKE '{\"at\":%,\"event\":\"restarted\"%'",
    );
    let t = Instant::now();
    let (mut server, _) = start(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "listening on ",
    );
    let listening = t.elapsed().as_secs_f64();
    loop {
        let resumed = sql_count(
            &db,
            "SELECT COUNT(*) FROM events WHERE body LIKE '{\"at\":%,\"event\":\"restarted\"%'",
        ) - restarted_before;
        if resumed >= n as u64 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(600),
            "only {resumed} resumed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resumed_in = t.elapsed().as_secs_f64();
    println!(
        "restart after SIGKILL: listening after {listening:.2}s, all {n} deployments resumed (their in-flight work settled and committed) after {resumed_in:.2}s"
    );
    let (rss, _, _) = usage(server.id());
    println!(
        "server memory after the restart: {:.0} MiB",
        rss as f64 / 1024.0
    );
    let _ = server.kill();
    let _ = server.wait();
    let _ = local.kill();
    let _ = local.wait();
    let _ = std::fs::remove_dir_all(&dir);
}
