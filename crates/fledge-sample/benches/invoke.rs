//! Invoke throughput and latency of fledge local with warm function processes, through an
//! alias (a routing decision per call) and through a version qualifier, for two functions:
//! the sample (on `lambda_runtime`) and `runtime-echo` (a Runtime API client on the standard
//! library alone, which tells the platform's own cost from `lambda_runtime`'s). A last row
//! per connection count is one bare HTTP exchange with an axum echo server: an invoke is
//! three exchanges, so that row bounds what any platform could do on this machine.
//!
//! `cargo bench -p fledge-sample --bench invoke` (release build). Options through the
//! environment: `BENCH_SECONDS` (default 5 per run), `BENCH_CONNECTIONS` (default
//! "1,8,16,64"), `BENCH_ONLY=TEXT` to run only the rows whose label contains TEXT, and
//! `BENCH_EXTERNAL=HOST:PORT/PATH` to load another Lambda emulator's
//! invoke endpoint with the same client instead (for example cargo-lambda's
//! `127.0.0.1:9000/2015-03-31/functions/fledge-sample/invocations`). The client is a
//! minimal keep-alive HTTP/1.1 loop on the same machine, so the numbers include its cost
//! too (two cores shared by client, platform and functions). "CPU µs/invoke" is the whole
//! machine's busy time (`/proc/stat`) over the run divided by the invocations; the next
//! three columns split it: the function processes (this process's children), the
//! platform's threads and the client's (`/proc/self/task`). Interrupt work is counted to
//! whichever thread the CPU was running, so the three add up to about the machine's.

use std::io::Write;
use std::time::{Duration, Instant};

use fledge_local::{Platform, PlatformConfig};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const ROLE: &str = "arn:aws:iam::123456789012:role/bench";

/// The sample function, on `lambda_runtime`.
const SAMPLE: &str = env!("CARGO_BIN_EXE_fledge-sample");
/// The least a function can be: a Runtime API client on the standard library alone.
const RUNTIME_ECHO: &str = env!("CARGO_BIN_EXE_runtime-echo");

fn package(bootstrap: &str, marker: &str) -> Vec<u8> {
    let binary = std::fs::read(bootstrap).unwrap();
    zip_of(&[
        ("bootstrap", 0o755, &binary),
        ("marker", 0o644, marker.as_bytes()),
    ])
}

/// One keep-alive connection; answers each request's latency.
struct Connection {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    request: Vec<u8>,
}

impl Connection {
    async fn open(addr: &str, path: &str) -> Connection {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (r, w) = stream.into_split();
        let body = b"{\"bench\":true}";
        let mut request = format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        request.extend_from_slice(body);
        Connection {
            reader: BufReader::new(r),
            writer: w,
            request,
        }
    }

    async fn call(&mut self) -> Duration {
        let start = Instant::now();
        self.writer.write_all(&self.request).await.unwrap();
        let mut line = String::new();
        let mut length = 0usize;
        let mut status = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).await.unwrap();
            if status.is_empty() {
                status = line.clone();
            }
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        assert!(status.contains(" 200 "), "{status}");
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await.unwrap();
        start.elapsed()
    }
}

