//! Which runtimes fledge local can run, and how a function process of each is started.
//!
//! - The OS-only runtimes (`provided.al2023`, `provided.al2`, `provided`): the package's
//!   `bootstrap` executable is the process.
//! - `python3.x`: AWS's own runtime client for Python, `awslambdaric`, runs the handler
//!   (`python -m awslambdaric module.function`), when an interpreter that has it is found:
//!   the one configured (`fledge local --python`), else `python3.x`, else `python3`.
//! - `nodejsN.x`: fledge's runtime client for Node.js (`node-runtime.mjs`, written beside the
//!   data) runs the handler (`file.export`) on the configured `node` (`--node`), else the
//!   one on `PATH`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use fledge_core::lambda::LambdaError;

/// The OS-only runtimes, whose entry point is `bootstrap`.
pub const OS_ONLY: [&str; 3] = ["provided.al2023", "provided.al2", "provided"];

/// Every runtime name Lambda's model knows, for AWS's enum error.
pub const KNOWN: &str = "[nodejs, nodejs4.3, nodejs6.10, nodejs8.10, nodejs10.x, nodejs12.x, nodejs14.x, nodejs16.x, java8, java8.al2, java11, python2.7, python3.6, python3.7, python3.8, python3.9, dotnetcore1.0, dotnetcore2.0, dotnetcore2.1, dotnetcore3.1, dotnet6, dotnet8, nodejs4.3-edge, go1.x, ruby2.5, ruby2.7, provided, provided.al2, nodejs18.x, python3.10, java17, ruby3.2, ruby3.3, ruby3.4, python3.11, nodejs20.x, provided.al2023, python3.12, java21, python3.13, nodejs22.x, nodejs24.x, python3.14, java25, dotnet10]";

/// fledge's runtime client for Node.js functions.
const NODE_RUNTIME: &str = include_str!("node-runtime.mjs");

fn known(runtime: &str) -> bool {
    KNOWN
        .trim_matches(['[', ']'])
        .split(", ")
        .any(|r| r == runtime)
}

/// The languages fledge local runs with an interpreter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Language {
    Python,
    Node,
}

impl Language {
    /// The language of `runtime`, if it is one of Lambda's Python 3 or current Node.js
    /// runtimes.
    fn of(runtime: &str) -> Option<Language> {
        if !known(runtime) {
            return None;
        }
        if runtime.starts_with("python3.") {
            Some(Language::Python)
        } else if runtime.starts_with("nodejs") && runtime.ends_with(".x") {
            Some(Language::Node)
        } else {
            None
        }
    }

    /// The interpreter version `runtime` names: `3.12`, `20`.
    fn wanted(self, runtime: &str) -> &str {
        match self {
            Language::Python => runtime.trim_start_matches("python"),
            Language::Node => runtime.trim_start_matches("nodejs").trim_end_matches(".x"),
        }
    }

    /// A program that fails unless the interpreter can run functions, and prints its real
    /// path and its version as `wanted` spells it.
    fn probe_args(self) -> [&'static str; 2] {
        match self {
            Language::Python => [
                "-c",
                "import sys, awslambdaric; print(sys.executable); print('%d.%d' % sys.version_info[:2])",
            ],
            Language::Node => [
                "-e",
                "console.log(process.execPath); console.log(process.versions.node.split('.')[0])",
            ],
        }
    }

    fn fix(self) -> &'static str {
        match self {
            Language::Python => {
                "Install it with `pip install awslambdaric`, or start fledge local with --python PATH naming an interpreter that has it."
            }
            Language::Node => {
                "Install Node.js (18 or later), or start fledge local with --node PATH naming it."
            }
        }
    }

    fn what(self) -> &'static str {
        match self {
            Language::Python => {
                "through AWS's runtime client awslambdaric, and no Python interpreter with it was found"
            }
            Language::Node => "with Node.js, and no `node` (18 or later) was found",
        }
    }
}

/// Whether `runtime` is one of Lambda's Python 3 runtimes.
pub fn is_python(runtime: &str) -> bool {
    Language::of(runtime) == Some(Language::Python)
}

/// How a function process is started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Launch {
    /// Run the package's `bootstrap`.
    Bootstrap,
    /// Run `interpreter -m awslambdaric HANDLER` with the package on `PYTHONPATH`.
    Python { interpreter: PathBuf },
    /// Run `interpreter script`, fledge's runtime client for Node.js.
    Node {
        interpreter: PathBuf,
        script: PathBuf,
    },
}

/// An interpreter that can run functions.
#[derive(Clone, Debug)]
struct Interpreter {
    executable: PathBuf,
    /// `3.11`, `20`: as the runtime names spell it.
    version: String,
}

/// Finds (once per runtime name) how to run each runtime.
#[derive(Debug, Default)]
pub struct Runtimes {
    /// An interpreter to use for every Python runtime instead of searching `PATH`.
    python: Option<PathBuf>,
    /// The same for Node.js.
    node: Option<PathBuf>,
    /// Where fledge's own runtime clients are written.
    scripts: PathBuf,
    found: Mutex<HashMap<String, Interpreter>>,
}

impl Runtimes {
    /// `scripts` is a folder for fledge's runtime clients (under the data directory).
    pub fn new(python: Option<PathBuf>, node: Option<PathBuf>, scripts: PathBuf) -> Runtimes {
        Runtimes {
            python,
            node,
            scripts,
            found: Mutex::default(),
        }
    }

