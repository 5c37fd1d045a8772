//! The deployment file: YAML that says any of what `fledge deploy`'s flags say. Flags given
//! on the command line win over the file. `examples/deployment.yaml` is annotated.

use std::path::Path;

use anyhow::{Context, anyhow};
use serde::Deserialize;
use serde_json::Value;

use crate::Failure;
use crate::args::DeployArgs;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentFile {
    function: Option<String>,
    alias: Option<String>,
    version: Option<Value>,
    publish: Option<bool>,
    strategy: Option<String>,
    preset: Option<String>,
    bake: Option<String>,
    endpoint_url: Option<String>,
    region: Option<String>,
    #[serde(default)]
    checks: Checks,
    #[serde(default)]
    hooks: Hooks,
    /// Where `fledge serve` sends this deployment's notifications: `webhook:URL` (or a bare
    /// URL), `command:CMD` and `sns:TOPIC_ARN`.
    notify: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Checks {
    interval: Option<String>,
    analysis: Option<String>,
    min_requests: Option<u64>,
    max_error_rate: Option<f64>,
    max_p99_ms: Option<f64>,
    max_throttle_rate: Option<f64>,
    http: Option<Vec<String>>,
    command: Option<Vec<String>>,
    on_inconclusive: Option<String>,
    max_extension: Option<String>,
    metrics: Option<bool>,
    metrics_period: Option<i32>,
    alarms: Option<Vec<String>>,
    smoke: Option<u32>,
    probe: Option<Probe>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Probe {
    rate: f64,
    payload: Option<Value>,
    expect: Option<Value>,
    expect_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Hooks {
    pre_traffic: Option<String>,
    post_traffic: Option<String>,
}

/// Reads a deployment file; the error names the file and what is wrong in it.
pub fn load(path: &Path) -> Result<DeploymentFile, Failure> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read the deployment file {}", path.display()))
        .map_err(Failure::invalid)?;
    parse(&text, &path.display().to_string())
}

/// Reads a deployment file's content (YAML, or JSON, which is YAML too); `origin` names it
/// in errors.
pub fn parse(text: &str, origin: &str) -> Result<DeploymentFile, Failure> {
    serde_saphyr::from_str(text)
        .map_err(|e| Failure::invalid(anyhow!("the deployment file {origin} is not valid: {e}")))
}

fn fill<T>(flag: &mut Option<T>, from_file: Option<T>) {
    if flag.is_none() {
        *flag = from_file;
    }
}

impl DeploymentFile {
    /// Puts the file's values where no flag was given.
    pub fn fill(self, a: &mut DeployArgs) -> Result<(), Failure> {
        fill(&mut a.function, self.function);
        fill(&mut a.alias, self.alias);
        if a.version.is_none() && !a.publish {
            match self.version {
                Some(Value::Number(n)) => a.version = Some(n.to_string()),
                Some(Value::String(s)) => a.version = Some(s),
                Some(other) => {
                    return Err(Failure::invalid(anyhow!(
                        "the deployment file's version {other} is not a version number"
                    )));
                }
                None => a.publish = self.publish.unwrap_or(false),
            }
        }
        if a.strategy.is_none() && a.preset.is_none() && a.input.is_none() {
            a.strategy = self.strategy;
            a.preset = self.preset;
        }
        fill(&mut a.bake, self.bake);
        fill(&mut a.endpoint_url, self.endpoint_url);
        fill(&mut a.region, self.region);
        let c = self.checks;
        fill(&mut a.check_interval, c.interval);
        fill(&mut a.analysis, c.analysis);
        fill(&mut a.min_requests, c.min_requests);
        fill(&mut a.max_error_rate, c.max_error_rate);
        fill(&mut a.max_p99_ms, c.max_p99_ms);
        fill(&mut a.max_throttle_rate, c.max_throttle_rate);
        if a.http_checks.is_empty() {
            a.http_checks = c.http.unwrap_or_default();
        }
        if a.command_checks.is_empty() {
            a.command_checks = c.command.unwrap_or_default();
        }
        fill(&mut a.on_inconclusive, c.on_inconclusive);
        fill(&mut a.max_extension, c.max_extension);
        fill(&mut a.metrics_period, c.metrics_period);
        fill(&mut a.smoke, c.smoke);
        if c.metrics == Some(false) {
            a.no_metrics = true;
        }
        if a.alarms.is_empty() {
            a.alarms = c.alarms.unwrap_or_default();
        }
        if let Some(p) = c.probe {
            fill(&mut a.probe_rate, Some(p.rate));
            fill(&mut a.probe_payload, p.payload.map(|v| v.to_string()));
            if a.expect.is_none() && a.expect_path.is_none() {
                a.expect = p.expect.map(|v| v.to_string());
                a.expect_path = p.expect_path;
            }
        }
        if a.notify.is_empty() {
            a.notify = self.notify.unwrap_or_default();
        }
        fill(&mut a.pre_traffic_hook, self.hooks.pre_traffic);
        fill(&mut a.post_traffic_hook, self.hooks.post_traffic);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::args::{Cli, Command};
    use crate::deploy::{Target, resolve};

    fn deploy_args(extra: &[&str]) -> crate::args::DeployArgs {
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/deployment.yaml"
        );
        let mut argv = vec!["fledge", "deploy", "--file", example];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Deploy(a) => *a,
            _ => unreachable!(),
        }
    }

    /// The annotated example says what it means.
    #[test]
    fn the_annotated_example_resolves_to_its_plan() {
        let plan = resolve(deploy_args(&[])).unwrap_or_else(|f| panic!("{:#}", f.error));
        assert_eq!(
            (plan.function.as_str(), plan.alias.as_str(), &plan.target),
            ("orders", "live", &Target::Version(7))
        );
        assert_eq!(plan.schedule.len(), 10);
        assert_eq!(
            plan.schedule.total(),
            std::time::Duration::from_secs(600 + 300)
        );
        assert_eq!(plan.evidence.alarms, vec!["orders-errors".to_string()]);
        assert_eq!(plan.evidence.smoke_invocations, 5);
        assert_eq!(
            plan.evidence.external.len(),
            2,
            "one http and one command check"
        );
        let probe = plan.evidence.probe.as_ref().unwrap();
        assert_eq!(probe.rate, 5.0);
        assert_eq!(
            probe.expect,
            fledge_engine::Expectation::JsonSubset(serde_json::json!({"status": "ok"}))
        );
        assert_eq!(plan.hooks.pre_traffic.as_deref(), Some("orders-smoke-test"));
        assert_eq!(plan.checks.interval, std::time::Duration::from_secs(1));
        let fledge_core::judge::Analysis::Fledge(judge) = &plan.analysis else {
            panic!("fledge analysis")
        };
        assert_eq!(
            (judge.max_error_rate, judge.max_p99_ms),
            (Some(0.02), Some(800.0))
        );
    }

    /// A flag given on the command line wins over the file.
    #[test]
    fn flags_win_over_the_file() {
        let plan = resolve(deploy_args(&[
            "--alias",
            "beta",
            "--strategy",
            "canary:5%/1m",
            "--version",
            "9",
        ]))
        .unwrap_or_else(|f| panic!("{:#}", f.error));
        assert_eq!(
            (plan.alias.as_str(), &plan.target, plan.schedule.len()),
            ("beta", &Target::Version(9), 2)
        );
    }

    /// A mistyped key is refused, naming it.
    #[test]
    fn unknown_keys_are_named() {
        let dir = std::env::temp_dir().join(format!("fledge-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.yaml");
        std::fs::write(&path, "function: f\nalias: live\nstratgy: linear:2x1m\n").unwrap();
        let error = super::load(&path).unwrap_err();
        assert_eq!(error.code, 2);
        assert!(
            format!("{:#}", error.error).contains("stratgy"),
            "{:#}",
            error.error
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
