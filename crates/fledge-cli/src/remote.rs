//! The verbs that talk to a fledge server: submit, status, list, pause, resume, promote,
//! abort.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use fledge_core::lambda::percent;
use fledge_core::rollout::{Outcome, Record};
use fledge_engine::{Progress, Summary};
use serde_json::{Value, json};

use crate::Failure;
use crate::args::{ActionArgs, ListArgs, PromoteArgs, ServerArgs, StatusArgs, SubmitArgs};
use crate::render::Renderer;

struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            code: 3,
            error: e.into(),
        })
}

impl Client {
    fn new(args: &ServerArgs) -> Client {
        Client {
            base: args.server.trim_end_matches('/').to_owned(),
            token: args.token.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// One API call; a refusal becomes the exit code it stands for (2 for a request the
    /// server calls wrong, 3 when it cannot be carried out).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let mut request = self
            .http
            .request(method, &url)
            .timeout(Duration::from_secs(30));
        if let Some(t) = &self.token {
            request = request.bearer_auth(t);
        }
        if let Some(b) = body {
            request = request
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        let answer = request.send().await.map_err(|e| Failure {
            code: 3,
            error: anyhow!(
                "could not reach the fledge server at {}: {e}; is `fledge serve` running there? (--server or FLEDGE_SERVER)",
                self.base
            ),
        })?;
        let status = answer.status();
        let text = answer.text().await.unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(value);
        }
        let message = value
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map_or_else(|| value.to_string(), str::to_owned);
        let code = match status.as_u16() {
            401 if self.token.is_none() => {
                return Err(Failure::invalid(anyhow!(
                    "the server wants a token: pass --token or set FLEDGE_TOKEN to the token `fledge serve` printed"
                )));
            }
            400 | 401 | 404 => 2,
            _ => 3,
        };
        Err(Failure {
            code,
            error: anyhow!("{message} (HTTP {status})"),
        })
    }
}

pub fn submit(args: SubmitArgs) -> Result<ExitCode, Failure> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("could not read {}", args.file.display()))
        .map_err(Failure::invalid)?;
    // The original's JSON input names its function with "function-name".
    let seed = serde_json::from_str::<Value>(&text)
        .ok()
        .filter(|v| v.get("function-name").is_some());
    let mut body = match seed {
        Some(seed) => json!({ "seed": seed }),
        None => json!({ "file": text }),
    };
    if let Some(name) = &args.name {
        body["name"] = json!(name);
    }
    runtime()?.block_on(async {
        let client = Client::new(&args.server);
        let created = client
            .call(reqwest::Method::POST, "/v1/deployments", Some(body))
            .await?;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        if args.server.json && !args.watch {
            println!("{created}");
        } else {
            eprintln!(
                "{id}: {}:{} → version {} ({})",
                created["function"].as_str().unwrap_or_default(),
                created["alias"].as_str().unwrap_or_default(),
                created["target"],
                created["phase"].as_str().unwrap_or_default()
            );
            if !args.server.json {
                println!("{id}");
            }
        }
        if args.watch {
            watch(&client, &id, args.server.json).await
        } else {
            Ok(ExitCode::SUCCESS)
        }
    })
}

