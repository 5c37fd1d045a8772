//! `fledge serve` as a user runs it: the real binary, its HTTP API and CLI verbs, against
//! fledge local with real function processes; killed with SIGKILL and started again.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fledge_local::{Platform, PlatformConfig, RunningPlatform};
use serde_json::{Value, json};
use support::{Webhook, create_sample, env, get_text, lambda_client, spawn_until, temp_dir};

const TOKEN: &str = "test-token-3f9a";

struct World {
    platform: Option<RunningPlatform>,
    lambda: aws_sdk_lambda::Client,
    endpoint: String,
    dir: std::path::PathBuf,
    server: Option<Server>,
    http: reqwest::Client,
}

struct Server {
    child: Child,
    url: String,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(mut s) = self.server.take() {
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        drop(self.platform.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl World {
    async fn new(tag: &str) -> World {
        let dir = temp_dir(&format!("serve-{tag}"));
        let platform = Platform::start(
            PlatformConfig::new(dir.join("local")),
            "127.0.0.1:0".parse().unwrap(),
        )
        .await
        .unwrap();
        let endpoint = platform.endpoint();
        World {
            platform: Some(platform),
            lambda: lambda_client(&endpoint),
            endpoint,
            dir,
            server: None,
            http: reqwest::Client::new(),
        }
    }

    /// Function `name` with version 1 (healthy) behind each of `aliases`, and version 2
    /// failing `v2_error_rate` of its invocations.
    async fn function(&self, name: &str, aliases: &[String], v2_error_rate: f64) {
        create_sample(&self.lambda, name, &[("SAMPLE_ERROR_RATE", "0")]).await;
        for alias in aliases {
            self.lambda
                .create_alias()
                .function_name(name)
                .name(alias)
                .function_version("1")
                .send()
                .await
                .unwrap();
        }
        let rate = v2_error_rate.to_string();
        self.lambda
            .update_function_configuration()
            .function_name(name)
            .environment(env(&[("SAMPLE_ERROR_RATE", &rate), ("RELEASE", "2")]))
            .send()
            .await
            .unwrap();
        let v = self
            .lambda
            .publish_version()
            .function_name(name)
            .send()
            .await
            .unwrap();
        assert_eq!(v.version(), Some("2"));
    }

    fn db(&self) -> std::path::PathBuf {
        self.dir.join("fledge.db")
    }

    /// Starts `fledge serve` on a free port and waits until it listens.
    fn start_server(&mut self, extra: &[&str]) {
        let db = self.db();
        let mut args = vec!["serve", "--addr", "127.0.0.1:0", "--token", TOKEN];
        args.extend([
            "--db",
            db.to_str().unwrap(),
            "--endpoint-url",
            &self.endpoint,
        ]);
        args.extend(extra);
        let (child, rest) = spawn_until(
            &args,
            &[("FLEDGE_LOG", "warn")],
            "fledge serve: listening on ",
        );
        let url = rest.split_whitespace().next().unwrap().to_owned();
        self.server = Some(Server { child, url });
    }

    fn kill_server(&mut self) {
        let mut s = self.server.take().expect("a server is running");
        s.child.kill().unwrap(); // SIGKILL
        s.child.wait().unwrap();
    }

    fn url(&self) -> String {
        self.server
            .as_ref()
            .expect("a server is running")
            .url
            .clone()
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url()))
            .bearer_auth(TOKEN);
        if let Some(b) = body {
            request = request
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16();
        let text = answer.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    async fn post(&self, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, body).await
    }

    /// Waits until deployment `id` passes `test`; its detail.
    async fn wait_for(&self, id: &str, what: &str, test: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d = self.get(&format!("/v1/deployments/{id}")).await;
            if test(&d) {
                return d;
            }
            assert!(Instant::now() < deadline, "{id} never {what}: {d}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until deployment `id` has finished; its row.
    async fn finished(&self, id: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let d = self.get(&format!("/v1/deployments/{id}")).await;
            if !d["finished_at"].is_null() {
                return d;
            }
            assert!(Instant::now() < deadline, "{id} did not finish: {d}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn alias(&self, function: &str, alias: &str) -> (String, Option<Value>) {
        let a = self
            .lambda
            .get_alias()
            .function_name(function)
            .name(alias)
            .send()
            .await
            .unwrap();
        let routing = a
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .filter(|w| !w.is_empty())
            .map(|w| json!(w));
        (a.function_version().unwrap_or_default().to_owned(), routing)
    }

    /// `fledge` with the server's address and token in the environment.
    fn fledge(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_fledge"))
            .args(args)
            .env("FLEDGE_SERVER", self.url())
            .env("FLEDGE_TOKEN", TOKEN)
            .output()
            .unwrap()
    }
}

fn file(function: &str, alias: &str, strategy: &str, probe_rate: f64) -> String {
    format!(
        "function: {function}\nalias: {alias}\nversion: 2\nstrategy: \"{strategy}\"\n\
         checks:\n  interval: 1s\n  min_requests: 5\n  metrics: false\n  probe:\n    rate: {probe_rate}\n"
    )
}

/// The API as a client meets it: idempotent creates by name, one deployment per alias,
/// tokens, filters, operator commands, the journal and notifications; and the CLI verbs
/// over it with their exit codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_creates_steers_and_reports_deployments() {
    let mut w = World::new("api").await;
    w.function("f", &["live".to_owned()], 0.0).await;
    let notes = w.dir.join("notes.jsonl");
    let sink = format!(
        "command:cat >> '{}'; echo >> '{}'",
        notes.display(),
        notes.display()
    );
    // An SNS topic on fledge local.
    let topic = support::create_topic(&w.http, &w.endpoint, "releases").await;
    let sns = format!("sns:{topic}");
    let webhook = Webhook::start().await;
    w.start_server(&[
        "--notify",
        &sink,
        "--notify",
        &sns,
        "--notify",
        &webhook.url,
    ]);

    // No token, wrong token.
    let anonymous = w
        .http
        .get(format!("{}/v1/deployments", w.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = w
        .http
        .get(format!("{}/v1/deployments", w.url()))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);

    // Bad input is named.
    let (status, body) = w
        .post(
            "/v1/deployments",
            Some(json!({"file": "function: f\nalias: live\nversion: 2\nstrategy: linear:0x1m\n"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("linear:0x1m"),
        "{body}"
    );
    let (status, body) = w
        .post("/v1/deployments", Some(json!({"file": file("f", "live", "linear:2x1h", 20.0).replace("version: 2", "version: 9")})))
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("version 9"),
        "{body}"
    );

    // Create, and create again by the same name: the same deployment.
    let request = json!({"name": "release-2", "file": file("f", "live", "linear:2x1h", 20.0)});
    let (status, first) = w.post("/v1/deployments", Some(request.clone())).await;
    assert_eq!(status, 201, "{first}");
    let id = first["id"].as_str().unwrap().to_owned();
    let (status, again) = w.post("/v1/deployments", Some(request)).await;
    assert_eq!((status, again["id"].as_str()), (200, Some(id.as_str())));
    // The same name with another request is refused.
    let (status, body) = w
        .post(
            "/v1/deployments",
            Some(json!({"name": "release-2", "file": file("f", "live", "linear:4x1h", 20.0)})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    // A second deployment of the same alias is refused, naming the first.
    let (status, body) = w
        .post(
            "/v1/deployments",
            Some(json!({"file": file("f", "live", "canary:10%/1m", 20.0)})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains(&id),
        "{body}"
    );

    // It shifts to 50% and holds (an hour).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = w.get(&format!("/v1/deployments/{id}")).await;
        // Shifted, and judged on the probe's evidence.
        if d["step"] == 1 && d["phase"] == "shifting" && d["last_verdict"]["evidence"].is_array() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never reached and judged step 1: {d}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        w.alias("f", "live").await,
        ("1".into(), Some(json!({"2": 0.5})))
    );

    // The CLI sees it.
    let out = w.fledge(&["list", "--state", "active"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&id) && text.contains("f:live") && text.contains("50%"),
        "{text}"
    );
    let out = w.fledge(&["list", "--state", "promoted"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&id));
    let out = w.fledge(&["list", "--state", "bogus"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));

    // Pause, then resume, through the CLI. A command is answered once the deployment has
    // taken it and committed it, so the pause shows at once.
    let out = w.fledge(&["pause", &id]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("the hold clock stops"));
    assert_eq!(
        w.get(&format!("/v1/deployments/{id}")).await["paused"],
        true
    );
    // A command the deployment refuses says why, and exits 3.
    let out = w.fledge(&["pause", &id]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already paused"));
    let out = w.fledge(&["resume", &id]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("resumed"));

    // Promote fully; `status --watch` follows it to the end and exits 0.
    let watcher = {
        let (url, bin) = (w.url(), env!("CARGO_BIN_EXE_fledge"));
        let id = id.clone();
        std::thread::spawn(move || {
            Command::new(bin)
                .args(["status", &id, "--watch", "--server", &url, "--token", TOKEN])
                .output()
                .unwrap()
        })
    };
    let out = w.fledge(&["promote", &id, "--fully"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d = w.finished(&id, Duration::from_secs(30)).await;
    assert_eq!(d["outcome"], "promoted", "{d}");
    let watched = watcher.join().unwrap();
    assert_eq!(
        watched.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    assert!(String::from_utf8_lossy(&watched.stderr).contains("PROMOTED"));
    assert_eq!(w.alias("f", "live").await, ("2".into(), None));

    // Operator commands on a finished deployment are refused, and say why.
    let out = w.fledge(&["abort", &id]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has ended"));

    // The journal has the decisions with their numbers.
    let events = w.get(&format!("/v1/deployments/{id}/events")).await;
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["record"]["event"].as_str().unwrap())
        .collect();
    for k in [
        "started",
        "alias_recorded",
        "step_applied",
        "checked",
        "operator",
        "finished",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }

    // Every notable record reached the command sink, the end included.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let n = w.get(&format!("/v1/deployments/{id}/notifications")).await;
        let all = n["notifications"].as_array().unwrap();
        if !all.is_empty() && all.iter().all(|x| x["status"] == "sent") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "notifications not delivered: {n}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let delivered = std::fs::read_to_string(&notes).unwrap();
    let messages: Vec<Value> = delivered
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(messages.iter().any(|m| m["event"] == "started"));
    let end = messages
        .iter()
        .find(|m| m["event"] == "finished")
        .expect("the end was told");
    assert!(
        end["text"].as_str().unwrap().contains("finished promoted"),
        "{end}"
    );
    // The same reached the webhook, as Slack would take it (a `text`).
    let hooked = webhook.received();
    assert_eq!(hooked.len(), messages.len(), "{hooked:?}");
    assert!(
        hooked
            .iter()
            .any(|m| m["text"]
                == format!("fledge {id}: finished promoted: all traffic is on version 2")),
        "{hooked:?}"
    );
    // And to the SNS topic, through the SDK.
    let published: Value = serde_json::from_str(
        &get_text(
            &w.http,
            &format!("{}/_fledge/sns/messages?topic=releases", w.endpoint),
        )
        .await,
    )
    .unwrap();
    let published = published["messages"].as_array().unwrap();
    assert_eq!(published.len(), messages.len(), "{published:?}");
    let end = published
        .iter()
        .find(|m| m["subject"] == format!("fledge {id}: finished"))
        .expect("the end was published");
    let body: Value = serde_json::from_str(end["message"].as_str().unwrap()).unwrap();
    assert_eq!(body["record"]["outcome"], "promoted");

    // Prometheus metrics.
    let metrics = get_text(&w.http, &format!("{}/metrics", w.url())).await;
    assert!(
        metrics.contains("fledge_deployment_outcomes_total{outcome=\"promoted\"} 1"),
        "{metrics}"
    );
}

/// A notification that cannot be delivered is retried, then recorded as failed, visible in
/// the API and the metrics; the deployment does not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_notification_is_recorded_and_never_delays_the_rollout() {
    let mut w = World::new("notify").await;
    w.function("f", &["live".to_owned()], 0.0).await;
    w.start_server(&[
        "--notify",
        "command:echo refused >&2; exit 7",
        "--notify-retries",
        "1",
    ]);
    // Submitted from a file with the CLI, which follows it to the end: the failing sink
    // does not hold the release up.
    let path = w.dir.join("release.yaml");
    std::fs::write(&path, file("f", "live", "all-at-once", 20.0)).unwrap();
    let out = w.fledge(&["submit", path.to_str().unwrap(), "--watch"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("PROMOTED"), "{stderr}");
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let id = id.as_str();
    let d = w.get(&format!("/v1/deployments/{id}")).await;
    assert_eq!(d["outcome"], "promoted", "{d}");
    let deadline = Instant::now() + Duration::from_secs(15);
    let failed = loop {
        let n = w.get(&format!("/v1/deployments/{id}/notifications")).await;
        let all = n["notifications"].as_array().unwrap().clone();
        if !all.is_empty() && all.iter().all(|x| x["status"] == "failed") {
            break all;
        }
        assert!(Instant::now() < deadline, "not marked failed: {n}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(failed.iter().all(|n| n["attempts"] == 2), "{failed:?}");
    assert!(
        failed[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("refused"),
        "{failed:?}"
    );
    let metrics = get_text(&w.http, &format!("{}/metrics", w.url())).await;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("fledge_notification_failures_total "))
        .unwrap();
    assert_eq!(
        line,
        format!("fledge_notification_failures_total {}", failed.len())
    );
}

/// A small random source for kill moments; the seed is printed so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("FLEDGE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("kill moments seeded with FLEDGE_TEST_SEED={seed}");
        Rng(seed | 1)
    }

    /// Uniform in [lo, hi).
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        lo + (self.0 >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
}

/// 200 deployments at once, the server killed with SIGKILL at random moments (one of them
/// while the deployments are still being created) and started again each time: every
/// deployment ends exactly once, healthy releases promoted and faulty ones rolled back, and
/// every alias points at exactly one version with no routing left over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_deployments_survive_sigkill_at_random_moments() {
    const FUNCTIONS: usize = 10;
    const ALIASES: usize = 20;
    let mut w = World::new("sigkill").await;
    let aliases: Vec<String> = (0..ALIASES).map(|a| format!("a{a:02}")).collect();
    for f in 0..FUNCTIONS {
        // Odd functions' version 2 fails every invocation.
        let bad = if f % 2 == 1 { 1.0 } else { 0.0 };
        w.function(&format!("f{f}"), &aliases, bad).await;
    }
    let mut rng = Rng::new();
    w.start_server(&[]);

    // Create all 200 by name, concurrently; a create cut off by a kill is sent again, which
    // the name makes harmless.
    let requests: Vec<(String, Value)> = (0..FUNCTIONS)
        .flat_map(|f| {
            aliases.iter().map(move |a| {
                let name = format!("f{f}-{a}");
                let body =
                    json!({"name": name, "file": file(&format!("f{f}"), a, "linear:2x4s", 3.0)});
                (name, body)
            })
        })
        .collect();
    let create_all = |url: String| {
        let http = reqwest::Client::new();
        let requests = requests.clone();
        async move {
            let mut tasks = tokio::task::JoinSet::new();
            for (name, body) in requests {
                let (http, url) = (http.clone(), url.clone());
                tasks.spawn(async move {
                    let answer = http
                        .post(format!("{url}/v1/deployments"))
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/json")
                        .body(body.to_string())
                        .send()
                        .await;
                    match answer {
                        Ok(a) if a.status().is_success() => Ok(name),
                        Ok(a) => panic!(
                            "creating {name}: {} {}",
                            a.status(),
                            a.text().await.unwrap()
                        ),
                        Err(_) => Err(name),
                    }
                });
            }
            tasks.join_all().await
        }
    };
    // First kill: during the creates.
    let creating = tokio::spawn(create_all(w.url()));
    tokio::time::sleep(Duration::from_secs_f64(rng.between(0.05, 0.4))).await;
    w.kill_server();
    let first_round = creating.await.unwrap();
    let cut_off = first_round.iter().filter(|r| r.is_err()).count();
    w.start_server(&[]);
    let second_round = create_all(w.url()).await;
    assert!(
        second_round.iter().all(Result::is_ok),
        "creates failed after restart"
    );
    eprintln!("{cut_off} creates were cut off by the first kill and sent again");

    // More kills while the deployments run.
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs_f64(rng.between(0.5, 4.0))).await;
        w.kill_server();
        w.start_server(&[]);
    }

    // Wait for every deployment to end.
    let deadline = Instant::now() + Duration::from_secs(240);
    let rows = loop {
        let list = w.get("/v1/deployments?limit=1000").await;
        let rows = list["deployments"].as_array().unwrap().clone();
        if rows.len() == 200 && rows.iter().all(|d| !d["finished_at"].is_null()) {
            break rows;
        }
        let active = rows.iter().filter(|d| d["finished_at"].is_null()).count();
        assert!(
            Instant::now() < deadline,
            "{} deployments, {active} still active",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let mut restarted = 0;
    for d in &rows {
        let (name, id) = (d["name"].as_str().unwrap(), d["id"].as_str().unwrap());
        let (function, alias) = (
            d["function"].as_str().unwrap(),
            d["alias"].as_str().unwrap(),
        );
        assert_eq!(name, format!("{function}-{alias}"));
        let bad = function.trim_start_matches('f').parse::<usize>().unwrap() % 2 == 1;
        let expected = if bad { "rolled_back" } else { "promoted" };
        let events = w
            .get(&format!("/v1/deployments/{id}/events?limit=10000"))
            .await;
        let journal: Vec<String> = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["record"].to_string())
            .collect();
        assert_eq!(
            d["outcome"],
            expected,
            "{name} ({id}): {d}\n{}",
            journal.join("\n")
        );
        let (version, routing) = w.alias(function, alias).await;
        assert_eq!(routing, None, "{function}:{alias} still has routing");
        assert_eq!(version, if bad { "1" } else { "2" }, "{function}:{alias}");
        // Run once: one start and one end in its journal.
        let count = |kind: &str| {
            events["events"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["record"]["event"] == kind)
                .count()
        };
        assert_eq!(
            (count("started"), count("finished")),
            (1, 1),
            "{name} ({id})"
        );
        restarted += usize::from(count("restarted") > 0);
    }
    eprintln!("{restarted} of 200 deployments were resumed after a kill");
    assert!(restarted > 0, "no kill landed while a deployment ran");
}

/// A deployment that would hold for a year: created, paused, resumed and promoted through
/// the API, across two SIGKILLs, keeping its place and its pause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_year_deployment_is_steered_through_the_api_across_restarts() {
    const YEAR_MS: i64 = 365 * 24 * 3600 * 1000;
    let mut w = World::new("year").await;
    w.function("f", &["live".to_owned()], 0.0).await;
    w.start_server(&[]);
    // A second server on the same database is refused: it would drive the same deployments.
    let second = Command::new(env!("CARGO_BIN_EXE_fledge"))
        .args(["serve", "--addr", "127.0.0.1:0", "--token", TOKEN, "--db"])
        .arg(w.db())
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(3));
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains("in use by another fledge serve (process"),
        "{said}"
    );
    let (status, d) = w
        .post(
            "/v1/deployments",
            Some(json!({"name": "slow", "file": file("f", "live", "canary:10%/365d", 10.0)})),
        )
        .await;
    assert_eq!(status, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_owned();
    let d = w
        .wait_for(&id, "shifted", |d| {
            d["step"] == 1 && d["weight"].as_f64() > Some(0.0)
        })
        .await;
    let now = d["updated_at"].as_i64().unwrap();
    let hold_ends = d["hold_ends"].as_i64().unwrap();
    assert!(hold_ends - now > YEAR_MS - 60_000, "a year's hold: {d}");
    assert_eq!(
        w.alias("f", "live").await,
        ("1".into(), Some(json!({"2": 0.1})))
    );

    let (status, _) = w.post(&format!("/v1/deployments/{id}/pause"), None).await;
    assert_eq!(status, 202);
    w.wait_for(&id, "paused", |d| d["paused"] == true).await;

    w.kill_server();
    w.start_server(&[]);
    let d = w.get(&format!("/v1/deployments/{id}")).await;
    assert_eq!(
        (d["paused"].clone(), d["step"].clone()),
        (json!(true), json!(1)),
        "{d}"
    );
    assert!(d["finished_at"].is_null());
    assert_eq!(
        w.alias("f", "live").await,
        ("1".into(), Some(json!({"2": 0.1})))
    );

    let (status, _) = w.post(&format!("/v1/deployments/{id}/resume"), None).await;
    assert_eq!(status, 202);
    let d = w
        .wait_for(&id, "resumed", |d| {
            d["paused"] == false && !d["hold_ends"].is_null()
        })
        .await;
    assert!(
        d["hold_ends"].as_i64().unwrap() - now > YEAR_MS - 60_000,
        "{d}"
    );

    w.kill_server();
    w.start_server(&[]);
    assert_eq!(w.get(&format!("/v1/deployments/{id}")).await["step"], 1);

    // Promote ends the year-long step; the next is 100%, and the release finishes.
    let (status, body) = w.post(&format!("/v1/deployments/{id}/promote"), None).await;
    assert_eq!(status, 202, "{body}");
    let d = w.finished(&id, Duration::from_secs(30)).await;
    assert_eq!(d["outcome"], "promoted", "{d}");
    assert_eq!(w.alias("f", "live").await, ("2".into(), None));
    let events = w.get(&format!("/v1/deployments/{id}/events")).await;
    let restarts = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["record"]["event"] == "restarted")
        .count();
    assert_eq!(restarts, 2);
}

/// Resolves `{"$ref": "#/a/b"}` against the document.
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(
            doc,
            doc.pointer(r.trim_start_matches('#'))
                .unwrap_or_else(|| panic!("dangling {r}")),
        ),
        None => v,
    }
}

/// Checks `value` against the parts of JSON Schema the document uses; errors name the path.
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        validate(doc, part, value, at, errors);
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = |ty: &str| match ty {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        };
        if !types.iter().any(|ty| fits(ty)) {
            errors.push(format!("{at}: {value} is not {types:?}"));
            return;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {options:?}"));
    }
    for key in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = key.as_str().unwrap();
        if value.get(key).is_none() {
            errors.push(format!("{at}: no `{key}`"));
        }
    }
    if let (Some(props), Some(obj)) = (
        schema.get("properties").and_then(Value::as_object),
        value.as_object(),
    ) {
        for (k, s) in props {
            if let Some(v) = obj.get(k) {
                validate(doc, s, v, &format!("{at}.{k}"), errors);
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), value.as_array()) {
        for (i, v) in arr.iter().enumerate() {
            validate(doc, items, v, &format!("{at}[{i}]"), errors);
        }
    }
}

/// The OpenAPI document describes the running server: every operation it lists is called,
/// and every answer's status is one it documents, with a body that fits its schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_running_server() {
    let mut w = World::new("openapi").await;
    w.function("f", &["live".to_owned(), "beta".to_owned()], 0.0)
        .await;
    w.start_server(&["--notify", "command:true"]);
    let doc: Value =
        serde_json::from_str(&get_text(&w.http, &format!("{}/v1/openapi.json", w.url())).await)
            .unwrap();
    let mut called = std::collections::BTreeSet::new();
    let mut errors = Vec::new();
    let mut check = async |method: &str,
                           template: &str,
                           path: &str,
                           token: Option<&str>,
                           body: Option<Value>| {
        let op = doc["paths"][template][method].clone();
        assert!(op.is_object(), "{method} {template} is not documented");
        called.insert((template.to_owned(), method.to_owned()));
        let mut request = w.http.request(
            method.to_uppercase().parse().unwrap(),
            format!("{}{path}", w.url()),
        );
        if let Some(t) = token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let answer = request.send().await.unwrap();
        let status = answer.status().as_u16().to_string();
        let content_type = answer
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let text = answer.text().await.unwrap();
        let Some(response) = op["responses"].get(&status) else {
            errors.push(format!(
                "{method} {path} answered {status}, which is not documented: {text}"
            ));
            return Value::Null;
        };
        let response = resolve(&doc, response);
        let media = if content_type.starts_with("application/json") {
            "application/json"
        } else {
            "text/plain"
        };
        let Some(schema) =
            response.pointer(&format!("/content/{}/schema", media.replace('/', "~1")))
        else {
            errors.push(format!(
                "{method} {path} answered {status} as {content_type}, not documented"
            ));
            return Value::Null;
        };
        let value = if media == "application/json" {
            serde_json::from_str(&text).unwrap()
        } else {
            Value::String(text)
        };
        validate(
            &doc,
            schema,
            &value,
            &format!("{method} {path} {status}"),
            &mut errors,
        );
        value
    };
    let t = Some(TOKEN);
    let create = json!({"name": "doc", "file": file("f", "live", "linear:2x1h", 10.0)});
    let created = check(
        "post",
        "/v1/deployments",
        "/v1/deployments",
        t,
        Some(create.clone()),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    check(
        "post",
        "/v1/deployments",
        "/v1/deployments",
        t,
        Some(create),
    )
    .await;
    check(
        "post",
        "/v1/deployments",
        "/v1/deployments",
        t,
        Some(json!({"file": file("f", "live", "all-at-once", 10.0)})),
    )
    .await;
    check(
        "post",
        "/v1/deployments",
        "/v1/deployments",
        t,
        Some(json!({"file": "strategy: sideways"})),
    )
    .await;
    check(
        "post",
        "/v1/deployments",
        "/v1/deployments",
        t,
        Some(json!({"what": 1})),
    )
    .await;
    check(
        "post",
        "/v1/deployments",
        "/v1/deployments",
        None,
        Some(json!({})),
    )
    .await;
    check(
        "get",
        "/v1/deployments",
        "/v1/deployments?state=active&function=f&limit=5",
        t,
        None,
    )
    .await;
    check(
        "get",
        "/v1/deployments",
        "/v1/deployments?state=sideways",
        t,
        None,
    )
    .await;
    check("get", "/v1/deployments", "/v1/deployments", None, None).await;
    for template in [
        "/v1/deployments/{id}",
        "/v1/deployments/{id}/events",
        "/v1/deployments/{id}/notifications",
    ] {
        check("get", template, &template.replace("{id}", &id), t, None).await;
        check(
            "get",
            template,
            &template.replace("{id}", "dep-999999"),
            t,
            None,
        )
        .await;
        check("get", template, &template.replace("{id}", &id), None, None).await;
    }
    // Wait for the first shift, so that the journal and notifications have content.
    w.wait_for(&id, "shifted", |d| {
        d["step"] == 1 && d["weight"].as_f64() > Some(0.0)
    })
    .await;
    check(
        "get",
        "/v1/deployments/{id}/events",
        &format!("/v1/deployments/{id}/events?after=1&limit=3"),
        t,
        None,
    )
    .await;
    for action in ["pause", "resume", "promote", "promote-fully", "abort"] {
        let template = format!("/v1/deployments/{{id}}/{action}");
        check(
            "post",
            &template,
            &format!("/v1/deployments/dep-999999/{action}"),
            t,
            None,
        )
        .await;
        check(
            "post",
            &template,
            &format!("/v1/deployments/{id}/{action}"),
            None,
            None,
        )
        .await;
        if action != "abort" {
            check(
                "post",
                &template,
                &format!("/v1/deployments/{id}/{action}"),
                t,
                None,
            )
            .await;
        }
    }
    w.finished(&id, Duration::from_secs(30)).await;
    // Ended: an action is a conflict.
    check(
        "post",
        "/v1/deployments/{id}/abort",
        &format!("/v1/deployments/{id}/abort"),
        t,
        None,
    )
    .await;
    check(
        "get",
        "/v1/deployments/{id}",
        &format!("/v1/deployments/{id}"),
        t,
        None,
    )
    .await;
    check(
        "get",
        "/v1/deployments/{id}/notifications",
        &format!("/v1/deployments/{id}/notifications"),
        t,
        None,
    )
    .await;
    check("get", "/v1/openapi.json", "/v1/openapi.json", None, None).await;
    check("get", "/metrics", "/metrics", None, None).await;
    assert!(
        errors.is_empty(),
        "the server and its document disagree:\n{}",
        errors.join("\n")
    );
    let documented: std::collections::BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (p.clone(), m.clone()))
        })
        .collect();
    assert_eq!(
        documented, called,
        "documented operations the test did not call"
    );
}

/// A WebDriver session on Debian's chromium through chromedriver, spoken over plain HTTP.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    profile: std::path::PathBuf,
}

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// `None` (with a note) where chromium is not installed, except in CI, which installs it.
    async fn start(dir: &std::path::Path) -> Option<Browser> {
        let (driver_bin, chromium) = ("/usr/bin/chromedriver", "/usr/bin/chromium");
        if !std::path::Path::new(driver_bin).exists() || !std::path::Path::new(chromium).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must install chromium and chromium-driver (.ci/run does)"
            );
            eprintln!(
                "skipping: {driver_bin} or {chromium} is missing (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = dir.join("chromium-profile");
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            http,
            profile,
        };
        let answer = browser
            .call(reqwest::Method::POST, "/session", Some(capabilities))
            .await;
        browser.session = answer["sessionId"].as_str().expect("a session").to_owned();
        Some(browser)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(b) = body {
            request = request
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let text = request.send().await.unwrap().text().await.unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        v["value"].clone()
    }

    async fn session(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    async fn script(&self, script: &str) -> Value {
        self.session(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    async fn click(&self, css: &str) {
        let element = self
            .session(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let id = element[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no {css}: {element}"));
        self.session(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Polls `script` until `test` holds; its last value.
    async fn until(&self, what: &str, script: &str, test: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self.script(script).await;
            if test(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "the page never showed {what}: {v}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The dashboard in a real headless browser: it lists the deployment, its chart grows as
/// checks come in, and its Abort button (after the confirmation) puts the original back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_charts_a_live_deployment_and_aborts_it() {
    let mut w = World::new("dashboard").await;
    let Some(browser) = Browser::start(&w.dir).await else {
        return;
    };
    w.function("f", &["live".to_owned()], 0.0).await;
    w.start_server(&[]);
    let (status, d) = w
        .post(
            "/v1/deployments",
            Some(json!({"file": file("f", "live", "linear:2x1h", 10.0)})),
        )
        .await;
    assert_eq!(status, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_owned();
    browser
        .session(
            reqwest::Method::POST,
            "/url",
            Some(json!({"url": format!("{}/#token={TOKEN}&id={id}", w.url())})),
        )
        .await;
    // The list shows it; the token has left the address bar.
    browser
        .until(
            "the deployment in the list",
            &format!("return !!document.querySelector('tr[data-id=\"{id}\"]')"),
            |v| v == true,
        )
        .await;
    let hash = browser.script("return location.hash").await;
    assert!(!hash.as_str().unwrap().contains(TOKEN), "{hash}");
    // The chart grows as checks arrive.
    let first = browser
        .until(
            "two checks on the chart",
            "return Number(document.getElementById('chart').dataset.points)",
            |v| v.as_u64() >= Some(2),
        )
        .await
        .as_u64()
        .unwrap();
    browser
        .until(
            "the chart update",
            "return Number(document.getElementById('chart').dataset.points)",
            |v| v.as_u64() > Some(first),
        )
        .await;
    let weight = browser
        .script("return document.querySelector('#chart path.weight').getAttribute('d')")
        .await;
    assert!(
        weight.as_str().unwrap().contains('V'),
        "a weight line: {weight}"
    );
    browser
        .until("50% and step 1/2", "return document.getElementById('weight').textContent + ' ' + document.getElementById('step').textContent", |v| v == "50% 1/2")
        .await;
    // FLEDGE_DASHBOARD_SCREENSHOT=page.png keeps a picture of the page, for a person to look at.
    if let Some(path) = std::env::var_os("FLEDGE_DASHBOARD_SCREENSHOT") {
        tokio::time::sleep(Duration::from_secs(3)).await;
        browser
            .session(
                reqwest::Method::POST,
                "/window/rect",
                Some(json!({"width": 1400, "height": 1100})),
            )
            .await;
        let png = browser
            .session(reqwest::Method::GET, "/screenshot", None)
            .await;
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::write(path, bytes).unwrap();
    }
    // Abort, confirming the dialog.
    browser.click("#abort").await;
    browser
        .session(reqwest::Method::POST, "/alert/accept", Some(json!({})))
        .await;
    let d = w.finished(&id, Duration::from_secs(30)).await;
    assert_eq!(d["outcome"], "aborted", "{d}");
    assert_eq!(w.alias("f", "live").await, ("1".into(), None));
    browser
        .until(
            "the aborted state",
            "return document.getElementById('state').textContent",
            |v| v == "aborted",
        )
        .await;
    browser
        .until(
            "the buttons disabled",
            "return document.getElementById('abort').disabled",
            |v| v == true,
        )
        .await;
    browser.session(reqwest::Method::DELETE, "", None).await;
}

/// The original's JSON input, submitted as it is: the server reads its schedule, and the
/// CLI steers and follows it; an abort exits 1, as fledge deploy's would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_originals_input_is_submitted_and_aborted_from_the_cli() {
    let mut w = World::new("seed").await;
    w.function("f", &["live".to_owned()], 0.0).await;
    w.start_server(&[]);
    let path = w.dir.join("input.json");
    std::fs::write(
        &path,
        r#"{"function-name":"f","alias-name":"live","new-version":"2","steps":4,"interval":3600,"type":"linear"}"#,
    )
    .unwrap();
    let out = w.fledge(&["submit", path.to_str().unwrap(), "--name", "from-seed"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let d = w
        .wait_for(&id, "shifted", |d| {
            d["step"] == 1 && d["weight"].as_f64() > Some(0.0)
        })
        .await;
    assert_eq!(
        (d["steps"].as_u64(), d["weight"].as_f64()),
        (Some(4), Some(0.25)),
        "{d}"
    );
    let out = w.fledge(&["status", &id]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("step 1/4 at 25%") && text.contains("f:live"),
        "{text}"
    );
    // Submitting the same again under the same name is the same deployment.
    let again = w.fledge(&["submit", path.to_str().unwrap(), "--name", "from-seed"]);
    assert_eq!(String::from_utf8_lossy(&again.stdout).trim(), id);
    let watcher = {
        let (url, bin, id) = (w.url(), env!("CARGO_BIN_EXE_fledge"), id.clone());
        std::thread::spawn(move || {
            Command::new(bin)
                .args([
                    "status", &id, "--watch", "--json", "--server", &url, "--token", TOKEN,
                ])
                .output()
                .unwrap()
        })
    };
    assert!(w.fledge(&["abort", &id]).status.success());
    let watched = watcher.join().unwrap();
    assert_eq!(watched.status.code(), Some(1));
    let last: Value = serde_json::from_str(
        String::from_utf8_lossy(&watched.stdout)
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["outcome"].as_str()),
        (Some("summary"), Some("aborted"))
    );
    assert_eq!(w.alias("f", "live").await, ("1".into(), None));
}

/// A release whose smoke test fails ends before any traffic moves, and its end is in its
/// journal and told to its sinks like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_smoke_test_ends_the_deployment_and_is_told() {
    let mut w = World::new("smoke").await;
    w.function("f", &["live".to_owned()], 1.0).await;
    let webhook = Webhook::start().await;
    w.start_server(&["--notify", &webhook.url]);
    let text =
        file("f", "live", "canary:10%/1m", 10.0).replace("checks:\n", "checks:\n  smoke: 3\n");
    let (status, d) = w
        .post("/v1/deployments", Some(json!({ "file": text })))
        .await;
    assert_eq!(status, 201, "{d}");
    let id = d["id"].as_str().unwrap().to_owned();
    let d = w.finished(&id, Duration::from_secs(30)).await;
    assert_eq!(d["outcome"], "rolled_back", "{d}");
    assert!(d["reason"].as_str().unwrap().contains("smoke test"), "{d}");
    assert_eq!(w.alias("f", "live").await, ("1".into(), None));
    let events = w.get(&format!("/v1/deployments/{id}/events")).await;
    let records: Vec<&Value> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["record"])
        .collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["event"], "finished");
    let deadline = Instant::now() + Duration::from_secs(10);
    while webhook.received().is_empty() {
        assert!(Instant::now() < deadline, "the end was not told");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let told = webhook.received();
    assert!(
        told[0]["text"]
            .as_str()
            .unwrap()
            .contains("finished rolled_back"),
        "{told:?}"
    );
}
