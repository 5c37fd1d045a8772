//! The Lambda control API (REST-JSON, API version 2015-03-31): functions, versions, aliases
//! and concurrency, answered as AWS answers them.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use fledge_core::lambda::{
    AliasName, ErrorType, FunctionRef, LambdaError, NameKind, Qualifier, RoutingRequest, Version,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::server::Platform;
use crate::store::{
    Alias, ConfigChange, EventInvokeConfig, Function, FunctionVersion, LoggingChange, NewFunction,
    within,
};
use crate::wire::ApiError;

pub(crate) type Answer = Result<Response, ApiError>;

/// Reads a JSON body into `T`, answering AWS's errors for bad JSON.
pub(crate) fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, LambdaError> {
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| {
        LambdaError::new(
            ErrorType::InvalidRequestContent,
            format!("Could not parse request body into json: {e}"),
        )
    })
}

/// A function name from the path, unqualified, with its region checked.
pub(crate) fn function_name(
    platform: &Platform,
    raw: &str,
    kind: NameKind,
) -> Result<FunctionRef, LambdaError> {
    let r = FunctionRef::parse(raw, kind)?;
    r.check_region(&platform.store.region)?;
    Ok(r)
}

fn environment_json(env: &BTreeMap<String, String>) -> Value {
    json!({"Variables": env})
}

/// `FunctionConfiguration` as Lambda renders it.
pub fn configuration(platform: &Platform, name: &str, v: &FunctionVersion) -> Value {
    let arn = platform.store.function_arn(name);
    let function_arn = match v.version {
        Version::Latest => arn,
        Version::Number(n) => format!("{arn}:{n}"),
    };
    let mut config = json!({
        "FunctionName": name,
        "FunctionArn": function_arn,
        "Runtime": v.runtime,
        "Role": v.role,
        "Handler": v.handler,
        "CodeSize": v.code_size,
        "Description": v.description,
        "Timeout": v.timeout,
        "MemorySize": v.memory_size,
        "LastModified": v.last_modified,
        "CodeSha256": v.code_sha256,
        "Version": v.version.to_string(),
        "Environment": environment_json(&v.environment),
        "TracingConfig": {"Mode": v.tracing_mode},
        "RevisionId": v.revision_id,
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": v.architectures,
        "EphemeralStorage": {"Size": v.ephemeral_storage},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": logging_json(name, &v.logging),
    });
    if let Some(arn) = &v.dead_letter_target {
        config["DeadLetterConfig"] = json!({"TargetArn": arn});
    }
    config
}

fn logging_json(function: &str, l: &crate::store::Logging) -> Value {
    let mut out = json!({"LogFormat": l.format(), "LogGroup": l.log_group(function)});
    if l.json {
        out["ApplicationLogLevel"] = json!(l.application_level());
        out["SystemLogLevel"] = json!(l.system_level());
    }
    out
}

fn alias_json(platform: &Platform, function: &str, a: &Alias) -> Value {
    let mut out = json!({
        "AliasArn": format!("{}:{}", platform.store.function_arn(function), a.name),
        "Name": a.name,
        "FunctionVersion": a.function_version.to_string(),
        "Description": a.description,
        "RevisionId": a.revision_id,
    });
    if let Some(extra) = a.additional {
        out["RoutingConfig"] =
            json!({"AdditionalVersionWeights": {extra.version.to_string(): extra.weight}});
    }
    out
}

fn created(v: Value) -> Response {
    (StatusCode::CREATED, Json(v)).into_response()
}

fn ok(v: Value) -> Response {
    (StatusCode::OK, Json(v)).into_response()
}

fn decode_zip(b64: &str) -> Result<Vec<u8>, LambdaError> {
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| {
            LambdaError::invalid_parameter(
                "Could not unzip uploaded file. Please check your file, then try to upload again.",
            )
        })
}

