//! Which runtimes fledge local can run, and how a function process of each is started.
//!
//! - The OS-only runtimes (`provided.al2023`, `provided.al2`, `provided`): the package's
//!   `bootstrap` executable is the process.
//! - `python3.x`: AWS's own runtime client for Python, `awslambdaric`, runs the handler
//!   (`python -m awslambdaric module.function`), when an interpreter that has it is found:
//!   the one configured (`fledge local --python`), else `python3.x`, else `python3`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use fledge_core::lambda::LambdaError;

/// The OS-only runtimes, whose entry point is `bootstrap`.
pub const OS_ONLY: [&str; 3] = ["provided.al2023", "provided.al2", "provided"];

/// Every runtime name Lambda's model knows, for AWS's enum error.
pub const KNOWN: &str = "[nodejs, nodejs4.3, nodejs6.10, nodejs8.10, nodejs10.x, nodejs12.x, nodejs14.x, nodejs16.x, java8, java8.al2, java11, python2.7, python3.6, python3.7, python3.8, python3.9, dotnetcore1.0, dotnetcore2.0, dotnetcore2.1, dotnetcore3.1, dotnet6, dotnet8, nodejs4.3-edge, go1.x, ruby2.5, ruby2.7, provided, provided.al2, nodejs18.x, python3.10, java17, ruby3.2, ruby3.3, ruby3.4, python3.11, nodejs20.x, provided.al2023, python3.12, java21, python3.13, nodejs22.x, nodejs24.x, python3.14, java25, dotnet10]";

fn known(runtime: &str) -> bool {
    KNOWN
        .trim_matches(['[', ']'])
        .split(", ")
        .any(|r| r == runtime)
}

/// Whether `runtime` is one of Lambda's Python 3 runtimes.
pub fn is_python(runtime: &str) -> bool {
    runtime.starts_with("python3.") && known(runtime)
}

/// How a function process is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// Run the package's `bootstrap`.
    Bootstrap,
    /// Run `interpreter -m awslambdaric HANDLER` with the package on `PYTHONPATH`.
    Python { interpreter: PathBuf },
}

/// An interpreter that can run Python functions.
#[derive(Clone, Debug)]
struct Python {
    executable: PathBuf,
    /// `3.11`, as the interpreter reports it.
    version: String,
}

/// Finds (once per runtime name) how to run each runtime.
#[derive(Debug, Default)]
pub struct Runtimes {
    /// An interpreter to use for every Python runtime instead of searching `PATH`.
    python: Option<PathBuf>,
    found: Mutex<HashMap<String, Python>>,
}

impl Runtimes {
    pub fn new(python: Option<PathBuf>) -> Runtimes {
        Runtimes {
            python,
            found: Mutex::default(),
        }
    }

    /// Checks a CreateFunction or UpdateFunctionConfiguration `Runtime`: AWS's enum error
    /// for a name Lambda does not know, a clear one for a runtime this machine cannot run.
    pub fn check(&self, runtime: &str) -> Result<(), LambdaError> {
        if OS_ONLY.contains(&runtime) {
            return Ok(());
        }
        if is_python(runtime) {
            return self
                .launch(runtime)
                .map(drop)
                .map_err(LambdaError::invalid_parameter);
        }
        if known(runtime) {
            return Err(LambdaError::invalid_parameter(format!(
                "fledge local runs the OS-only runtimes ({}) and, through awslambdaric, python3.x; '{runtime}' is a Lambda runtime it cannot run. Build the function as a `bootstrap` executable and use provided.al2023.",
                OS_ONLY.join(", ")
            )));
        }
        Err(LambdaError::invalid_parameter(format!(
            "Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: {KNOWN} or be a valid ARN"
        )))
    }

    /// How to start a process of `runtime`; an error says what is missing and how to fix it.
    pub fn launch(&self, runtime: &str) -> Result<Launch, String> {
        if !is_python(runtime) {
            return Ok(Launch::Bootstrap);
        }
        if let Some(found) = self.found.lock().expect("runtimes lock").get(runtime) {
            return Ok(Launch::Python {
                interpreter: found.executable.clone(),
            });
        }
        let wanted = runtime.trim_start_matches("python");
        let candidates: Vec<PathBuf> = match &self.python {
            Some(configured) => vec![configured.clone()],
            None => vec![runtime.into(), "python3".into()],
        };
        let mut tried = Vec::new();
        for candidate in &candidates {
            match probe(candidate) {
                Ok(python) => {
                    if python.version != wanted {
                        tracing::warn!(
                            "{runtime} functions run with Python {} ({}): no {runtime} with awslambdaric was found",
                            python.version,
                            python.executable.display()
                        );
                    }
                    let launch = Launch::Python {
                        interpreter: python.executable.clone(),
                    };
                    self.found
                        .lock()
                        .expect("runtimes lock")
                        .insert(runtime.to_string(), python);
                    return Ok(launch);
                }
                Err(why) => tried.push(format!("{}: {why}", candidate.display())),
            }
        }
        Err(format!(
            "fledge local runs {runtime} functions through AWS's runtime client awslambdaric, and no Python interpreter with it was found ({}). Install it with `pip install awslambdaric`, or start fledge local with --python PATH naming an interpreter that has it.",
            tried.join("; ")
        ))
    }
}

/// Asks `interpreter` whether it can import awslambdaric, and for its real path and version.
fn probe(interpreter: &PathBuf) -> Result<Python, String> {
    let output = std::process::Command::new(interpreter)
        .args([
            "-c",
            "import sys, awslambdaric; print(sys.executable); print('%d.%d' % sys.version_info[:2])",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or("it failed").trim();
        return Err(last.to_string());
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut lines = stdout.lines();
    match (lines.next(), lines.next()) {
        (Some(executable), Some(version)) if !executable.is_empty() => Ok(Python {
            executable: executable.trim().into(),
            version: version.trim().to_string(),
        }),
        _ => Err(format!("it answered {stdout:?}, not its path and version")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_python("python3.12"));
        assert!(!is_python("python2.7"));
        assert!(!is_python("python3.99"));
        let runtimes = Runtimes::new(Some("/nonexistent/python".into()));
        assert!(runtimes.check("provided.al2023").is_ok());
        assert_eq!(runtimes.launch("provided").unwrap(), Launch::Bootstrap);
        let node = runtimes.check("nodejs20.x").unwrap_err();
        assert!(node.message.contains("provided.al2023"), "{}", node.message);
        let unknown = runtimes.check("cobol").unwrap_err();
        assert!(unknown.message.starts_with("Value cobol at 'runtime'"));
        let python = runtimes.check("python3.12").unwrap_err();
        assert!(
            python.message.contains("/nonexistent/python")
                && python.message.contains("pip install awslambdaric"),
            "{}",
            python.message
        );
    }
}
