//! Functions, versions, aliases and their code, with Lambda's rules, persisted under the
//! data directory (`functions/<name>.json` and `code/`). Every mutation is written to disk
//! before it is answered, atomically (write, then rename), and touches only its function's
//! file, so a platform with thousands of aliases writes no more per change than one with
//! a few. (A `state.json` from earlier versions is read once and split.)

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use base64::Engine;
use fledge_core::lambda::{
    AdditionalVersion, AliasName, AliasRouting, LambdaError, RoutingRequest, Version,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::policy::{MAX_POLICY, Policy, Statement};
use crate::routing::RoutingMode;
use crate::runtimes::Runtimes;
use crate::wire::{lambda_timestamp, now_ms, uuid};

/// Variables Lambda sets itself and refuses to let a function override.
const RESERVED_ENV: [&str; 16] = [
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
];

/// One version's configuration and code: `$LATEST` or a published, immutable one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FunctionVersion {
    pub version: Version,
    pub runtime: String,
    pub handler: String,
    pub role: String,
    pub description: String,
    pub timeout: u32,
    pub memory_size: u32,
    pub environment: BTreeMap<String, String>,
    pub architectures: Vec<String>,
    /// `EphemeralStorage.Size`: MB of `/tmp` (512–10240). Kept and shown; fledge local
    /// gives each process its own `/tmp` but does not cap its size.
    #[serde(default = "default_ephemeral_storage")]
    pub ephemeral_storage: u32,
    /// `TracingConfig.Mode`: `PassThrough` or `Active`. There is no X-Ray here; every
    /// invocation gets a trace id either way.
    #[serde(default = "default_tracing_mode")]
    pub tracing_mode: String,
    /// `LoggingConfig`.
    #[serde(default)]
    pub logging: Logging,
    /// `DeadLetterConfig.TargetArn`: the SNS topic a failed asynchronous event goes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_letter_target: Option<String>,
    pub code_sha256: String,
    pub code_size: u64,
    /// Hex SHA-256 of the package: the folder under `code/` it is unpacked in.
    pub code_id: String,
    pub revision_id: String,
    pub last_modified: String,
}

impl FunctionVersion {
    /// Everything that makes two versions the same for PublishVersion's "nothing changed".
    fn fingerprint(&self) -> impl PartialEq + '_ {
        (
            &self.runtime,
            &self.handler,
            &self.role,
            &self.description,
            self.timeout,
            self.memory_size,
            &self.environment,
            self.ephemeral_storage,
            &self.tracing_mode,
            &self.logging,
            &self.dead_letter_target,
            &self.code_sha256,
        )
    }
}

/// A version's `LoggingConfig`: the format of its logs, the levels kept when they are JSON,
/// and its log group.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Logging {
    /// `JSON` rather than `Text`.
    pub json: bool,
    /// The least level of the function's own logs kept (JSON only); `INFO` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_level: Option<String>,
    /// The least level of the platform's records kept (JSON only); `INFO` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_level: Option<String>,
    /// A log group of the function's own; `/aws/lambda/NAME` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_group: Option<String>,
}

impl Logging {
    pub fn format(&self) -> &'static str {
        if self.json { "JSON" } else { "Text" }
    }

    pub fn application_level(&self) -> &str {
        self.application_level.as_deref().unwrap_or("INFO")
    }

    pub fn system_level(&self) -> &str {
        self.system_level.as_deref().unwrap_or("INFO")
    }

    pub fn log_group(&self, function: &str) -> String {
        self.log_group
            .clone()
            .unwrap_or_else(|| format!("/aws/lambda/{function}"))
    }

    /// This configuration with `change` applied: a field given replaces the one kept.
    /// Levels need the JSON format: given with Text they are refused, and kept ones are
    /// dropped when the format becomes Text.
    pub fn changed(&self, change: LoggingChange) -> Result<Logging, LambdaError> {
        check_enum(
            change.format.as_deref(),
            "loggingConfig.logFormat",
            &["JSON", "Text"],
        )?;
        check_enum(
            change.application_level.as_deref(),
            "loggingConfig.applicationLogLevel",
            &["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"],
        )?;
        check_enum(
            change.system_level.as_deref(),
            "loggingConfig.systemLogLevel",
            &["DEBUG", "INFO", "WARN"],
        )?;
        if let Some(group) = &change.log_group {
            let ok = (1..=512).contains(&group.len())
                && group
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_/#".contains(c));
            if !ok {
                return Err(LambdaError::validation(
                    group,
                    "loggingConfig.logGroup",
                    "Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+",
                ));
            }
        }
        let json = change.format.as_deref().map_or(self.json, |f| f == "JSON");
        let levels_given = change.application_level.is_some() || change.system_level.is_some();
        if !json && levels_given {
            return Err(LambdaError::invalid_parameter(
                "ApplicationLogLevel and SystemLogLevel apply to logs in the JSON format: give LoggingConfig.LogFormat JSON with them",
            ));
        }
        Ok(Logging {
            json,
            application_level: change
                .application_level
                .or_else(|| self.application_level.clone())
                .filter(|_| json),
            system_level: change
                .system_level
                .or_else(|| self.system_level.clone())
                .filter(|_| json),
            log_group: change.log_group.or_else(|| self.log_group.clone()),
        })
    }
}

/// The fields of a `LoggingConfig` given to CreateFunction or UpdateFunctionConfiguration.
#[derive(Clone, Debug, Default)]
pub struct LoggingChange {
    pub format: Option<String>,
    pub application_level: Option<String>,
    pub system_level: Option<String>,
    pub log_group: Option<String>,
}

fn default_ephemeral_storage() -> u32 {
    512
}

fn default_tracing_mode() -> String {
    "PassThrough".into()
}

/// An alias as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alias {
    pub name: String,
    pub function_version: Version,
    pub description: String,
    pub additional: Option<AdditionalVersion>,
    pub revision_id: String,
    /// fledge's local extension: how invocations pick a version.
    #[serde(default)]
    pub mode: RoutingMode,
}

impl Alias {
    pub fn routing(&self) -> AliasRouting {
        AliasRouting {
            primary: self.function_version,
            additional: self.additional,
        }
    }
}

/// A function with its versions and aliases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Function {
    pub name: String,
    pub latest: Arc<FunctionVersion>,
    pub versions: BTreeMap<u64, Arc<FunctionVersion>>,
    pub next_version: u64,
    pub aliases: BTreeMap<String, Alias>,
    pub reserved_concurrency: Option<u32>,
    /// Options for asynchronous invocation, by qualifier as invoked (`$LATEST`, a version
    /// number or an alias name).
    #[serde(default)]
    pub event_invoke: BTreeMap<String, EventInvokeConfig>,
    /// The function's tags (Lambda tags functions, not versions or aliases).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Resource-based policies, by qualifier as given (`""` for the unqualified function).
    #[serde(default)]
    pub policies: BTreeMap<String, Policy>,
    /// Function URLs, by qualifier (`""` for the unqualified function, an alias's name).
    #[serde(default)]
    pub urls: BTreeMap<String, UrlConfig>,
    /// Provisioned concurrency, by qualifier (a version number or an alias name).
    #[serde(default)]
    pub provisioned: BTreeMap<String, ProvisionedConfig>,
}