pub fn status(args: StatusArgs) -> Result<ExitCode, Failure> {
    runtime()?.block_on(async {
        let client = Client::new(&args.server);
        if args.watch {
            return watch(&client, &args.id, args.server.json).await;
        }
        let d = client
            .call(
                reqwest::Method::GET,
                &format!("/v1/deployments/{}", args.id),
                None,
            )
            .await?;
        if args.server.json {
            println!("{d}");
        } else {
            print_detail(&d);
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn print_detail(d: &Value) {
    let s = |k: &str| d[k].as_str().unwrap_or_default().to_owned();
    println!(
        "{}  {}:{} → version {}",
        s("id"),
        s("function"),
        s("alias"),
        d["target"]
    );
    let state = d["outcome"]
        .as_str()
        .map_or_else(|| s("phase"), str::to_owned);
    let paused = if d["paused"].as_bool() == Some(true) {
        ", paused"
    } else {
        ""
    };
    println!(
        "  state: {state}{paused}; step {}/{} at {}",
        d["step"],
        d["steps"],
        percent(d["weight"].as_f64().unwrap_or(0.0))
    );
    if let Some(routing) = d.get("alias_routing").filter(|v| !v.is_null()) {
        println!("  alias: {routing}");
    }
    if let Some(v) = d.get("last_verdict").filter(|v| !v.is_null()) {
        println!(
            "  last check: {}: {}",
            v["outcome"].as_str().unwrap_or_default(),
            v["reason"].as_str().unwrap_or_default()
        );
    }
    if let Some(r) = d["reason"].as_str() {
        println!("  reason: {r}");
    }
    let n = &d["notifications"];
    if n["failed"].as_u64().unwrap_or(0) > 0 {
        println!(
            "  notifications: {} sent, {} pending, {} FAILED",
            n["sent"], n["pending"], n["failed"]
        );
    }
}

/// Follows a deployment's events until it ends; the exit code says how.
async fn watch(client: &Client, id: &str, json: bool) -> Result<ExitCode, Failure> {
    let mut renderer = Renderer::new(json);
    let mut after = 0i64;
    let mut failures = 0;
    loop {
        let fetched = async {
            let events = client
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/deployments/{id}/events?after={after}"),
                    None,
                )
                .await?;
            let detail = client
                .call(reqwest::Method::GET, &format!("/v1/deployments/{id}"), None)
                .await?;
            Ok::<_, Failure>((events, detail))
        }
        .await;
        let (events, detail) = match fetched {
            Ok(pair) => {
                failures = 0;
                pair
            }
            // A server restarting is normal: its deployments resume. Keep asking a while.
            Err(f) if f.code == 3 && failures < 60 => {
                failures += 1;
                if failures == 1 {
                    eprintln!("{:#}; retrying", f.error);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            Err(f) => return Err(f),
        };
        for e in events["events"].as_array().into_iter().flatten() {
            after = after.max(e["seq"].as_i64().unwrap_or(after));
            if let Ok(record) = serde_json::from_value::<Record>(e["record"].clone()) {
                renderer.show(&Progress::Record(record));
            }
        }
        if let Some(outcome) = detail["outcome"].as_str() {
            let outcome: Outcome = serde_json::from_value(json!(outcome)).map_err(|e| Failure {
                code: 3,
                error: anyhow!("the server reported an unknown outcome '{outcome}': {e}"),
            })?;
            let alias = serde_json::from_value(detail["alias_routing"].clone()).ok();
            let created = detail["created_at"].as_i64().unwrap_or(0);
            let finished = detail["finished_at"].as_i64().unwrap_or(created);
            let summary = Summary {
                id: id.to_owned(),
                outcome,
                reason: detail["reason"].as_str().unwrap_or_default().to_owned(),
                alias_split: alias
                    .as_ref()
                    .is_some_and(|a: &fledge_core::lambda::AliasRouting| !a.is_single()),
                alias,
                duration_secs: (finished - created) as f64 / 1000.0,
            };
            return Ok(ExitCode::from(renderer.finish(&summary)));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub fn list(args: ListArgs) -> Result<ExitCode, Failure> {
    let mut query = Vec::new();
    if let Some(s) = &args.state {
        query.push(format!("state={s}"));
    }
    if let Some(f) = &args.function {
        query.push(format!("function={f}"));
    }
    let path = if query.is_empty() {
        "/v1/deployments".to_owned()
    } else {
        format!("/v1/deployments?{}", query.join("&"))
    };
    runtime()?.block_on(async {
        let answer = Client::new(&args.server)
            .call(reqwest::Method::GET, &path, None)
            .await?;
        if args.server.json {
            println!("{answer}");
            return Ok(ExitCode::SUCCESS);
        }
        let rows = answer["deployments"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if rows.is_empty() {
            eprintln!("no deployments");
        }
        for d in rows {
            let state = d["outcome"]
                .as_str()
                .or(d["phase"].as_str())
                .unwrap_or_default();
            println!(
                "{:<12} {:<32} v{:<5} {:<14} step {}/{} at {}",
                d["id"].as_str().unwrap_or_default(),
                format!(
                    "{}:{}",
                    d["function"].as_str().unwrap_or_default(),
                    d["alias"].as_str().unwrap_or_default()
                ),
                d["target"],
                state,
                d["step"],
                d["steps"],
                percent(d["weight"].as_f64().unwrap_or(0.0))
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

fn act(server: &ServerArgs, id: &str, action: &str) -> Result<ExitCode, Failure> {
    runtime()?.block_on(async {
        let answer = Client::new(server)
            .call(
                reqwest::Method::POST,
                &format!("/v1/deployments/{id}/{action}"),
                None,
            )
            .await?;
        if server.json {
            println!("{answer}");
        } else {
            eprintln!("{id}: {}", answer["detail"].as_str().unwrap_or(action));
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn pause(a: ActionArgs) -> Result<ExitCode, Failure> {
    act(&a.server, &a.id, "pause")
}

pub fn resume(a: ActionArgs) -> Result<ExitCode, Failure> {
    act(&a.server, &a.id, "resume")
}

pub fn abort(a: ActionArgs) -> Result<ExitCode, Failure> {
    act(&a.server, &a.id, "abort")
}

pub fn promote(a: PromoteArgs) -> Result<ExitCode, Failure> {
    act(
        &a.server,
        &a.id,
        if a.fully { "promote-fully" } else { "promote" },
    )
}