    /// Checks a CreateFunction or UpdateFunctionConfiguration `Runtime`: AWS's enum error
    /// for a name Lambda does not know, a clear one for a runtime this machine cannot run.
    pub fn check(&self, runtime: &str) -> Result<(), LambdaError> {
        if OS_ONLY.contains(&runtime) {
            return Ok(());
        }
        if Language::of(runtime).is_some() {
            return self
                .launch(runtime)
                .map(drop)
                .map_err(LambdaError::invalid_parameter);
        }
        if known(runtime) {
            return Err(LambdaError::invalid_parameter(format!(
                "fledge local runs the OS-only runtimes ({}), python3.x through awslambdaric, and nodejsN.x; '{runtime}' is a Lambda runtime it cannot run. Build the function as a `bootstrap` executable and use provided.al2023.",
                OS_ONLY.join(", ")
            )));
        }
        Err(LambdaError::invalid_parameter(format!(
            "Value {runtime} at 'runtime' failed to satisfy constraint: Member must satisfy enum value set: {KNOWN} or be a valid ARN"
        )))
    }

    /// How to start a process of `runtime`; an error says what is missing and how to fix it.
    pub fn launch(&self, runtime: &str) -> Result<Launch, String> {
        let Some(language) = Language::of(runtime) else {
            return Ok(Launch::Bootstrap);
        };
        let interpreter = self.interpreter(runtime, language)?;
        Ok(match language {
            Language::Python => Launch::Python { interpreter },
            Language::Node => Launch::Node {
                interpreter,
                script: self.script("node-runtime.mjs", NODE_RUNTIME)?,
            },
        })
    }

    fn interpreter(&self, runtime: &str, language: Language) -> Result<PathBuf, String> {
        if let Some(found) = self.found.lock().expect("runtimes lock").get(runtime) {
            return Ok(found.executable.clone());
        }
        let configured = match language {
            Language::Python => &self.python,
            Language::Node => &self.node,
        };
        let candidates: Vec<PathBuf> = match (configured, language) {
            (Some(configured), _) => vec![configured.clone()],
            (None, Language::Python) => vec![runtime.into(), "python3".into()],
            (None, Language::Node) => vec!["node".into()],
        };
        let wanted = language.wanted(runtime);
        let mut tried = Vec::new();
        for candidate in &candidates {
            match probe(candidate, language) {
                Ok(found) => {
                    if found.version != wanted {
                        tracing::warn!(
                            "{runtime} functions run with version {} ({}): no {runtime} interpreter was found",
                            found.version,
                            found.executable.display()
                        );
                    }
                    let executable = found.executable.clone();
                    self.found
                        .lock()
                        .expect("runtimes lock")
                        .insert(runtime.to_string(), found);
                    return Ok(executable);
                }
                Err(why) => tried.push(format!("{}: {why}", candidate.display())),
            }
        }
        Err(format!(
            "fledge local runs {runtime} functions {} ({}). {}",
            language.what(),
            tried.join("; "),
            language.fix()
        ))
    }

    /// Writes one of fledge's runtime clients where processes can run it, once per content.
    fn script(&self, name: &str, content: &str) -> Result<PathBuf, String> {
        let path = self.scripts.join(name);
        if std::fs::read_to_string(&path).is_ok_and(|c| c == content) {
            return Ok(path);
        }
        let tmp = self
            .scripts
            .join(format!("{name}.{}.tmp", std::process::id()));
        std::fs::create_dir_all(&self.scripts)
            .and_then(|()| std::fs::write(&tmp, content))
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("could not write {}: {e}", path.display()))?;
        Ok(path)
    }
}

/// Asks `interpreter` whether it can run `language` functions, and for its real path and
/// version.
fn probe(interpreter: &PathBuf, language: Language) -> Result<Interpreter, String> {
    let output = std::process::Command::new(interpreter)
        .args(language.probe_args())
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
    let found = match (lines.next(), lines.next()) {
        (Some(executable), Some(version)) if !executable.is_empty() => Interpreter {
            executable: executable.trim().into(),
            version: version.trim().to_string(),
        },
        _ => return Err(format!("it answered {stdout:?}, not its path and version")),
    };
    if language == Language::Node && found.version.parse::<u32>().is_ok_and(|v| v < 18) {
        return Err(format!(
            "it is Node.js {}; fledge's runtime client needs 18 or later",
            found.version
        ));
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_python("python3.12"));
        assert!(!is_python("python2.7"));
        assert!(!is_python("python3.99"));
        assert_eq!(Language::of("nodejs20.x"), Some(Language::Node));
        assert_eq!(Language::of("nodejs4.3-edge"), None);
        assert_eq!(Language::Node.wanted("nodejs22.x"), "22");
        let runtimes = Runtimes::new(
            Some("/nonexistent/python".into()),
            Some("/nonexistent/node".into()),
            std::env::temp_dir(),
        );
        assert!(runtimes.check("provided.al2023").is_ok());
        assert_eq!(runtimes.launch("provided").unwrap(), Launch::Bootstrap);
        let java = runtimes.check("java21").unwrap_err();
        assert!(java.message.contains("provided.al2023"), "{}", java.message);
        let unknown = runtimes.check("cobol").unwrap_err();
        assert!(unknown.message.starts_with("Value cobol at 'runtime'"));
        let python = runtimes.check("python3.12").unwrap_err();
        assert!(
            python.message.contains("/nonexistent/python")
                && python.message.contains("pip install awslambdaric"),
            "{}",
            python.message
        );
        let node = runtimes.check("nodejs20.x").unwrap_err();
        assert!(
            node.message.contains("/nonexistent/node") && node.message.contains("--node PATH"),
            "{}",
            node.message
        );
    }
}