/// PutProvisionedConcurrencyConfig's request for one qualifier.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProvisionedConfig {
    pub requested: u32,
    pub modified_ms: u64,
}

/// A function URL's configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UrlConfig {
    /// The URL's own id: 32 lowercase letters and digits.
    pub id: String,
    /// `NONE` or `AWS_IAM`.
    pub auth_type: String,
    /// Lambda's `Cors` object, as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<serde_json::Value>,
    pub invoke_mode: String,
    pub created_ms: u64,
    pub modified_ms: u64,
}

/// PutFunctionEventInvokeConfig's options for one qualifier; unset ones are Lambda's
/// defaults (2 retries, 6 hours).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EventInvokeConfig {
    pub maximum_retry_attempts: Option<u32>,
    pub maximum_event_age_in_seconds: Option<u32>,
    pub last_modified_ms: u64,
    /// Where the invocation record of an event that ran goes (an SNS topic's or a
    /// function's ARN). In a change, `Some("")` removes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<String>,
    /// Where the invocation record of an event given up on goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<String>,
}

impl Function {
    /// A version by qualifier, `$LATEST` included.
    pub fn version(&self, v: Version) -> Option<&Arc<FunctionVersion>> {
        match v {
            Version::Latest => Some(&self.latest),
            Version::Number(n) => self.versions.get(&n),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    functions: BTreeMap<String, Function>,
}

/// Writes one function's file atomically (write, then rename). Function names are
/// `[A-Za-z0-9_-]+`, so they are safe file names.
fn save_function(files: &Path, name: &str, function: &Function) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(function).expect("a function serialises");
    let tmp = files.join(format!("{name}.json.tmp"));
    std::fs::write(&tmp, bytes)
        .and_then(|()| std::fs::rename(&tmp, files.join(format!("{name}.json"))))
}

/// What CreateFunction asks for, already read from the request.
#[derive(Debug, Default)]
pub struct NewFunction {
    pub name: String,
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub role: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<u32>,
    pub memory_size: Option<u32>,
    pub environment: Option<BTreeMap<String, String>>,
    pub architectures: Option<Vec<String>>,
    pub ephemeral_storage: Option<u32>,
    pub tracing_mode: Option<String>,
    pub logging: Option<LoggingChange>,
    pub dead_letter_target: Option<String>,
    pub zip: Option<Vec<u8>>,
    pub publish: bool,
    pub tags: BTreeMap<String, String>,
}

/// Lambda's tag limits: at most 50 per function, keys of 1–128 characters that do not
/// start with `aws:`, values of at most 256 characters. `existing` are the function's tags
/// before `new` are added.
fn check_tags(
    new: &BTreeMap<String, String>,
    existing: &BTreeMap<String, String>,
) -> Result<(), LambdaError> {
    for (key, value) in new {
        let length = key.chars().count();
        if !(1..=128).contains(&length) {
            return Err(LambdaError::invalid_parameter(format!(
                "The tag key '{key}' is {length} characters long; a tag key has 1 to 128."
            )));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(LambdaError::invalid_parameter(format!(
                "The tag key '{key}' starts with 'aws:', which is reserved for AWS's own tags."
            )));
        }
        if value.chars().count() > 256 {
            return Err(LambdaError::invalid_parameter(format!(
                "The value of tag '{key}' is {} characters long; a tag value has at most 256.",
                value.chars().count()
            )));
        }
    }
    let total = existing
        .keys()
        .chain(new.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    if total > 50 {
        return Err(LambdaError::invalid_parameter(format!(
            "A function can have at most 50 tags; these would make {total}."
        )));
    }
    Ok(())
}

/// What UpdateFunctionConfiguration asks for.
#[derive(Debug, Default)]
pub struct ConfigChange {
    pub runtime: Option<String>,
    pub handler: Option<String>,
    pub role: Option<String>,
    pub description: Option<String>,
    pub timeout: Option<u32>,
    pub memory_size: Option<u32>,
    pub environment: Option<BTreeMap<String, String>>,
    pub ephemeral_storage: Option<u32>,
    pub tracing_mode: Option<String>,
    pub logging: Option<LoggingChange>,
    /// `Some("")` removes the target.
    pub dead_letter_target: Option<String>,
    pub revision_id: Option<String>,
}

/// The platform's functions, guarded and persisted.
pub struct Store {
    dir: PathBuf,
    pub region: String,
    pub account: String,
    /// Which runtimes can run here, and how.
    pub runtimes: Runtimes,
    state: RwLock<State>,
}

impl Store {
    /// Opens (or creates) the store under `dir`.
    pub fn open(dir: &Path, region: &str, account: &str) -> std::io::Result<Store> {
        std::fs::create_dir_all(dir.join("code"))?;
        let files = dir.join("functions");
        let legacy = dir.join("state.json");
        let not_state = |path: &Path, e: serde_json::Error| {
            std::io::Error::other(format!(
                "{} is not a fledge local state file: {e}",
                path.display()
            ))
        };
        let mut state = State::default();
        if !files.exists() && legacy.exists() {
            let bytes = std::fs::read(&legacy)?;
            state = serde_json::from_slice(&bytes).map_err(|e| not_state(&legacy, e))?;
            std::fs::create_dir_all(&files)?;
            for (name, function) in &state.functions {
                save_function(&files, name, function)?;
            }
            std::fs::rename(&legacy, dir.join("state.json.split"))?;
        }
        std::fs::create_dir_all(&files)?;
        for entry in std::fs::read_dir(&files)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json")
                && let Some(name) = path.file_stem().and_then(|s| s.to_str())
            {
                let bytes = std::fs::read(&path)?;
                let function = serde_json::from_slice(&bytes).map_err(|e| not_state(&path, e))?;
                state.functions.insert(name.to_owned(), function);
            }
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            region: region.into(),
            account: account.into(),
            runtimes: Runtimes::default(),
            state: RwLock::new(state),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where a package is unpacked.
    pub fn code_dir(&self, code_id: &str) -> PathBuf {
        self.dir.join("code").join(code_id)
    }

    /// Where a package's zip is kept (GetFunction's Code.Location).
    pub fn code_zip(&self, code_id: &str) -> PathBuf {
        self.dir.join("code").join(format!("{code_id}.zip"))
    }

    pub fn function_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{name}",
            self.region, self.account
        )
    }

    /// Reads under the lock.
    pub fn read<T>(&self, f: impl FnOnce(&BTreeMap<String, Function>) -> T) -> T {
        f(&self.state.read().expect("store lock").functions)
    }

    /// Changes function `name` under the lock and persists it before answering; nothing is
    /// kept if `f` fails. `f` sees a map holding that function alone (or nothing, if it does
    /// not exist yet), and may insert or remove it.
    fn write<T>(
        &self,
        name: &str,
        f: impl FnOnce(&mut BTreeMap<String, Function>) -> Result<T, LambdaError>,
    ) -> Result<T, LambdaError> {
        let mut guard = self.state.write().expect("store lock");
        let mut draft: BTreeMap<String, Function> = guard
            .functions
            .get(name)
            .map(|function| (name.to_owned(), function.clone()))
            .into_iter()
            .collect();
        let out = f(&mut draft)?;
        debug_assert!(
            draft.keys().all(|k| k == name),
            "a write touches one function"
        );
        let files = self.dir.join("functions");
        let saved = match draft.remove(name) {
            Some(function) => save_function(&files, name, &function).map(|()| Some(function)),
            None => match std::fs::remove_file(files.join(format!("{name}.json"))) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(None),
            },
        };
        match saved.map_err(|e| {
            LambdaError::new(
                fledge_core::lambda::ErrorType::Service,
                format!("fledge local could not save its state: {e}"),
            )
        })? {
            Some(function) => guard.functions.insert(name.to_owned(), function),
            None => guard.functions.remove(name),
        };
        Ok(out)
    }