struct Run {
    calls: usize,
    /// CPU time per call: the whole machine's, and its split between the function
    /// processes, the platform's threads and the load client's.
    cpu: Option<[Duration; 4]>,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

/// CPU time so far, in clock ticks of 10 ms (Linux `/proc`): the whole machine's busy time
/// (user, system and interrupts, every process), this process's `fledge-local` and
/// `bench-client` threads, and this process's children (the function processes).
#[derive(Clone, Copy, Default)]
struct CpuSplit {
    machine: u64,
    functions: u64,
    platform: u64,
    client: u64,
}

impl CpuSplit {
    fn now() -> Option<CpuSplit> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        // user nice system idle iowait irq softirq: everything but idle and iowait.
        let machine = fields
            .get(..7)?
            .iter()
            .enumerate()
            .filter(|(i, _)| ![3, 4].contains(i))
            .map(|(_, v)| v)
            .sum();
        let mut split = CpuSplit {
            machine,
            ..CpuSplit::default()
        };
        for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
            if let Some((name, _, ticks)) = proc_stat(&task.path().join("stat")) {
                if name.starts_with("fledge-local") {
                    split.platform += ticks;
                } else if name.starts_with("bench-client") {
                    split.client += ticks;
                }
            }
        }
        let me = std::process::id();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            if let Some((_, parent, ticks)) = proc_stat(&entry.path().join("stat"))
                && parent == me
            {
                split.functions += ticks;
            }
        }
        Some(split)
    }

    /// The time from `before` to `self`, per one of `calls`.
    fn per_call(self, before: CpuSplit, calls: usize) -> [Duration; 4] {
        let per =
            |a: u64, b: u64| Duration::from_millis(a.saturating_sub(b) * 10) / calls.max(1) as u32;
        [
            per(self.machine, before.machine),
            per(self.functions, before.functions),
            per(self.platform, before.platform),
            per(self.client, before.client),
        ]
    }
}

/// A task's or process's name, parent and CPU ticks (user and system) from its `stat` file.
fn proc_stat(path: &std::path::Path) -> Option<(String, u32, u64)> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state, ppid, … utime is the 12th field and stime the 13th.
    let parent = fields.get(1)?.parse().ok()?;
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((name, parent, ticks))
}