// ---- functions ----

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CodeInput {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
    image_uri: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EnvironmentInput {
    variables: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateFunctionInput {
    function_name: String,
    runtime: Option<String>,
    role: Option<String>,
    handler: Option<String>,
    code: Option<CodeInput>,
    description: Option<String>,
    timeout: Option<u32>,
    memory_size: Option<u32>,
    #[serde(default)]
    publish: bool,
    environment: Option<EnvironmentInput>,
    architectures: Option<Vec<String>>,
    package_type: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    #[serde(flatten)]
    kept: Kept,
    #[serde(flatten)]
    unavailable: Unavailable,
}

/// Configuration that nothing here acts on but that is kept per version and shown back,
/// as Lambda does.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Kept {
    ephemeral_storage: Option<SizeInput>,
    tracing_config: Option<ModeInput>,
    logging_config: Option<LoggingInput>,
    dead_letter_config: Option<TargetInput>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct TargetInput {
    target_arn: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct LoggingInput {
    log_format: Option<String>,
    application_log_level: Option<String>,
    system_log_level: Option<String>,
    log_group: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct SizeInput {
    size: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ModeInput {
    mode: Option<String>,
}

/// What [`Kept`] asks to change, read.
struct KeptChange {
    ephemeral_storage: Option<u32>,
    tracing_mode: Option<String>,
    logging: Option<LoggingChange>,
    /// `Some("")` removes the dead-letter target.
    dead_letter_target: Option<String>,
}

impl Kept {
    /// `EphemeralStorage.Size` (which must be given with `EphemeralStorage`),
    /// `TracingConfig.Mode` and `LoggingConfig`.
    fn read(self) -> Result<KeptChange, LambdaError> {
        let size = self
            .ephemeral_storage
            .map(|e| {
                e.size.ok_or_else(|| {
                    LambdaError::validation(
                        "null",
                        "ephemeralStorage.size",
                        "Member must not be null",
                    )
                })
            })
            .transpose()?;
        let logging = self.logging_config.map(|l| LoggingChange {
            format: l.log_format,
            application_level: l.application_log_level,
            system_level: l.system_log_level,
            log_group: l.log_group,
        });
        let dead_letter_target = self
            .dead_letter_config
            .map(|d| d.target_arn.unwrap_or_default());
        if let Some(arn) = &dead_letter_target
            && !arn.is_empty()
        {
            check_dead_letter_target(arn)?;
        }
        Ok(KeptChange {
            ephemeral_storage: size,
            tracing_mode: self.tracing_config.and_then(|t| t.mode),
            logging,
            dead_letter_target,
        })
    }
}

/// Configuration that needs AWS services fledge local does not have. Given, it is refused
/// with what to do instead, rather than accepted and silently left out.
#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Unavailable {
    layers: Option<Vec<String>>,
    file_system_configs: Option<Vec<Value>>,
}

impl Unavailable {
    fn refuse(&self) -> Result<(), LambdaError> {
        if self.layers.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(LambdaError::invalid_parameter(
                "fledge local has no layers: bundle what the layer provides into the function's own zip, and give no Layers",
            ));
        }
        if self
            .file_system_configs
            .as_ref()
            .is_some_and(|f| !f.is_empty())
        {
            return Err(LambdaError::invalid_parameter(
                "fledge local mounts no EFS file systems: give no FileSystemConfigs",
            ));
        }
        Ok(())
    }
}

pub async fn create_function(State(p): State<Arc<Platform>>, bytes: Bytes) -> Answer {
    p.faults.apply("CreateFunction").await?;
    let input: CreateFunctionInput = body(&bytes)?;
    let name = function_name(&p, &input.function_name, NameKind::Function)?;
    input.unavailable.refuse()?;
    let kept = input.kept.read()?;
    if name.qualifier.is_some() {
        return Err(LambdaError::invalid_parameter(
            "Creating a function with a qualifier is not supported; give the name alone",
        )
        .into());
    }
    if input.package_type.as_deref() == Some("Image") {
        return Err(LambdaError::invalid_parameter(
            "fledge local runs Zip packages only; container images are not available here",
        )
        .into());
    }
    let code = input
        .code
        .ok_or_else(|| LambdaError::validation("null", "code", "Member must not be null"))?;
    if code.s3_bucket.is_some() || code.image_uri.is_some() {
        return Err(LambdaError::invalid_parameter("fledge local accepts code only as Code.ZipFile (S3 and container images are not available here)").into());
    }
    let zip = code.zip_file.map(|z| decode_zip(&z)).transpose()?;
    let new = NewFunction {
        name: name.name.clone(),
        runtime: input.runtime,
        handler: input.handler,
        role: input.role,
        description: input.description,
        timeout: input.timeout,
        memory_size: input.memory_size,
        environment: input.environment.and_then(|e| e.variables),
        architectures: input.architectures,
        ephemeral_storage: kept.ephemeral_storage,
        tracing_mode: kept.tracing_mode,
        logging: kept.logging,
        dead_letter_target: kept.dead_letter_target,
        zip,
        publish: input.publish,
        tags: input.tags.unwrap_or_default(),
    };
    let v = p.store.create_function(new)?;
    let mut config = configuration(&p, &name.name, &v);
    config["State"] = json!("Pending");
    config["StateReason"] = json!("The function is being created.");
    config["StateReasonCode"] = json!("Creating");
    Ok(created(config))
}

/// Finds a function and the version a qualifier names (an alias resolves to its primary).
fn lookup(
    p: &Platform,
    raw: &str,
    qualifier: Option<&str>,
) -> Result<(String, Arc<FunctionVersion>, Option<u32>), LambdaError> {
    let r = function_name(p, raw, NameKind::Namespaced)?.with_qualifier_param(qualifier)?;
    p.store.read(|functions| {
        let arn = p.store.function_arn(&r.name);
        let missing = |q: Option<&Qualifier>| match q {
            Some(q) => LambdaError::not_found(format!("Function not found: {arn}:{q}")),
            None => LambdaError::not_found(format!("Function not found: {arn}")),
        };
        let f = functions
            .get(&r.name)
            .ok_or_else(|| missing(r.qualifier.as_ref()))?;
        let v = match &r.qualifier {
            None => f.latest.clone(),
            Some(Qualifier::Version(v)) => f
                .version(*v)
                .cloned()
                .ok_or_else(|| missing(r.qualifier.as_ref()))?,
            Some(Qualifier::Alias(a)) => {
                let alias = f
                    .aliases
                    .get(a.as_str())
                    .ok_or_else(|| missing(r.qualifier.as_ref()))?;
                f.version(alias.function_version)
                    .cloned()
                    .ok_or_else(|| missing(r.qualifier.as_ref()))?
            }
        };
        Ok((f.name.clone(), v, f.reserved_concurrency))
    })
}

#[derive(Deserialize, Default)]
pub struct QualifierQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

pub async fn get_function(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Answer {
    p.faults.apply("GetFunction").await?;
    let (name, v, reserved) = lookup(&p, &name, q.qualifier.as_deref())?;
    let mut out = json!({
        "Configuration": configuration(&p, &name, &v),
        "Code": {"RepositoryType": "S3", "Location": format!("{}/_fledge/code/{}.zip", p.endpoint(), v.code_id)},
    });
    if let Some(r) = reserved {
        out["Concurrency"] = json!({"ReservedConcurrentExecutions": r});
    }
    let tags = p
        .store
        .read(|functions| functions.get(&name).map(|f| f.tags.clone()));
    if let Some(tags) = tags.filter(|t| !t.is_empty()) {
        out["Tags"] = json!(tags);
    }
    Ok(ok(out))
}

pub async fn get_configuration(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Answer {
    p.faults.apply("GetFunctionConfiguration").await?;
    let (name, v, _) = lookup(&p, &name, q.qualifier.as_deref())?;
    Ok(ok(configuration(&p, &name, &v)))
}

#[derive(Deserialize, Default)]
pub struct ListQuery {
    #[serde(rename = "Marker")]
    marker: Option<String>,
    #[serde(rename = "MaxItems")]
    max_items: Option<usize>,
    #[serde(rename = "FunctionVersion")]
    function_version: Option<String>,
}

/// One page of `items`, 50 at most; the marker is the index to continue from.
fn page<T>(items: Vec<T>, q: &ListQuery) -> Result<(Vec<T>, Option<String>), LambdaError> {
    let max = q.max_items.unwrap_or(50);
    if !(1..=10_000).contains(&max) {
        return Err(LambdaError::validation(
            &max.to_string(),
            "maxItems",
            "Member must have value between 1 and 10000",
        ));
    }
    let max = max.min(50);
    let start: usize = match &q.marker {
        Some(m) => m
            .parse()
            .map_err(|_| LambdaError::invalid_parameter(format!("Invalid marker: {m}")))?,
        None => 0,
    };
    let total = items.len();
    let out: Vec<T> = items.into_iter().skip(start).take(max).collect();
    let next = (start + out.len() < total).then(|| (start + out.len()).to_string());
    Ok((out, next))
}

pub async fn list_functions(State(p): State<Arc<Platform>>, Query(q): Query<ListQuery>) -> Answer {
    p.faults.apply("ListFunctions").await?;
    // `FunctionVersion=ALL` lists every published version too, after each `$LATEST`.
    let every_version = match q.function_version.as_deref() {
        None => false,
        Some("ALL") => true,
        Some(other) => {
            return Err(LambdaError::validation(
                other,
                "functionVersion",
                "Member must satisfy enum value set: [ALL]",
            )
            .into());
        }
    };
    let all: Vec<Value> = p.store.read(|functions| {
        functions
            .values()
            .flat_map(|f| {
                let published = every_version
                    .then(|| f.versions.values())
                    .into_iter()
                    .flatten();
                std::iter::once(&f.latest)
                    .chain(published)
                    .map(|v| configuration(&p, &f.name, v))
            })
            .collect()
    });
    let (items, next) = page(all, &q)?;
    let mut out = json!({"Functions": items});
    if let Some(n) = next {
        out["NextMarker"] = json!(n);
    }
    Ok(ok(out))
}

pub async fn delete_function(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Answer {
    p.faults.apply("DeleteFunction").await?;
    let r = function_name(&p, &name, NameKind::Function)?;
    let qualifier = match (&r.qualifier, &q.qualifier) {
        (Some(a), Some(b)) if a.to_string() != *b => {
            return Err(LambdaError::invalid_parameter("The derived qualifier from the function name does not match the specified qualifier.").into());
        }
        (Some(a), _) => Some(a.to_string()),
        (None, b) => b.clone(),
    };
    p.store.delete_function(&r.name, qualifier.as_deref())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateCodeInput {
    zip_file: Option<String>,
    s3_bucket: Option<String>,
    image_uri: Option<String>,
    #[serde(default)]
    publish: bool,
    #[serde(default)]
    dry_run: bool,
    revision_id: Option<String>,
}

pub async fn update_code(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Answer {
    p.faults.apply("UpdateFunctionCode").await?;
    let input: UpdateCodeInput = body(&bytes)?;
    let r = function_name(&p, &name, NameKind::Function)?;
    if input.s3_bucket.is_some() || input.image_uri.is_some() {
        return Err(LambdaError::invalid_parameter("fledge local accepts code only as ZipFile (S3 and container images are not available here)").into());
    }
    let zip = input.zip_file.ok_or_else(|| {
        LambdaError::invalid_parameter("Please provide a source for function code.")
    })?;
    let v = p.store.update_code(
        &r.name,
        decode_zip(&zip)?,
        input.revision_id.as_deref(),
        input.publish,
        input.dry_run,
    )?;
    let mut config = configuration(&p, &r.name, &v);
    if v.version == Version::Latest {
        config["LastUpdateStatus"] = json!("InProgress");
        config["LastUpdateStatusReason"] = json!("The function is being created.");
        config["LastUpdateStatusReasonCode"] = json!("Creating");
    }
    Ok(ok(config))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateConfigInput {
    runtime: Option<String>,
    role: Option<String>,
    handler: Option<String>,
    description: Option<String>,
    timeout: Option<u32>,
    memory_size: Option<u32>,
    environment: Option<EnvironmentInput>,
    revision_id: Option<String>,
    #[serde(flatten)]
    kept: Kept,
    #[serde(flatten)]
    unavailable: Unavailable,
}

pub async fn update_configuration(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Answer {
    p.faults.apply("UpdateFunctionConfiguration").await?;
    let input: UpdateConfigInput = body(&bytes)?;
    let r = function_name(&p, &name, NameKind::Function)?;
    input.unavailable.refuse()?;
    let kept = input.kept.read()?;
    let change = ConfigChange {
        runtime: input.runtime,
        handler: input.handler,
        role: input.role,
        description: input.description,
        timeout: input.timeout,
        memory_size: input.memory_size,
        environment: input.environment.map(|e| e.variables.unwrap_or_default()),
        ephemeral_storage: kept.ephemeral_storage,
        tracing_mode: kept.tracing_mode,
        logging: kept.logging,
        dead_letter_target: kept.dead_letter_target,
        revision_id: input.revision_id,
    };
    let v = p.store.update_configuration(&r.name, change)?;
    Ok(ok(configuration(&p, &r.name, &v)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct PublishInput {
    code_sha256: Option<String>,
    description: Option<String>,
    revision_id: Option<String>,
}

pub async fn publish_version(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Answer {
    p.faults.apply("PublishVersion").await?;
    let input: PublishInput = body(&bytes)?;
    let r = function_name(&p, &name, NameKind::Function)?;
    let v = p.store.publish_version(
        &r.name,
        input.code_sha256.as_deref(),
        input.description,
        input.revision_id.as_deref(),
    )?;
    Ok(created(configuration(&p, &r.name, &v)))
}

pub async fn list_versions(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Answer {
    p.faults.apply("ListVersionsByFunction").await?;
    let r = function_name(&p, &name, NameKind::Namespaced)?;
    let all = p.store.read(|functions| {
        let f = functions.get(&r.name).ok_or_else(|| {
            LambdaError::not_found(format!(
                "Function not found: {}",
                p.store.function_arn(&r.name)
            ))
        })?;
        let mut latest = configuration(&p, &f.name, &f.latest);
        latest["FunctionArn"] = json!(format!("{}:$LATEST", p.store.function_arn(&f.name)));
        let mut all = vec![latest];
        all.extend(f.versions.values().map(|v| configuration(&p, &f.name, v)));
        Ok::<_, LambdaError>(all)
    })?;
    let (items, next) = page(all, &q)?;
    let mut out = json!({"Versions": items});
    if let Some(n) = next {
        out["NextMarker"] = json!(n);
    }
    Ok(ok(out))
}

// ---- aliases ----

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct RoutingInput {
    additional_version_weights: Option<BTreeMap<String, f64>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateAliasInput {
    name: String,
    function_version: String,
    description: Option<String>,
    routing_config: Option<RoutingInput>,
}

fn version_param(text: &str) -> Result<Version, LambdaError> {
    if text == "$LATEST.PUBLISHED" {
        return Err(LambdaError::invalid_parameter(
            "$LATEST.PUBLISHED belongs to Lambda Managed Instances, which fledge local does not provide",
        ));
    }
    Version::parse_field(text, "functionVersion")
}

pub async fn create_alias(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Answer {
    p.faults.apply("CreateAlias").await?;
    let input: CreateAliasInput = body(&bytes)?;
    let r = function_name(&p, &name, NameKind::Function)?;
    let alias = AliasName::parse_field(&input.name, "name")?;
    let request = RoutingRequest {
        function_version: Some(version_param(&input.function_version)?),
        weights: input
            .routing_config
            .and_then(|rc| rc.additional_version_weights),
    };
    let a = p
        .store
        .create_alias(&r.name, &alias, request, input.description)?;
    Ok(created(alias_json(&p, &r.name, &a)))
}

fn find_alias(p: &Platform, function: &str, alias: &str) -> Result<Alias, LambdaError> {
    p.store.read(|functions| {
        let f: &Function = functions.get(function).ok_or_else(|| {
            LambdaError::not_found(format!(
                "Function not found: {}",
                p.store.function_arn(function)
            ))
        })?;
        f.aliases.get(alias).cloned().ok_or_else(|| {
            LambdaError::not_found(format!(
                "Cannot find alias arn: {}:{alias}",
                p.store.function_arn(function)
            ))
        })
    })
}

pub async fn get_alias(
    State(p): State<Arc<Platform>>,
    Path((name, alias)): Path<(String, String)>,
) -> Answer {
    p.faults.apply("GetAlias").await?;
    let r = function_name(&p, &name, NameKind::Function)?;
    AliasName::parse_field(&alias, "name")?;
    let a = find_alias(&p, &r.name, &alias)?;
    Ok(ok(alias_json(&p, &r.name, &a)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct UpdateAliasInput {
    function_version: Option<String>,
    description: Option<String>,
    routing_config: Option<RoutingInput>,
    revision_id: Option<String>,
}

pub async fn update_alias(
    State(p): State<Arc<Platform>>,
    Path((name, alias)): Path<(String, String)>,
    bytes: Bytes,
) -> Answer {
    p.faults.apply("UpdateAlias").await?;
    let input: UpdateAliasInput = body(&bytes)?;
    let r = function_name(&p, &name, NameKind::Function)?;
    AliasName::parse_field(&alias, "name")?;
    let request = RoutingRequest {
        function_version: input
            .function_version
            .as_deref()
            .map(version_param)
            .transpose()?,
        weights: input
            .routing_config
            .map(|rc| rc.additional_version_weights.unwrap_or_default()),
    };
    let a = p.store.update_alias(
        &r.name,
        &alias,
        request,
        input.description,
        input.revision_id.as_deref(),
    )?;
    Ok(ok(alias_json(&p, &r.name, &a)))
}

pub async fn delete_alias(
    State(p): State<Arc<Platform>>,
    Path((name, alias)): Path<(String, String)>,
) -> Answer {
    p.faults.apply("DeleteAlias").await?;
    let r = function_name(&p, &name, NameKind::Function)?;
    AliasName::parse_field(&alias, "name")?;
    p.store.delete_alias(&r.name, &alias)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_aliases(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Answer {
    p.faults.apply("ListAliases").await?;
    let r = function_name(&p, &name, NameKind::Function)?;
    let filter = q
        .function_version
        .as_deref()
        .map(version_param)
        .transpose()?;
    let all = p.store.read(|functions| {
        let f = functions.get(&r.name).ok_or_else(|| {
            LambdaError::not_found(format!(
                "Function not found: {}",
                p.store.function_arn(&r.name)
            ))
        })?;
        Ok::<_, LambdaError>(
            f.aliases
                .values()
                .filter(|a| filter.is_none_or(|v| a.routing().versions().any(|x| x == v)))
                .map(|a| alias_json(&p, &f.name, a))
                .collect::<Vec<_>>(),
        )
    })?;
    let (items, next) = page(all, &q)?;
    let mut out = json!({"Aliases": items});
    if let Some(n) = next {
        out["NextMarker"] = json!(n);
    }
    Ok(ok(out))
}

// ---- concurrency ----

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConcurrencyInput {
    reserved_concurrent_executions: i64,
}

pub async fn put_concurrency(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    bytes: Bytes,
) -> Answer {
    p.faults.apply("PutFunctionConcurrency").await?;
    let input: ConcurrencyInput = body(&bytes)?;
    let r = function_name(&p, &name, NameKind::Function)?;
    let n = u32::try_from(input.reserved_concurrent_executions).map_err(|_| {
        LambdaError::validation(
            &input.reserved_concurrent_executions.to_string(),
            "reservedConcurrentExecutions",
            "Member must have value greater than or equal to 0",
        )
    })?;
    p.store.set_concurrency(&r.name, Some(n))?;
    Ok(ok(json!({"ReservedConcurrentExecutions": n})))
}

pub async fn get_concurrency(State(p): State<Arc<Platform>>, Path(name): Path<String>) -> Answer {
    p.faults.apply("GetFunctionConcurrency").await?;
    let (_, _, reserved) = lookup(&p, &name, None)?;
    Ok(ok(match reserved {
        Some(n) => json!({"ReservedConcurrentExecutions": n}),
        None => json!({}),
    }))
}

pub async fn delete_concurrency(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
) -> Answer {
    p.faults.apply("DeleteFunctionConcurrency").await?;
    let r = function_name(&p, &name, NameKind::Function)?;
    p.store.set_concurrency(&r.name, None)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- asynchronous invocation options ----

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct EventInvokeInput {
    maximum_retry_attempts: Option<i64>,
    maximum_event_age_in_seconds: Option<i64>,
    destination_config: Option<Value>,
}

impl EventInvokeInput {
    /// Lambda's ranges (0–2 retries, 60–21600 s), and destinations fledge local can send
    /// to (an empty one removes it).
    fn check(self) -> Result<EventInvokeConfig, LambdaError> {
        let retries = self
            .maximum_retry_attempts
            .map(|n| within(n, "maximumRetryAttempts", 0, 2))
            .transpose()?;
        let age = self
            .maximum_event_age_in_seconds
            .map(|n| within(n, "maximumEventAgeInSeconds", 60, 21600))
            .transpose()?;
        let destination = |k: &str| -> Result<Option<String>, LambdaError> {
            let Some(d) = self.destination_config.as_ref().and_then(|c| c.get(k)) else {
                return Ok(None);
            };
            let arn = d["Destination"].as_str().unwrap_or_default();
            check_destination(arn)?;
            Ok(Some(arn.to_owned()))
        };
        let on_success = destination("OnSuccess")?;
        let on_failure = destination("OnFailure")?;
        Ok(EventInvokeConfig {
            maximum_retry_attempts: retries,
            maximum_event_age_in_seconds: age,
            last_modified_ms: 0,
            on_success,
            on_failure,
        })
    }
}

/// A dead-letter target: an SNS topic here (there is no SQS).
fn check_dead_letter_target(arn: &str) -> Result<(), LambdaError> {
    let parts: Vec<&str> = arn.split(':').collect();
    match parts.get(2) {
        Some(&"sns") if parts.len() == 6 && parts[0] == "arn" => Ok(()),
        Some(&"sqs") => Err(LambdaError::invalid_parameter(format!(
            "fledge local has no SQS queues: give an SNS topic's ARN as the DeadLetterConfig target, or none ({arn})"
        ))),
        _ => Err(LambdaError::invalid_parameter(format!(
            "The dead-letter target {arn} is not an SNS topic's or an SQS queue's ARN"
        ))),
    }
}

/// A destination for invocation records: an SNS topic or a Lambda function (version or
/// alias), by ARN; an empty one removes the destination.
fn check_destination(arn: &str) -> Result<(), LambdaError> {
    let parts: Vec<&str> = arn.split(':').collect();
    let well_formed = parts.len() >= 6 && parts[0] == "arn" && parts[1].starts_with("aws");
    match parts.get(2) {
        _ if arn.is_empty() => Ok(()),
        Some(&"sns") if well_formed && parts.len() == 6 => Ok(()),
        Some(&"lambda") if well_formed && parts[5] == "function" && parts.len() <= 8 => Ok(()),
        Some(service @ (&"sqs" | &"events" | &"s3")) if well_formed => {
            Err(LambdaError::invalid_parameter(format!(
                "fledge local sends invocation records to SNS topics and Lambda functions, not to {service}: {arn}"
            )))
        }
        _ => Err(LambdaError::invalid_parameter(format!(
            "The destination ARN {arn} is invalid: give an SNS topic's or a Lambda function's ARN"
        ))),
    }
}

/// `FunctionEventInvokeConfig` as Lambda renders it.
fn event_invoke_json(qualified_arn: &str, c: &EventInvokeConfig) -> Value {
    let destination = |d: &Option<String>| match d {
        Some(arn) => json!({"Destination": arn}),
        None => json!({}),
    };
    let mut v = json!({
        "FunctionArn": qualified_arn,
        "LastModified": c.last_modified_ms as f64 / 1000.0,
        "DestinationConfig": {
            "OnSuccess": destination(&c.on_success),
            "OnFailure": destination(&c.on_failure),
        },
    });
    if let Some(n) = c.maximum_retry_attempts {
        v["MaximumRetryAttempts"] = n.into();
    }
    if let Some(n) = c.maximum_event_age_in_seconds {
        v["MaximumEventAgeInSeconds"] = n.into();
    }
    v
}

/// The function and qualifier an event-invoke-config path and query name.
fn qualified(
    p: &Platform,
    raw: &str,
    qualifier: Option<&str>,
) -> Result<(String, Option<String>), LambdaError> {
    let r = function_name(p, raw, NameKind::Namespaced)?.with_qualifier_param(qualifier)?;
    Ok((r.name.clone(), r.qualifier.as_ref().map(|q| q.to_string())))
}

async fn set_event_invoke(
    p: &Platform,
    name: &str,
    q: QualifierQuery,
    bytes: &Bytes,
    replace: bool,
) -> Answer {
    let change = body::<EventInvokeInput>(bytes)?.check()?;
    let (name, qualifier) = qualified(p, name, q.qualifier.as_deref())?;
    let (arn, config) = p
        .store
        .set_event_invoke(&name, qualifier.as_deref(), change, replace)?;
    Ok(ok(event_invoke_json(&arn, &config)))
}

pub async fn put_event_invoke(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
    bytes: Bytes,
) -> Answer {
    p.faults.apply("PutFunctionEventInvokeConfig").await?;
    set_event_invoke(&p, &name, q, &bytes, true).await
}

pub async fn update_event_invoke(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
    bytes: Bytes,
) -> Answer {
    p.faults.apply("UpdateFunctionEventInvokeConfig").await?;
    set_event_invoke(&p, &name, q, &bytes, false).await
}

pub async fn get_event_invoke(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Answer {
    p.faults.apply("GetFunctionEventInvokeConfig").await?;
    let (name, qualifier) = qualified(&p, &name, q.qualifier.as_deref())?;
    let (arn, config) = p.store.event_invoke(&name, qualifier.as_deref())?;
    Ok(ok(event_invoke_json(&arn, &config)))
}

pub async fn delete_event_invoke(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Answer {
    p.faults.apply("DeleteFunctionEventInvokeConfig").await?;
    let (name, qualifier) = qualified(&p, &name, q.qualifier.as_deref())?;
    p.store.delete_event_invoke(&name, qualifier.as_deref())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list_event_invokes(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
) -> Answer {
    p.faults.apply("ListFunctionEventInvokeConfigs").await?;
    let r = function_name(&p, &name, NameKind::Function)?;
    let configs: Vec<Value> = p
        .store
        .event_invokes(&r.name)?
        .iter()
        .map(|(arn, c)| event_invoke_json(arn, c))
        .collect();
    Ok(ok(json!({"FunctionEventInvokeConfigs": configs})))
}

// ---- tags ----

/// The function a taggable resource ARN names: a function's full, unqualified ARN.
fn tagged_function(p: &Platform, arn: &str) -> Result<String, LambdaError> {
    let malformed = || {
        LambdaError::validation(
            arn,
            "resource",
            r"Member must satisfy regular expression pattern: arn:(aws[a-zA-Z-]*):lambda:[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:\d{12}:function:[a-zA-Z0-9-_]+(:(\$LATEST|[a-zA-Z0-9-_]+))?",
        )
    };
    let parts: Vec<&str> = arn.split(':').collect();
    if parts.len() < 7
        || parts[0] != "arn"
        || !parts[1].starts_with("aws")
        || parts[2] != "lambda"
        || parts[3].is_empty()
        || parts[4].len() != 12
        || !parts[4].bytes().all(|b| b.is_ascii_digit())
        || parts[5] != "function"
        || parts.len() > 8
    {
        return Err(malformed());
    }
    if parts.len() == 8 {
        return Err(LambdaError::invalid_parameter(
            "Tags on function aliases and versions are not supported. Please specify a function ARN.",
        ));
    }
    let name = parts[6].to_string();
    let known = p.store.read(|functions| functions.contains_key(&name));
    if !known || parts[3] != p.store.region || parts[4] != p.store.account {
        return Err(LambdaError::not_found(format!("Function not found: {arn}")));
    }
    Ok(name)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagInput {
    tags: BTreeMap<String, String>,
}

/// ListTags: `GET /2017-03-31/tags/{ARN}`.
pub async fn list_tags(State(p): State<Arc<Platform>>, Path(arn): Path<String>) -> Answer {
    p.faults.apply("ListTags").await?;
    let name = tagged_function(&p, &arn)?;
    let tags = p
        .store
        .read(|functions| functions.get(&name).map(|f| f.tags.clone()))
        .unwrap_or_default();
    Ok(ok(json!({ "Tags": tags })))
}

/// TagResource: `POST /2017-03-31/tags/{ARN}` with `{"Tags": {…}}`.
pub async fn tag_resource(
    State(p): State<Arc<Platform>>,
    Path(arn): Path<String>,
    bytes: Bytes,
) -> Answer {
    p.faults.apply("TagResource").await?;
    let input: TagInput = body(&bytes)?;
    let name = tagged_function(&p, &arn)?;
    p.store.tag(&name, input.tags)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// UntagResource: `DELETE /2017-03-31/tags/{ARN}?tagKeys=a&tagKeys=b`.
pub async fn untag_resource(
    State(p): State<Arc<Platform>>,
    Path(arn): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    p.faults.apply("UntagResource").await?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).map_err(|e| {
            LambdaError::invalid_parameter(format!("the query string is not readable: {e}"))
        })?;
    let keys: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "tagKeys")
        .map(|(_, v)| v)
        .collect();
    if keys.is_empty() {
        return Err(LambdaError::validation("null", "tagKeys", "Member must not be null").into());
    }
    let name = tagged_function(&p, &arn)?;
    p.store.untag(&name, &keys)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Any Lambda path fledge local does not implement: a clear, non-retryable answer at once.
pub async fn unsupported(method: Method, uri: Uri) -> Response {
    let e = LambdaError::new(
        ErrorType::InvalidRequestContent,
        format!(
            "fledge local does not implement {method} {}. It implements functions (create, get, list, delete, update code and configuration), versions, aliases, concurrency, tags, asynchronous invocation configs, Invoke, InvokeWithResponseStream, and CloudWatch's GetMetricData, GetMetricStatistics, ListMetrics, PutMetricData and metric alarms.",
            uri.path()
        ),
    );
    let mut response = ApiError(e).into_response();
    response.headers_mut().insert(
        "x-amzn-errortype",
        "UnsupportedOperationException".parse().expect("ascii"),
    );
    response
}