    /// AWS's 404 for an alias that UpdateAlias (or a routing mode) names but that is missing.
    fn alias_not_found(&self, name: &str, alias: &str) -> LambdaError {
        LambdaError::not_found(format!(
            "Alias not found: {}:{alias}",
            self.function_arn(name)
        ))
    }

    fn not_found(&self, name: &str, qualifier: Option<&str>) -> LambdaError {
        let arn = self.function_arn(name);
        match qualifier {
            Some(q) => LambdaError::not_found(format!("Function not found: {arn}:{q}")),
            None => LambdaError::not_found(format!("Function not found: {arn}")),
        }
    }

    /// Unpacks and keeps a deployment package; answers (CodeSha256, size, code id).
    fn store_code(&self, zip: &[u8]) -> Result<(String, u64, String), LambdaError> {
        let digest = Sha256::digest(zip);
        let sha_b64 = base64::engine::general_purpose::STANDARD.encode(digest);
        let id: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        let target = self.code_dir(&id);
        if !target.exists() {
            let tmp = self.dir.join("code").join(format!("{id}.tmp-{}", uuid()));
            unpack(zip, &tmp).map_err(|_| {
                let _ = std::fs::remove_dir_all(&tmp);
                LambdaError::invalid_parameter("Could not unzip uploaded file. Please check your file, then try to upload again.")
            })?;
            std::fs::write(self.code_zip(&id), zip)
                .and_then(|()| std::fs::rename(&tmp, &target))
                .map_err(|e| {
                    LambdaError::new(
                        fledge_core::lambda::ErrorType::Service,
                        format!("could not store the code: {e}"),
                    )
                })?;
        }
        Ok((sha_b64, zip.len() as u64, id))
    }

    // ---- functions ----

    pub fn create_function(&self, new: NewFunction) -> Result<Arc<FunctionVersion>, LambdaError> {
        let runtime = new.runtime.ok_or_else(|| LambdaError::invalid_parameter("Runtime and Handler are mandatory parameters for functions created with deployment packages."))?;
        self.runtimes.check(&runtime)?;
        let handler = new.handler.ok_or_else(|| LambdaError::invalid_parameter("Runtime and Handler are mandatory parameters for functions created with deployment packages."))?;
        let role = new
            .role
            .ok_or_else(|| LambdaError::validation("null", "role", "Member must not be null"))?;
        check_role(&role)?;
        let timeout = check_timeout(new.timeout.unwrap_or(3))?;
        let memory_size = check_memory(new.memory_size.unwrap_or(128))?;
        let ephemeral_storage =
            check_ephemeral_storage(new.ephemeral_storage.unwrap_or(default_ephemeral_storage()))?;
        let tracing_mode =
            check_tracing_mode(new.tracing_mode.unwrap_or_else(default_tracing_mode))?;
        let logging = Logging::default().changed(new.logging.unwrap_or_default())?;
        let environment = new.environment.unwrap_or_default();
        check_environment(&environment)?;
        check_tags(&new.tags, &BTreeMap::new())?;
        let zip = new.zip.ok_or_else(|| {
            LambdaError::invalid_parameter("fledge local accepts code only as Code.ZipFile (S3 and container images are not available here)")
        })?;
        let (code_sha256, code_size, code_id) = self.store_code(&zip)?;
        let name = new.name;
        let now = now_ms();
        let latest = Arc::new(FunctionVersion {
            version: Version::Latest,
            runtime,
            handler,
            role,
            description: new.description.unwrap_or_default(),
            timeout,
            memory_size,
            environment,
            architectures: new.architectures.unwrap_or_else(|| vec!["x86_64".into()]),
            ephemeral_storage,
            tracing_mode,
            logging,
            dead_letter_target: new.dead_letter_target.filter(|t| !t.is_empty()),
            code_sha256,
            code_size,
            code_id,
            revision_id: uuid(),
            last_modified: lambda_timestamp(now),
        });
        self.write(&name, |functions| {
            if functions.contains_key(&name) {
                return Err(LambdaError::new(
                    fledge_core::lambda::ErrorType::ResourceConflict,
                    format!("Function already exist: {name}"),
                ));
            }
            let mut function = Function {
                name: name.clone(),
                latest: latest.clone(),
                versions: BTreeMap::new(),
                next_version: 1,
                aliases: BTreeMap::new(),
                reserved_concurrency: None,
                event_invoke: BTreeMap::new(),
                tags: new.tags,
                policies: BTreeMap::new(),
                urls: BTreeMap::new(),
                provisioned: BTreeMap::new(),
            };
            if new.publish {
                let published = publish(&mut function, None, None, None)?;
                functions.insert(name.clone(), function);
                return Ok(published);
            }
            functions.insert(name.clone(), function);
            Ok(latest)
        })
    }

    pub fn delete_function(&self, name: &str, qualifier: Option<&str>) -> Result<(), LambdaError> {
        self.write(name, |functions| {
            let function = functions.get_mut(name).ok_or_else(|| self.not_found(name, None))?;
            match qualifier {
                None => {
                    functions.remove(name);
                    Ok(())
                }
                Some("$LATEST") => Err(LambdaError::invalid_parameter("$LATEST version cannot be deleted without deleting the function.")),
                Some(q) if q.bytes().all(|b| b.is_ascii_digit()) => {
                    let n: u64 = q.parse().map_err(|_| self.not_found(name, Some(q)))?;
                    if !function.versions.contains_key(&n) {
                        return Err(self.not_found(name, Some(q)));
                    }
                    let users: Vec<&str> = function
                        .aliases
                        .values()
                        .filter(|a| a.routing().versions().any(|v| v == Version::Number(n)))
                        .map(|a| a.name.as_str())
                        .collect();
                    if !users.is_empty() {
                        return Err(LambdaError::new(
                            fledge_core::lambda::ErrorType::ResourceConflict,
                            format!("Unable to delete version because the following aliases reference it: [{}]", users.join(", ")),
                        ));
                    }
                    function.versions.remove(&n);
                    function.event_invoke.remove(q);
                    function.policies.remove(q);
                    function.provisioned.remove(q);
                    Ok(())
                }
                Some(_) => Err(LambdaError::invalid_parameter("Deletion of aliases is not currently supported.")),
            }
        })
    }