async fn load(addr: &str, path: &str, connections: usize, seconds: u64) -> Run {
    let cpu_before = CpuSplit::now();
    let until = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (addr, path) = (addr.to_string(), path.to_string());
        tasks.push(tokio::spawn(async move {
            let mut c = Connection::open(&addr, &path).await;
            let mut latencies = Vec::new();
            while Instant::now() < until {
                latencies.push(c.call().await);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    let cpu = cpu_before
        .zip(CpuSplit::now())
        .map(|(before, after)| after.per_call(before, all.len()));
    all.sort();
    let pick = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
    Run {
        calls: all.len(),
        cpu,
        per_second: all.len() as f64 / elapsed.as_secs_f64(),
        p50: pick(0.5),
        p99: pick(0.99),
        max: *all.last().unwrap(),
    }
}

async fn cold_starts(addr: &str, endpoint: &str, n: usize) -> Vec<Duration> {
    let lambda = client(endpoint);
    let mut out = Vec::new();
    for i in 0..n {
        let name = format!("cold{i}");
        lambda
            .create_function()
            .function_name(&name)
            .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
            .handler("bootstrap")
            .role(ROLE)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(aws_sdk_lambda::primitives::Blob::new(package(
                        SAMPLE, &name,
                    )))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let mut c =
            Connection::open(addr, &format!("/2015-03-31/functions/{name}/invocations")).await;
        out.push(c.call().await);
    }
    out
}

fn client(endpoint: &str) -> aws_sdk_lambda::Client {
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(aws_sdk_lambda::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_lambda::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_lambda::config::Credentials::new(
            "b", "b", None, None, "bench",
        ))
        .build();
    aws_sdk_lambda::Client::from_conf(conf)
}

fn micros(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

/// The table's head: CPU is per invoke, the whole machine's and then its split.
const TABLE: &str = "| target | connections | invokes/s | p50 ms | p99 ms | max ms | CPU µs/invoke | function | platform | client |\n|---|---|---|---|---|---|---|---|---|---|";

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// The cost of one routing decision on its own, in each routing mode.
fn routing_decisions() {
    use fledge_core::lambda::{AliasRouting, Version};
    use fledge_local::routing::{Router, RoutingMode, StickyKey};
    let router = Router::new(7);
    let routing = AliasRouting::split(Version::Number(1), 2, 0.1);
    let sticky = RoutingMode::Sticky {
        key: StickyKey::Header("x-user".into()),
    };
    let n = 2_000_000u32;
    for (label, mode, key) in [
        ("random", RoutingMode::Random, None),
        ("exact", RoutingMode::Exact, None),
        ("sticky", sticky, Some("user-1234")),
    ] {
        let start = Instant::now();
        let mut on_new = 0u32;
        for _ in 0..n {
            if router.pick("bench", "live", &routing, &mode, key) == Version::Number(2) {
                on_new += 1;
            }
        }
        let ns = start.elapsed().as_nanos() as f64 / f64::from(n);
        println!(
            "routing decision ({label}): {ns:.1} ns each ({on_new} of {n} to the new version)"
        );
    }
}

/// Loads an external invoke endpoint, `HOST:PORT/PATH`.
async fn external(target: &str, seconds: u64, connection_counts: &[usize]) {
    let (addr, path) = target
        .split_once('/')
        .expect("BENCH_EXTERNAL is HOST:PORT/PATH");
    let path = format!("/{path}");
    println!("external endpoint {target}: {seconds} s per run");
    println!("{TABLE}");
    for &connections in connection_counts {
        load(addr, &path, connections, 1).await;
        let run = load(addr, &path, connections, seconds).await;
        // Its processes are not this one's children: only the machine's and the client's
        // columns mean anything.
        let mut run = run;
        if let Some(cpu) = &mut run.cpu {
            cpu[1] = Duration::ZERO;
            cpu[2] = Duration::ZERO;
        }
        row(target, connections, &run);
    }
}

fn main() {
    // The platform and the load client get their own threads, so that each one's CPU time
    // can be told apart (`fledge-local` and `bench-client` in top -H or /proc).
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()
        .unwrap();
    let platform_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("fledge-local")
        .enable_all()
        .build()
        .unwrap();
    client_runtime.block_on(bench(&platform_runtime));
}

/// A zip of `(name, Unix mode, contents)` files.
fn zip_of(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut out);
    for (name, mode, contents) in files {
        let options = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
        w.start_file(*name, options).unwrap();
        w.write_all(contents).unwrap();
    }
    w.finish().unwrap();
    out.into_inner()
}

/// Creates `name` from `zip` as versions 1 and 2 behind `live`, a 90/10 split; answers
/// why not when this machine cannot run `runtime`.
async fn create_split(
    lambda: &aws_sdk_lambda::Client,
    name: &str,
    runtime: aws_sdk_lambda::types::Runtime,
    handler: &str,
    zip: Vec<u8>,
) -> Result<(), String> {
    lambda
        .create_function()
        .function_name(name)
        .runtime(runtime)
        .handler(handler)
        .role(ROLE)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(aws_sdk_lambda::primitives::Blob::new(zip))
                .build(),
        )
        .publish(true)
        .send()
        .await
        .map_err(|e| format!("{:?}", aws_sdk_lambda::error::DisplayErrorContext(e)))?;
    lambda
        .update_function_configuration()
        .function_name(name)
        .description("v2")
        .send()
        .await
        .unwrap();
    lambda
        .publish_version()
        .function_name(name)
        .send()
        .await
        .unwrap();
    let routing = aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
        .additional_version_weights("2", 0.1)
        .build();
    lambda
        .create_alias()
        .function_name(name)
        .name("live")
        .function_version("1")
        .routing_config(routing)
        .send()
        .await
        .unwrap();
    Ok(())
}

/// One HTTP exchange and nothing else: an axum server answering each POST with its body.
/// An invoke is three such exchanges (caller, the function's next event, its response),
/// so this row is what the machine allows before any platform or function work.
async fn http_echo(runtime: &tokio::runtime::Runtime) -> String {
    let listener = runtime
        .spawn(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .await
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let app = axum::Router::new().route(
        "/echo",
        axum::routing::post(|body: axum::body::Bytes| async move { body }),
    );
    runtime.spawn(async move {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

fn row(label: &str, connections: usize, run: &Run) {
    println!(
        "| {label} | {connections} | {:.0} | {} | {} | {} | {} |",
        run.per_second,
        ms(run.p50),
        ms(run.p99),
        ms(run.max),
        run.cpu.map_or("- | - | - | -".into(), |cpu| cpu
            .map(|d| if d.is_zero() { "-".into() } else { micros(d) })
            .join(" | "))
    );
}

async fn bench(platform_runtime: &tokio::runtime::Runtime) {
    let seconds: u64 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let connection_counts: Vec<usize> = std::env::var("BENCH_CONNECTIONS")
        .unwrap_or_else(|_| "1,8,16,64".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    if let Ok(target) = std::env::var("BENCH_EXTERNAL") {
        external(&target, seconds, &connection_counts).await;
        return;
    }
    routing_decisions();
    let dir = std::env::temp_dir().join(format!("fledge-bench-{}", std::process::id()));
    let mut config = PlatformConfig::new(&dir);
    config.concurrency_limit = 1000;
    let running = platform_runtime
        .spawn(Platform::start(config, "127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
        .unwrap();
    let endpoint = running.endpoint();
    let addr = running.addr.to_string();
    let lambda = client(&endpoint);
    let provided = aws_sdk_lambda::types::Runtime::Providedal2023;
    create_split(
        &lambda,
        "bench",
        provided.clone(),
        "bootstrap",
        package(SAMPLE, "1"),
    )
    .await
    .unwrap();
    create_split(
        &lambda,
        "echo",
        provided,
        "bootstrap",
        package(RUNTIME_ECHO, "1"),
    )
    .await
    .unwrap();
    // The language runtimes, when this machine has them: an echo handler each.
    let python = create_split(
        &lambda,
        "py",
        aws_sdk_lambda::types::Runtime::Python312,
        "app.handler",
        zip_of(&[(
            "app.py",
            0o644,
            b"def handler(event, context):\n    return event\n",
        )]),
    )
    .await;
    let node = create_split(
        &lambda,
        "node",
        aws_sdk_lambda::types::Runtime::Nodejs20x,
        "index.handler",
        zip_of(&[(
            "index.js",
            0o644,
            b"exports.handler = async (event) => event;\n",
        )]),
    )
    .await;
    for (runtime, created) in [("python3.12", &python), ("nodejs20.x", &node)] {
        if let Err(why) = created {
            println!("no {runtime} rows: {why}");
        }
    }
    let echo_addr = http_echo(platform_runtime).await;
    let only = std::env::var("BENCH_ONLY").ok();

    println!(
        "fledge local invoke benchmark: {seconds} s per run, warm processes; CPU is the whole machine's per invoke"
    );
    println!("{TABLE}");
    for &connections in &connection_counts {
        for (label, target, path) in [
            (
                "sample (lambda_runtime), alias 90/10",
                &addr,
                "/2015-03-31/functions/bench:live/invocations",
            ),
            (
                "sample (lambda_runtime), version",
                &addr,
                "/2015-03-31/functions/bench:1/invocations",
            ),
            (
                "runtime-echo (std only), alias 90/10",
                &addr,
                "/2015-03-31/functions/echo:live/invocations",
            ),
            (
                "runtime-echo (std only), version",
                &addr,
                "/2015-03-31/functions/echo:1/invocations",
            ),
            (
                "python3.12 echo (awslambdaric), alias 90/10",
                &addr,
                "/2015-03-31/functions/py:live/invocations",
            ),
            (
                "nodejs20.x echo (fledge's client), alias 90/10",
                &addr,
                "/2015-03-31/functions/node:live/invocations",
            ),
            (
                "one HTTP exchange (axum echo), no function",
                &echo_addr,
                "/echo",
            ),
        ] {
            if only.as_ref().is_some_and(|o| !label.contains(o.as_str()))
                || (label.starts_with("python") && python.is_err())
                || (label.starts_with("nodejs") && node.is_err())
            {
                continue;
            }
            // Warm up: start the processes this concurrency needs.
            load(target, path, connections, 1).await;
            let run = load(target, path, connections, seconds).await;
            row(label, connections, &run);
            assert!(run.calls > 0);
        }
    }
    let mut colds = cold_starts(&addr, &endpoint, 10).await;
    colds.sort();
    println!();
    println!(
        "cold start (create function, then its first invoke, 10 functions): median {} ms, max {} ms",
        ms(colds[colds.len() / 2]),
        ms(*colds.last().unwrap())
    );
    running.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