    pub fn update_code(
        &self,
        name: &str,
        zip: Vec<u8>,
        revision_id: Option<&str>,
        publish_after: bool,
        dry_run: bool,
    ) -> Result<Arc<FunctionVersion>, LambdaError> {
        let (code_sha256, code_size, code_id) = self.store_code(&zip)?;
        self.write(name, |functions| {
            let function = functions
                .get_mut(name)
                .ok_or_else(|| self.not_found(name, None))?;
            if revision_id.is_some_and(|r| r != function.latest.revision_id) {
                return Err(LambdaError::revision_mismatch());
            }
            let mut latest = (*function.latest).clone();
            latest.code_sha256 = code_sha256;
            latest.code_size = code_size;
            latest.code_id = code_id;
            latest.last_modified = lambda_timestamp(now_ms());
            latest.revision_id = uuid();
            if dry_run {
                return Ok(Arc::new(latest));
            }
            function.latest = Arc::new(latest);
            if publish_after {
                return publish(function, None, None, None);
            }
            Ok(function.latest.clone())
        })
    }

    pub fn update_configuration(
        &self,
        name: &str,
        change: ConfigChange,
    ) -> Result<Arc<FunctionVersion>, LambdaError> {
        if let Some(r) = &change.runtime {
            self.runtimes.check(r)?;
        }
        if let Some(role) = &change.role {
            check_role(role)?;
        }
        let timeout = change.timeout.map(check_timeout).transpose()?;
        let memory = change.memory_size.map(check_memory).transpose()?;
        let ephemeral_storage = change
            .ephemeral_storage
            .map(check_ephemeral_storage)
            .transpose()?;
        let tracing_mode = change.tracing_mode.map(check_tracing_mode).transpose()?;
        if let Some(env) = &change.environment {
            check_environment(env)?;
        }
        self.write(name, |functions| {
            let function = functions
                .get_mut(name)
                .ok_or_else(|| self.not_found(name, None))?;
            if change
                .revision_id
                .as_deref()
                .is_some_and(|r| r != function.latest.revision_id)
            {
                return Err(LambdaError::revision_mismatch());
            }
            let mut latest = (*function.latest).clone();
            if let Some(v) = change.runtime {
                latest.runtime = v;
            }
            if let Some(v) = change.handler {
                latest.handler = v;
            }
            if let Some(v) = change.role {
                latest.role = v;
            }
            if let Some(v) = change.description {
                latest.description = v;
            }
            if let Some(v) = timeout {
                latest.timeout = v;
            }
            if let Some(v) = memory {
                latest.memory_size = v;
            }
            if let Some(v) = change.environment {
                latest.environment = v;
            }
            if let Some(v) = ephemeral_storage {
                latest.ephemeral_storage = v;
            }
            if let Some(v) = tracing_mode {
                latest.tracing_mode = v;
            }
            if let Some(change) = change.logging {
                latest.logging = latest.logging.changed(change)?;
            }
            if let Some(target) = change.dead_letter_target {
                latest.dead_letter_target = Some(target).filter(|t| !t.is_empty());
            }
            latest.last_modified = lambda_timestamp(now_ms());
            latest.revision_id = uuid();
            function.latest = Arc::new(latest);
            Ok(function.latest.clone())
        })
    }

    pub fn publish_version(
        &self,
        name: &str,
        code_sha256: Option<&str>,
        description: Option<String>,
        revision_id: Option<&str>,
    ) -> Result<Arc<FunctionVersion>, LambdaError> {
        self.write(name, |functions| {
            let function = functions
                .get_mut(name)
                .ok_or_else(|| self.not_found(name, None))?;
            publish(function, code_sha256, description, revision_id)
        })
    }

    pub fn set_concurrency(&self, name: &str, reserved: Option<u32>) -> Result<(), LambdaError> {
        self.write(name, |functions| {
            let function = functions
                .get_mut(name)
                .ok_or_else(|| self.not_found(name, None))?;
            function.reserved_concurrency = reserved;
            Ok(())
        })
    }

    // ---- tags ----

    /// Adds `tags` to the function's, replacing the values of keys it has already.
    pub fn tag(&self, name: &str, tags: BTreeMap<String, String>) -> Result<(), LambdaError> {
        self.write(name, |functions| {
            let function = functions
                .get_mut(name)
                .ok_or_else(|| self.not_found(name, None))?;
            check_tags(&tags, &function.tags)?;
            function.tags.extend(tags);
            Ok(())
        })
    }

    /// Removes the tags with these keys; a key the function does not have is no error.
    pub fn untag(&self, name: &str, keys: &[String]) -> Result<(), LambdaError> {
        self.write(name, |functions| {
            let function = functions
                .get_mut(name)
                .ok_or_else(|| self.not_found(name, None))?;
            for key in keys {
                function.tags.remove(key);
            }
            Ok(())
        })
    }

    // ---- resource-based policies ----

    /// The ARN a policy of `qualifier` is on.
    fn policy_resource(&self, name: &str, qualifier: Option<&str>) -> String {
        match qualifier {
            Some(q) => format!("{}:{q}", self.function_arn(name)),
            None => self.function_arn(name),
        }
    }

    /// Function `name`, to change, if it exists and has `qualifier` (if one is given).
    fn with_qualifier_mut<'a>(
        &self,
        functions: &'a mut BTreeMap<String, Function>,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<&'a mut Function, LambdaError> {
        if let Some(q) = qualifier {
            self.check_qualifier(functions.get(name), name, q)?;
        }
        functions
            .get_mut(name)
            .ok_or_else(|| self.not_found(name, None))
    }

    /// Adds `statement` to the policy of `qualifier` (`None`: the function's own). Answers
    /// the policy's resource and the statement.
    pub fn add_permission(
        &self,
        name: &str,
        qualifier: Option<&str>,
        statement: Statement,
        revision_id: Option<&str>,
    ) -> Result<(String, Statement), LambdaError> {
        let resource = self.policy_resource(name, qualifier);
        self.write(name, |functions| {
            let function = self.with_qualifier_mut(functions, name, qualifier)?;
            let policy = function
                .policies
                .entry(qualifier.unwrap_or_default().to_owned())
                .or_default();
            if revision_id.is_some_and(|r| r != policy.revision_id) {
                return Err(LambdaError::revision_mismatch());
            }
            if policy
                .statements
                .iter()
                .any(|s| s.statement_id == statement.statement_id)
            {
                return Err(LambdaError::new(
                    fledge_core::lambda::ErrorType::ResourceConflict,
                    format!(
                        "The statement id ({}) provided already exists. Please provide a new statement id, or remove the existing statement.",
                        statement.statement_id
                    ),
                ));
            }
            policy.statements.push(statement.clone());
            let size = policy.document(&resource).len();
            if size > MAX_POLICY {
                return Err(LambdaError::new(
                    fledge_core::lambda::ErrorType::PolicyLengthExceeded,
                    format!(
                        "The final policy size ({size}) is bigger than the limit ({MAX_POLICY})."
                    ),
                ));
            }
            policy.revision_id = uuid();
            Ok((resource.clone(), statement))
        })
    }

    /// The policy of `qualifier` and the resource it is on; Lambda's not-found answer when
    /// it has no statements.
    pub fn policy(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(String, Policy), LambdaError> {
        let resource = self.policy_resource(name, qualifier);
        self.read(|functions| {
            let function = match qualifier {
                Some(q) => self.check_qualifier(functions.get(name), name, q)?,
                None => functions
                    .get(name)
                    .ok_or_else(|| self.not_found(name, None))?,
            };
            function
                .policies
                .get(qualifier.unwrap_or_default())
                .filter(|p| !p.statements.is_empty())
                .cloned()
                .map(|p| (resource.clone(), p))
                .ok_or_else(|| LambdaError::not_found("The resource you requested does not exist."))
        })
    }

    /// Removes statement `id` from the policy of `qualifier`.
    pub fn remove_permission(
        &self,
        name: &str,
        qualifier: Option<&str>,
        id: &str,
        revision_id: Option<&str>,
    ) -> Result<(), LambdaError> {
        self.write(name, |functions| {
            let function = self.with_qualifier_mut(functions, name, qualifier)?;
            let missing = || {
                LambdaError::not_found(format!("Statement {id} is not found in resource policy."))
            };
            let key = qualifier.unwrap_or_default();
            let policy = function.policies.get_mut(key).ok_or_else(missing)?;
            if revision_id.is_some_and(|r| r != policy.revision_id) {
                return Err(LambdaError::revision_mismatch());
            }
            let before = policy.statements.len();
            policy.statements.retain(|s| s.statement_id != id);
            if policy.statements.len() == before {
                return Err(missing());
            }
            policy.revision_id = uuid();
            if policy.statements.is_empty() {
                function.policies.remove(key);
            }
            Ok(())
        })
    }

    // ---- function URLs ----

    /// Checks that `qualifier` (`None`, `$LATEST` or an alias) may have a URL and exists;
    /// answers the key its URL is kept under.
    fn url_key(
        &self,
        function: Option<&Function>,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<String, LambdaError> {
        match qualifier {
            None | Some("$LATEST") => {
                function.ok_or_else(|| self.not_found(name, None))?;
                Ok(String::new())
            }
            Some(q) if q.bytes().all(|b| b.is_ascii_digit()) => Err(LambdaError::validation(
                q,
                "qualifier",
                "Member must satisfy regular expression pattern: ((?!^\\d+$)^[0-9a-zA-Z-_]+$)",
            )),
            Some(q) => {
                self.check_qualifier(function, name, q)?;
                Ok(q.to_owned())
            }
        }
    }

    /// Gives `qualifier` a URL (CreateFunctionUrlConfig).
    pub fn create_url(
        &self,
        name: &str,
        qualifier: Option<&str>,
        auth_type: String,
        cors: Option<serde_json::Value>,
        invoke_mode: String,
    ) -> Result<UrlConfig, LambdaError> {
        let arn = self.policy_resource(name, qualifier);
        self.write(name, |functions| {
            let key = self.url_key(functions.get(name), name, qualifier)?;
            let function = functions.get_mut(name).expect("checked");
            if function.urls.contains_key(&key) {
                return Err(LambdaError::new(
                    fledge_core::lambda::ErrorType::ResourceConflict,
                    format!("Failed to create function url config for [functionArn = {arn}]. Error message:  FunctionUrlConfig exists for this Lambda function"),
                ));
            }
            let now = now_ms();
            let config = UrlConfig {
                id: uuid().replace('-', ""),
                auth_type,
                cors,
                invoke_mode,
                created_ms: now,
                modified_ms: now,
            };
            function.urls.insert(key, config.clone());
            Ok(config)
        })
    }

    /// Changes what is given of a URL's configuration (UpdateFunctionUrlConfig).
    pub fn update_url(
        &self,
        name: &str,
        qualifier: Option<&str>,
        auth_type: Option<String>,
        cors: Option<serde_json::Value>,
        invoke_mode: Option<String>,
    ) -> Result<UrlConfig, LambdaError> {
        self.write(name, |functions| {
            let key = self.url_key(functions.get(name), name, qualifier)?;
            let function = functions.get_mut(name).expect("checked");
            let config = function.urls.get_mut(&key).ok_or_else(no_such_resource)?;
            if let Some(v) = auth_type {
                config.auth_type = v;
            }
            if let Some(v) = cors {
                config.cors = Some(v);
            }
            if let Some(v) = invoke_mode {
                config.invoke_mode = v;
            }
            config.modified_ms = now_ms();
            Ok(config.clone())
        })
    }

    /// The URL configuration of `qualifier`.
    pub fn url(&self, name: &str, qualifier: Option<&str>) -> Result<UrlConfig, LambdaError> {
        self.read(|functions| {
            let key = self.url_key(functions.get(name), name, qualifier)?;
            functions[name]
                .urls
                .get(&key)
                .cloned()
                .ok_or_else(no_such_resource)
        })
    }

    pub fn delete_url(&self, name: &str, qualifier: Option<&str>) -> Result<(), LambdaError> {
        self.write(name, |functions| {
            let key = self.url_key(functions.get(name), name, qualifier)?;
            let function = functions.get_mut(name).expect("checked");
            function
                .urls
                .remove(&key)
                .map(|_| ())
                .ok_or_else(no_such_resource)
        })
    }

    /// Every URL of function `name`, with the qualifier it is on (`""`: none).
    pub fn urls(&self, name: &str) -> Result<Vec<(String, UrlConfig)>, LambdaError> {
        self.read(|functions| {
            let function = functions
                .get(name)
                .ok_or_else(|| self.not_found(name, None))?;
            Ok(function
                .urls
                .iter()
                .map(|(q, c)| (q.clone(), c.clone()))
                .collect())
        })
    }

    /// The function and qualifier whose URL has id `id`.
    pub fn find_url(&self, id: &str) -> Option<(String, String, UrlConfig)> {
        self.read(|functions| {
            functions.values().find_map(|f| {
                f.urls
                    .iter()
                    .find(|(_, c)| c.id == id)
                    .map(|(q, c)| (f.name.clone(), q.clone(), c.clone()))
            })
        })
    }

    // ---- provisioned concurrency ----

    /// Asks for `requested` processes kept ready for `qualifier` (a version or an alias).
    pub fn set_provisioned(
        &self,
        name: &str,
        qualifier: &str,
        requested: u32,
        limit: u32,
    ) -> Result<ProvisionedConfig, LambdaError> {
        if qualifier == "$LATEST" {
            return Err(LambdaError::invalid_parameter(
                "Provisioned Concurrency Configs cannot be applied to unpublished function versions.",
            ));
        }
        within(
            i64::from(requested),
            "provisionedConcurrentExecutions",
            1,
            i64::MAX,
        )?;
        self.write(name, |functions| {
            let function = self.with_qualifier_mut(functions, name, Some(qualifier))?;
            let others: u32 = function
                .provisioned
                .iter()
                .filter(|(q, _)| q.as_str() != qualifier)
                .map(|(_, c)| c.requested)
                .sum();
            let cap = function.reserved_concurrency.unwrap_or(limit);
            if others + requested > cap {
                let what = if function.reserved_concurrency.is_some() {
                    "the function's reserved concurrency"
                } else {
                    "fledge local's concurrency per function (--concurrency)"
                };
                return Err(LambdaError::invalid_parameter(format!(
                    "Requested Provisioned Concurrency ({requested}, with {others} on other qualifiers) should not be greater than {what}, {cap}"
                )));
            }
            let config = ProvisionedConfig {
                requested,
                modified_ms: now_ms(),
            };
            function
                .provisioned
                .insert(qualifier.to_owned(), config.clone());
            Ok(config)
        })
    }

    pub fn provisioned(
        &self,
        name: &str,
        qualifier: &str,
    ) -> Result<ProvisionedConfig, LambdaError> {
        self.read(|functions| {
            let function = self.check_qualifier(functions.get(name), name, qualifier)?;
            function
                .provisioned
                .get(qualifier)
                .cloned()
                .ok_or_else(no_provisioned_config)
        })
    }

    pub fn delete_provisioned(&self, name: &str, qualifier: &str) -> Result<(), LambdaError> {
        self.write(name, |functions| {
            let function = self.with_qualifier_mut(functions, name, Some(qualifier))?;
            function
                .provisioned
                .remove(qualifier)
                .map(|_| ())
                .ok_or_else(no_provisioned_config)
        })
    }

    // ---- asynchronous invocation ----

    /// Sets the asynchronous-invocation options of `qualifier` (`None` is `$LATEST`): all of
    /// them with `replace` (PutFunctionEventInvokeConfig), or only the given ones
    /// (UpdateFunctionEventInvokeConfig). Answers the qualified ARN and the options.
    pub fn set_event_invoke(
        &self,
        name: &str,
        qualifier: Option<&str>,
        change: EventInvokeConfig,
        replace: bool,
    ) -> Result<(String, EventInvokeConfig), LambdaError> {
        let q = qualifier.unwrap_or("$LATEST").to_owned();
        self.write(name, |functions| {
            self.check_qualifier(functions.get(name), name, &q)?;
            let function = functions.get_mut(name).expect("checked");
            let config = function.event_invoke.entry(q.clone()).or_default();
            if replace {
                *config = change;
            } else {
                config.maximum_retry_attempts = change
                    .maximum_retry_attempts
                    .or(config.maximum_retry_attempts);
                config.maximum_event_age_in_seconds = change
                    .maximum_event_age_in_seconds
                    .or(config.maximum_event_age_in_seconds);
                config.on_success = change.on_success.or(config.on_success.take());
                config.on_failure = change.on_failure.or(config.on_failure.take());
            }
            config.on_success = config.on_success.take().filter(|d| !d.is_empty());
            config.on_failure = config.on_failure.take().filter(|d| !d.is_empty());
            config.last_modified_ms = now_ms();
            Ok((format!("{}:{q}", self.function_arn(name)), config.clone()))
        })
    }

    /// The asynchronous-invocation options of `qualifier`, with its qualified ARN.
    pub fn event_invoke(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(String, EventInvokeConfig), LambdaError> {
        let q = qualifier.unwrap_or("$LATEST");
        let arn = format!("{}:{q}", self.function_arn(name));
        self.read(|functions| {
            let function = self.check_qualifier(functions.get(name), name, q)?;
            function
                .event_invoke
                .get(q)
                .cloned()
                .map(|c| (arn.clone(), c))
                .ok_or_else(|| no_event_invoke_config(&arn))
        })
    }

    /// `function` (named `name`) if it exists and has `q` (`$LATEST`, a version number, an
    /// alias name); Lambda's not-found answer otherwise.
    fn check_qualifier<'a>(
        &self,
        function: Option<&'a Function>,
        name: &str,
        q: &str,
    ) -> Result<&'a Function, LambdaError> {
        let function = function.ok_or_else(|| self.not_found(name, None))?;
        if qualifier_exists(function, q) {
            Ok(function)
        } else {
            Err(self.not_found(name, Some(q)))
        }
    }

    /// Every qualifier's asynchronous-invocation options, with their qualified ARNs.
    pub fn event_invokes(
        &self,
        name: &str,
    ) -> Result<Vec<(String, EventInvokeConfig)>, LambdaError> {
        let arn = self.function_arn(name);
        self.read(|functions| {
            let function = functions
                .get(name)
                .ok_or_else(|| self.not_found(name, None))?;
            Ok(function
                .event_invoke
                .iter()
                .map(|(q, c)| (format!("{arn}:{q}"), c.clone()))
                .collect())
        })
    }

    pub fn delete_event_invoke(
        &self,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(), LambdaError> {
        let q = qualifier.unwrap_or("$LATEST");
        self.write(name, |functions| {
            self.check_qualifier(functions.get(name), name, q)?;
            let function = functions.get_mut(name).expect("checked");
            function
                .event_invoke
                .remove(q)
                .map(drop)
                .ok_or_else(|| no_event_invoke_config(&format!("{}:{q}", self.function_arn(name))))
        })
    }

    // ---- aliases ----

    pub fn create_alias(
        &self,
        name: &str,
        alias: &AliasName,
        request: RoutingRequest,
        description: Option<String>,
    ) -> Result<Alias, LambdaError> {
        let routing = request.resolve(None)?;
        self.write(name, |functions| {
            let function = functions
                .get_mut(name)
                .ok_or_else(|| self.not_found(name, None))?;
            let alias_arn = format!("{}:{alias}", self.function_arn(name));
            if function.aliases.contains_key(alias.as_str()) {
                return Err(LambdaError::new(
                    fledge_core::lambda::ErrorType::ResourceConflict,
                    format!("Alias already exists: {alias_arn}"),
                ));
            }
            self.check_versions_exist(function, &routing)?;
            let record = Alias {
                name: alias.to_string(),
                function_version: routing.primary,
                description: description.unwrap_or_default(),
                additional: routing.additional,
                revision_id: uuid(),
                mode: RoutingMode::default(),
            };
            function.aliases.insert(alias.to_string(), record.clone());
            Ok(record)
        })
    }

    pub fn update_alias(
        &self,
        name: &str,
        alias: &str,
        request: RoutingRequest,
        description: Option<String>,
        revision_id: Option<&str>,
    ) -> Result<Alias, LambdaError> {
        self.write(name, |functions| {
            let function = functions
                .get_mut(name)
                .ok_or_else(|| self.not_found(name, None))?;
            let current = function
                .aliases
                .get(alias)
                .ok_or_else(|| self.alias_not_found(name, alias))?;
            if revision_id.is_some_and(|r| r != current.revision_id) {
                return Err(LambdaError::revision_mismatch());
            }
            let routing = request.resolve(Some(&current.routing()))?;
            self.check_versions_exist(function, &routing)?;
            let current = function.aliases.get_mut(alias).expect("checked above");
            current.function_version = routing.primary;
            current.additional = routing.additional;
            if let Some(d) = description {
                current.description = d;
            }
            current.revision_id = uuid();
            Ok(current.clone())
        })
    }

    /// Sets an alias's local routing mode (fledge's extension; not a Lambda operation).
    pub fn set_routing_mode(
        &self,
        name: &str,
        alias: &str,
        mode: RoutingMode,
    ) -> Result<Alias, LambdaError> {
        self.write(name, |functions| {
            let function = functions
                .get_mut(name)
                .ok_or_else(|| self.not_found(name, None))?;
            let current = function
                .aliases
                .get_mut(alias)
                .ok_or_else(|| self.alias_not_found(name, alias))?;
            current.mode = mode;
            Ok(current.clone())
        })
    }

    pub fn delete_alias(&self, name: &str, alias: &str) -> Result<(), LambdaError> {
        self.write(name, |functions| {
            let function = functions
                .get_mut(name)
                .ok_or_else(|| self.not_found(name, None))?;
            function.aliases.remove(alias);
            function.event_invoke.remove(alias);
            function.policies.remove(alias);
            function.urls.remove(alias);
            function.provisioned.remove(alias);
            Ok(())
        })
    }

    fn check_versions_exist(
        &self,
        function: &Function,
        routing: &AliasRouting,
    ) -> Result<(), LambdaError> {
        for v in routing.versions() {
            if function.version(v).is_none() {
                return Err(self.not_found(&function.name, Some(&v.to_string())));
            }
        }
        let roles: Vec<&str> = routing
            .versions()
            .filter_map(|v| function.version(v))
            .map(|v| v.role.as_str())
            .collect();
        if roles.windows(2).any(|w| w[0] != w[1]) {
            return Err(LambdaError::invalid_parameter(
                "Specified versions must be associated with the same execution role",
            ));
        }
        Ok(())
    }
}

/// PublishVersion on a function: a new version, or the latest one if nothing changed.
fn publish(
    function: &mut Function,
    code_sha256: Option<&str>,
    description: Option<String>,
    revision_id: Option<&str>,
) -> Result<Arc<FunctionVersion>, LambdaError> {
    let latest = function.latest.clone();
    if let Some(sha) = code_sha256
        && sha != latest.code_sha256
    {
        return Err(LambdaError::invalid_parameter(format!(
            "CodeSHA256 ({sha}) is different from current CodeSHA256 in $LATEST ({}). Please try again with the CodeSHA256 in $LATEST.",
            latest.code_sha256
        )));
    }
    if revision_id.is_some_and(|r| r != latest.revision_id) {
        return Err(LambdaError::revision_mismatch());
    }
    if let Some((_, newest)) = function.versions.last_key_value() {
        let mut candidate = (*latest).clone();
        if let Some(d) = &description {
            candidate.description = d.clone();
        }
        if newest.fingerprint() == candidate.fingerprint() {
            return Ok(newest.clone());
        }
    }
    let n = function.next_version;
    function.next_version += 1;
    let mut version = (*latest).clone();
    version.version = Version::Number(n);
    version.revision_id = uuid();
    version.last_modified = lambda_timestamp(now_ms());
    if let Some(d) = description {
        version.description = d;
    }
    let version = Arc::new(version);
    function.versions.insert(n, version.clone());
    let mut new_latest = (*latest).clone();
    new_latest.revision_id = uuid();
    function.latest = Arc::new(new_latest);
    Ok(version)
}

/// Whether `q` (`$LATEST`, a version number, an alias name) names something of `function`.
fn no_provisioned_config() -> LambdaError {
    LambdaError::new(
        fledge_core::lambda::ErrorType::ProvisionedConcurrencyConfigNotFound,
        "No Provisioned Concurrency Config found for this function",
    )
}

/// Lambda's answer for a policy or URL configuration that does not exist.
fn no_such_resource() -> LambdaError {
    LambdaError::not_found("The resource you requested does not exist.")
}

fn qualifier_exists(function: &Function, q: &str) -> bool {
    q == "$LATEST"
        || q.parse::<u64>()
            .is_ok_and(|n| function.versions.contains_key(&n))
        || function.aliases.contains_key(q)
}

/// Lambda's answer for a qualifier without options (message as LocalStack gives it;
/// unverified against AWS).
fn no_event_invoke_config(qualified_arn: &str) -> LambdaError {
    LambdaError::not_found(format!(
        "The function {qualified_arn} doesn't have an EventInvokeConfig"
    ))
}

/// `arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+`, checked by shape only.
fn check_role(role: &str) -> Result<(), LambdaError> {
    let ok = (|| {
        let rest = role.strip_prefix("arn:")?;
        let (partition, rest) = rest.split_once(':')?;
        let partition_ok = partition.is_empty()
            || (partition.starts_with("aws")
                && partition
                    .bytes()
                    .all(|b| b.is_ascii_alphabetic() || b == b'-'));
        let rest = rest.strip_prefix("iam::")?;
        let (account, rest) = rest.split_once(':')?;
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        let path = rest.strip_prefix("role")?;
        let path = path.strip_prefix('/').unwrap_or(path);
        let path_ok = !path.is_empty()
            && path
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_/".contains(&b));
        Some(partition_ok && account_ok && path_ok)
    })()
    .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(LambdaError::validation(
            role,
            "role",
            r"Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*)?:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+",
        ))
    }
}

fn check_timeout(t: u32) -> Result<u32, LambdaError> {
    within(i64::from(t), "timeout", 1, 900)
}

fn check_ephemeral_storage(size: u32) -> Result<u32, LambdaError> {
    within(i64::from(size), "ephemeralStorage.size", 512, 10240)
}

fn check_tracing_mode(mode: String) -> Result<String, LambdaError> {
    check_enum(
        Some(&mode),
        "tracingConfig.mode",
        &["Active", "PassThrough"],
    )?;
    Ok(mode)
}

fn check_memory(m: u32) -> Result<u32, LambdaError> {
    within(i64::from(m), "memorySize", 128, 10240)
}

/// `n` if it is in `min..=max`, else the validation error Lambda gives for `field`.
pub(crate) fn within(n: i64, field: &str, min: i64, max: i64) -> Result<u32, LambdaError> {
    let bound = if n < min {
        format!("greater than or equal to {min}")
    } else if n > max {
        format!("less than or equal to {max}")
    } else {
        return Ok(n as u32);
    };
    Err(LambdaError::validation(
        &n.to_string(),
        field,
        &format!("Member must have value {bound}"),
    ))
}

/// `value`, if given, one of the model's `allowed` values for `field`, or AWS's validation
/// message.
pub(crate) fn check_enum(
    value: Option<&str>,
    field: &str,
    allowed: &[&str],
) -> Result<(), LambdaError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(LambdaError::validation(
            v,
            field,
            &format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        )),
        _ => Ok(()),
    }
}

fn check_environment(env: &BTreeMap<String, String>) -> Result<(), LambdaError> {
    let reserved: Vec<&str> = env
        .keys()
        .map(String::as_str)
        .filter(|k| RESERVED_ENV.contains(k))
        .collect();
    if reserved.is_empty() {
        return Ok(());
    }
    Err(LambdaError::invalid_parameter(format!(
        "Lambda was unable to configure your environment variables because the environment variables you have provided contains reserved keys that are currently not supported for modification. Reserved keys used in this request: {}",
        reserved.join(", ")
    )))
}

/// Unpacks a zip into `dir`, refusing paths that leave it, keeping Unix modes; `bootstrap`
/// is made executable even when the archive carries no mode (zips made on Windows).
fn unpack(zip: &[u8], dir: &Path) -> std::io::Result<()> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    for i in 0..archive.len() {
        let mut entry = archive.by_index(i).map_err(std::io::Error::other)?;
        let Some(relative) = entry.enclosed_name() else {
            return Err(std::io::Error::other("an entry's path leaves the package"));
        };
        let path = dir.join(&relative);
        if entry.is_dir() {
            std::fs::create_dir_all(&path)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        std::fs::write(&path, bytes)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mut mode = entry.unix_mode().unwrap_or(0o644) & 0o777;
            if relative == Path::new("bootstrap") {
                mode |= 0o555;
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode.max(0o400)))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    pub fn zip_with(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut out);
        for (name, bytes, mode) in files {
            let options = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            w.start_file(*name, options).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap();
        out.into_inner()
    }

    fn new_function(name: &str, zip: Vec<u8>) -> NewFunction {
        NewFunction {
            name: name.into(),
            runtime: Some("provided.al2023".into()),
            handler: Some("bootstrap".into()),
            role: Some("arn:aws:iam::123456789012:role/lambda".into()),
            zip: Some(zip),
            ..NewFunction::default()
        }
    }

    fn temp_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fledge-store-{}", uuid()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn publish_with_nothing_changed_returns_the_latest_version() {
        let dir = temp_dir();
        let store = Store::open(&dir, "us-east-1", "000000000000").unwrap();
        let zip = zip_with(&[("bootstrap", b"#!/bin/sh\n", 0o755)]);
        store
            .create_function(new_function("f", zip.clone()))
            .unwrap();
        let v1 = store.publish_version("f", None, None, None).unwrap();
        let again = store.publish_version("f", None, None, None).unwrap();
        assert_eq!(
            (v1.version, again.version),
            (Version::Number(1), Version::Number(1))
        );
        store
            .update_code(
                "f",
                zip_with(&[("bootstrap", b"#!/bin/sh\necho 2\n", 0o755)]),
                None,
                false,
                false,
            )
            .unwrap();
        let v2 = store.publish_version("f", None, None, None).unwrap();
        assert_eq!(v2.version, Version::Number(2));
        let e = store
            .publish_version("f", Some("bogus"), None, None)
            .unwrap_err();
        assert!(
            e.message.starts_with("CodeSHA256 (bogus) is different"),
            "{e}"
        );
        // And it all survives a restart.
        drop(store);
        let reopened = Store::open(&dir, "us-east-1", "000000000000").unwrap();
        assert_eq!(reopened.read(|f| f["f"].versions.len()), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A data directory from before the split (one state.json) opens with its functions, and
    /// a deleted function's file goes with it.
    #[test]
    fn an_old_state_file_is_split_and_deletes_remove_files() {
        let dir = temp_dir();
        let store = Store::open(&dir, "us-east-1", "000000000000").unwrap();
        let zip = zip_with(&[("bootstrap", b"#!/bin/sh\n", 0o755)]);
        store
            .create_function(new_function("f", zip.clone()))
            .unwrap();
        store.create_function(new_function("g", zip)).unwrap();
        let functions = store.read(|f| f.clone());
        drop(store);
        std::fs::remove_dir_all(dir.join("functions")).unwrap();
        std::fs::write(
            dir.join("state.json"),
            serde_json::to_vec(&State { functions }).unwrap(),
        )
        .unwrap();
        let store = Store::open(&dir, "us-east-1", "000000000000").unwrap();
        assert_eq!(
            store.read(|f| f.keys().cloned().collect::<Vec<_>>()),
            ["f", "g"]
        );
        assert!(dir.join("functions/g.json").exists() && !dir.join("state.json").exists());
        store.delete_function("g", None).unwrap();
        assert!(!dir.join("functions/g.json").exists());
        drop(store);
        let store = Store::open(&dir, "us-east-1", "000000000000").unwrap();
        assert_eq!(store.read(|f| f.keys().cloned().collect::<Vec<_>>()), ["f"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_package_is_unpacked_with_an_executable_bootstrap() {
        let dir = temp_dir();
        let store = Store::open(&dir, "us-east-1", "000000000000").unwrap();
        let f = store
            .create_function(new_function(
                "f",
                zip_with(&[("bootstrap", b"x", 0o644), ("lib/data.txt", b"d", 0o644)]),
            ))
            .unwrap();
        let code = store.code_dir(&f.code_id);
        use std::os::unix::fs::PermissionsExt;
        assert_ne!(
            std::fs::metadata(code.join("bootstrap"))
                .unwrap()
                .permissions()
                .mode()
                & 0o111,
            0
        );
        assert_eq!(std::fs::read(code.join("lib/data.txt")).unwrap(), b"d");
        let bad = store
            .create_function(new_function("g", b"not a zip".to_vec()))
            .unwrap_err();
        assert_eq!(
            bad.message,
            "Could not unzip uploaded file. Please check your file, then try to upload again."
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn create_checks_what_aws_checks() {
        let dir = temp_dir();
        let store = Store::open(&dir, "us-east-1", "000000000000").unwrap();
        let zip = zip_with(&[("bootstrap", b"x", 0o755)]);
        let mut bad_role = new_function("f", zip.clone());
        bad_role.role = Some("not-a-role".into());
        assert_eq!(
            store.create_function(bad_role).unwrap_err().kind,
            fledge_core::lambda::ErrorType::Validation
        );
        let mut reserved = new_function("f", zip.clone());
        reserved.environment = Some([("AWS_REGION".to_string(), "x".to_string())].into());
        assert!(
            store
                .create_function(reserved)
                .unwrap_err()
                .message
                .contains("AWS_REGION")
        );
        let mut java = new_function("f", zip.clone());
        java.runtime = Some("java21".into());
        assert!(
            store
                .create_function(java)
                .unwrap_err()
                .message
                .contains("provided.al2023")
        );
        store
            .create_function(new_function("f", zip.clone()))
            .unwrap();
        let dup = store.create_function(new_function("f", zip)).unwrap_err();
        assert_eq!(
            (dup.kind.status(), dup.message.as_str()),
            (409, "Function already exist: f")
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
