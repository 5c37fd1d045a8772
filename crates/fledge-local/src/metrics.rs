//! Per-second metrics of every invocation, under the dimension sets Lambda publishes:
//! `{}`, `{FunctionName}`, `{FunctionName, Resource}` and, for alias invocations,
//! `{FunctionName, Resource, ExecutedVersion}`.
//!
//! An invocation is stored once, under (function, resource, executed version); the dimension
//! sets are matched at query time. Like CloudWatch, a query must name exactly a published
//! dimension set to get data, and a second with no invocations has no datapoint.
//!
//! Like CloudWatch's, the numbers outlive a restart: [`Metrics::flush`] appends every second
//! changed since the last flush to `metrics/<hour>.jsonl` under the data directory (a later
//! line for the same second replaces an earlier one), and [`Metrics::open`] reads back what
//! is within the retention.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fledge_core::judge::LatencyHistogram;
use serde::{Deserialize, Serialize};

/// Where an invocation is counted.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SeriesKey {
    pub function: Arc<str>,
    /// `fn:alias` or `fn:version` for qualified invocations.
    pub resource: Option<Arc<str>>,
    /// The version that ran, for alias invocations.
    pub executed: Option<Arc<str>>,
}

/// One second of one series.
#[derive(Clone, Debug, Default)]
pub struct Second {
    pub invocations: u64,
    pub errors: u64,
    pub throttles: u64,
    /// Asynchronous events accepted, and dropped without a successful run.
    pub async_received: u64,
    pub async_dropped: u64,
    /// Invocation records that could not be sent to their destination.
    pub destination_failures: u64,
    /// How long each asynchronous try had waited since its event was accepted (ms).
    async_age: Summary,
    duration: Summary,
    concurrency: Summary,
    durations: LatencyHistogram,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Summary {
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

impl Summary {
    fn add(&mut self, v: f64) {
        if self.count == 0 {
            self.min = v;
            self.max = v;
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
        self.sum += v;
    }

    fn merge(&mut self, o: &Summary) {
        if o.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *o;
            return;
        }
        self.count += o.count;
        self.sum += o.sum;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

impl Second {
    fn merge(&mut self, o: &Second) {
        self.invocations += o.invocations;
        self.errors += o.errors;
        self.throttles += o.throttles;
        self.async_received += o.async_received;
        self.async_dropped += o.async_dropped;
        self.destination_failures += o.destination_failures;
        self.async_age.merge(&o.async_age);
        self.duration.merge(&o.duration);
        self.concurrency.merge(&o.concurrency);
        self.durations.merge(&o.durations);
    }
}

/// A statistic CloudWatch knows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Statistic {
    Sum,
    SampleCount,
    Average,
    Minimum,
    Maximum,
    /// `p99`, `p99.9`: a percentile (Duration only).
    Percentile(f64),
}

impl Statistic {
    pub fn parse(text: &str) -> Option<Statistic> {
        Some(match text {
            "Sum" => Statistic::Sum,
            "SampleCount" => Statistic::SampleCount,
            "Average" => Statistic::Average,
            "Minimum" => Statistic::Minimum,
            "Maximum" => Statistic::Maximum,
            p => {
                let value: f64 = p.strip_prefix('p')?.parse().ok()?;
                if !(0.0..=100.0).contains(&value) {
                    return None;
                }
                Statistic::Percentile(value)
            }
        })
    }
}

/// The metrics Lambda publishes that fledge local records.
pub const METRICS: [&str; 9] = [
    "Invocations",
    "Errors",
    "Throttles",
    "Duration",
    "ConcurrentExecutions",
    "AsyncEventsReceived",
    "AsyncEventAge",
    "AsyncEventsDropped",
    "DestinationDeliveryFailures",
];

/// Every invocation's numbers, by second.
pub struct Metrics {
    series: Mutex<HashMap<SeriesKey, Series>>,
    /// Metrics functions and callers publish (PutMetricData, or the embedded metric format
    /// in a function's output), by namespace, name and dimensions.
    custom: Mutex<HashMap<CustomKey, CustomSeries>>,
    retention_secs: i64,
    /// Where the seconds are kept (`<data>/metrics`); `None` keeps them in memory only.
    dir: Option<PathBuf>,
    /// One flush at a time, so that a second's later state is never written before an
    /// earlier one (the last line for a second is the one read back).
    flushing: Mutex<()>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("dir", &self.dir)
            .field("retention_secs", &self.retention_secs)
            .finish_non_exhaustive()
    }
}

/// One series' seconds, and the first one changed since the last flush.
#[derive(Default)]
struct Series {
    points: BTreeMap<i64, Second>,
    dirty_from: Option<i64>,
}

impl Series {
    fn touch(&mut self, second: i64) -> &mut Second {
        self.dirty_from = Some(self.dirty_from.map_or(second, |d| d.min(second)));
        self.points.entry(second).or_default()
    }
}

/// A published metric: its namespace, name and exact dimensions (CloudWatch matches
/// dimensions exactly).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CustomKey {
    pub namespace: String,
    pub name: String,
    pub dimensions: BTreeMap<String, String>,
}

/// One second of a published metric: its values, and their distribution when they were
/// published one by one (StatisticValues give none).
#[derive(Clone, Debug, Default)]
struct CustomSecond {
    values: Summary,
    histogram: LatencyHistogram,
}

#[derive(Default)]
struct CustomSeries {
    points: BTreeMap<i64, CustomSecond>,
    dirty_from: Option<i64>,
    unit: Option<String>,
}

/// Values published for a metric at one time.
#[derive(Clone, Debug, PartialEq)]
pub enum Published {
    /// Values, each seen this many times.
    Values(Vec<(f64, u64)>),
    /// A summary of values: count, sum, minimum, maximum.
    Statistics {
        count: u64,
        sum: f64,
        min: f64,
        max: f64,
    },
}

/// One second of one published metric as a line of `metrics/<hour>.jsonl`.
#[derive(Serialize, Deserialize)]
struct StoredCustom {
    #[serde(flatten)]
    key: CustomKey,
    second: i64,
    values: Summary,
    #[serde(default)]
    buckets: Vec<(usize, u64)>,
    #[serde(default)]
    unit: Option<String>,
}

/// A line of `metrics/<hour>.jsonl`: a second of Lambda's metrics, or of a published one.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum StoredLine {
    Lambda(StoredSecond),
    Custom(StoredCustom),
}

/// One second of one series as a line of `metrics/<hour>.jsonl`.
#[derive(Serialize, Deserialize)]
struct StoredSecond {
    function: String,
    #[serde(default)]
    resource: Option<String>,
    #[serde(default)]
    executed: Option<String>,
    second: i64,
    #[serde(default)]
    invocations: u64,
    #[serde(default)]
    errors: u64,
    #[serde(default)]
    throttles: u64,
    #[serde(default)]
    async_received: u64,
    #[serde(default)]
    async_dropped: u64,
    #[serde(default)]
    destination_failures: u64,
    #[serde(default)]
    async_age: Summary,
    #[serde(default)]
    duration: Summary,
    #[serde(default)]
    concurrency: Summary,
    /// The Duration histogram's non-empty buckets, as (bucket, count).
    #[serde(default)]
    durations: Vec<(usize, u64)>,
}

impl StoredSecond {
    fn of(key: &SeriesKey, second: i64, s: &Second) -> StoredSecond {
        StoredSecond {
            function: key.function.to_string(),
            resource: key.resource.as_deref().map(String::from),
            executed: key.executed.as_deref().map(String::from),
            second,
            invocations: s.invocations,
            errors: s.errors,
            throttles: s.throttles,
            async_received: s.async_received,
            async_dropped: s.async_dropped,
            destination_failures: s.destination_failures,
            async_age: s.async_age,
            duration: s.duration,
            concurrency: s.concurrency,
            durations: s.durations.buckets().collect(),
        }
    }

    fn into_parts(self) -> (SeriesKey, i64, Second) {
        let key = SeriesKey {
            function: self.function.into(),
            resource: self.resource.map(Into::into),
            executed: self.executed.map(Into::into),
        };
        let second = Second {
            invocations: self.invocations,
            errors: self.errors,
            throttles: self.throttles,
            async_received: self.async_received,
            async_dropped: self.async_dropped,
            destination_failures: self.destination_failures,
            async_age: self.async_age,
            duration: self.duration,
            concurrency: self.concurrency,
            durations: LatencyHistogram::from_buckets(self.durations),
        };
        (key, self.second, second)
    }
}

/// The hour a second's line is kept in; files of hours past the retention are deleted.
fn hour_file(dir: &Path, hour: i64) -> PathBuf {
    dir.join(format!("{hour}.jsonl"))
}

fn hour_of(path: &Path) -> Option<i64> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

/// What one invocation left.
pub struct Sample {
    pub at_ms: u64,
    /// False for a throttled invocation (it never ran).
    pub ran: bool,
    pub error: bool,
    pub duration_ms: f64,
    pub concurrency: u64,
}

/// What happened to an asynchronous event, for the `AsyncEvent…` metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AsyncSample {
    /// Accepted (202).
    Received,
    /// A try started this long (ms) after the event was accepted.
    Age(f64),
    /// Given up on without a successful run.
    Dropped,
    /// Its invocation record could not be sent to its destination.
    DestinationFailed,
}

impl Metrics {
    /// Records what happened to an asynchronous event at `at_ms`.
    pub fn record_async(&self, key: SeriesKey, at_ms: u64, sample: AsyncSample) {
        let second = (at_ms / 1000) as i64;
        let mut series = self.series.lock().expect("metrics lock");
        let point = series.entry(key).or_default().touch(second);
        match sample {
            AsyncSample::Received => point.async_received += 1,
            AsyncSample::Age(ms) => point.async_age.add(ms),
            AsyncSample::Dropped => point.async_dropped += 1,
            AsyncSample::DestinationFailed => point.destination_failures += 1,
        }
    }

    /// Metrics kept in memory only.
    pub fn new(retention_secs: i64) -> Metrics {
        Metrics {
            series: Mutex::new(HashMap::new()),
            custom: Mutex::new(HashMap::new()),
            retention_secs,
            dir: None,
            flushing: Mutex::new(()),
        }
    }

    /// Metrics kept under `data_dir/metrics`, with what is there from before and within the
    /// retention read back. Lines that cannot be read are skipped with a warning.
    pub fn open(data_dir: &Path, retention_secs: i64) -> std::io::Result<Metrics> {
        let dir = data_dir.join("metrics");
        std::fs::create_dir_all(&dir)?;
        let oldest = crate::wire::now_ms() as i64 / 1000 - retention_secs;
        let mut series: HashMap<SeriesKey, Series> = HashMap::new();
        let mut custom: HashMap<CustomKey, CustomSeries> = HashMap::new();
        let mut files: Vec<(i64, PathBuf)> = std::fs::read_dir(&dir)?
            .flatten()
            .filter_map(|e| Some((hour_of(&e.path())?, e.path())))
            .collect();
        files.sort();
        for (hour, path) in files {
            if (hour + 1) * 3600 <= oldest {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let reader = std::io::BufReader::new(std::fs::File::open(&path)?);
            for (n, line) in reader.lines().enumerate() {
                match serde_json::from_str::<StoredLine>(&line?) {
                    Ok(StoredLine::Lambda(stored)) if stored.second >= oldest => {
                        let (key, second, point) = stored.into_parts();
                        series.entry(key).or_default().points.insert(second, point);
                    }
                    Ok(StoredLine::Custom(stored)) if stored.second >= oldest => {
                        let entry = custom.entry(stored.key).or_default();
                        entry.unit = stored.unit.or(entry.unit.take());
                        entry.points.insert(
                            stored.second,
                            CustomSecond {
                                values: stored.values,
                                histogram: LatencyHistogram::from_buckets(stored.buckets),
                            },
                        );
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(
                        "{}:{}: not a metrics line fledge local can read ({e}); skipped",
                        path.display(),
                        n + 1
                    ),
                }
            }
        }
        Ok(Metrics {
            series: Mutex::new(series),
            custom: Mutex::new(custom),
            retention_secs,
            dir: Some(dir),
            flushing: Mutex::new(()),
        })
    }

    /// Appends every second changed since the last flush to its hour's file, and deletes
    /// the files of hours past the retention.
    pub fn flush(&self) -> std::io::Result<()> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        let _one_at_a_time = self.flushing.lock().expect("metrics flush lock");
        let mut lines: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
        {
            let mut series = self.series.lock().expect("metrics lock");
            for (key, s) in series.iter_mut() {
                let Some(from) = s.dirty_from.take() else {
                    continue;
                };
                for (second, point) in s.points.range(from..) {
                    let out = lines.entry(second.div_euclid(3600)).or_default();
                    serde_json::to_writer(&mut *out, &StoredSecond::of(key, *second, point))
                        .expect("a second serialises");
                    out.push(b'\n');
                }
            }
        }
        {
            let mut custom = self.custom.lock().expect("metrics lock");
            for (key, s) in custom.iter_mut() {
                let Some(from) = s.dirty_from.take() else {
                    continue;
                };
                for (second, point) in s.points.range(from..) {
                    let out = lines.entry(second.div_euclid(3600)).or_default();
                    let stored = StoredCustom {
                        key: key.clone(),
                        second: *second,
                        values: point.values,
                        buckets: point.histogram.buckets().collect(),
                        unit: s.unit.clone(),
                    };
                    serde_json::to_writer(&mut *out, &stored).expect("a second serialises");
                    out.push(b'\n');
                }
            }
        }
        for (hour, text) in lines {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(hour_file(dir, hour))?
                .write_all(&text)?;
        }
        let oldest = crate::wire::now_ms() as i64 / 1000 - self.retention_secs;
        for entry in std::fs::read_dir(dir)?.flatten() {
            if hour_of(&entry.path()).is_some_and(|hour| (hour + 1) * 3600 <= oldest) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    pub fn record(&self, key: SeriesKey, sample: Sample) {
        let second = (sample.at_ms / 1000) as i64;
        let mut series = self.series.lock().expect("metrics lock");
        let entry = series.entry(key).or_default();
        let point = entry.touch(second);
        if sample.ran {
            point.invocations += 1;
            point.errors += u64::from(sample.error);
            point.duration.add(sample.duration_ms);
            point.durations.record(sample.duration_ms);
            point.concurrency.add(sample.concurrency as f64);
        } else {
            point.throttles += 1;
        }
        let points = &mut entry.points;
        if points.len() > 1 && point_count_over(points, second - self.retention_secs) {
            let keep = points.split_off(&(second - self.retention_secs));
            *points = keep;
        }
    }

    /// Records values published for `key` at `at_ms` (PutMetricData, or a function's
    /// embedded metric format).
    pub fn publish(&self, key: CustomKey, at_ms: u64, values: &Published, unit: Option<&str>) {
        let second = (at_ms / 1000) as i64;
        let mut custom = self.custom.lock().expect("metrics lock");
        let series = custom.entry(key).or_default();
        if let Some(unit) = unit {
            series.unit = Some(unit.to_owned());
        }
        series.dirty_from = Some(series.dirty_from.map_or(second, |d| d.min(second)));
        let point = series.points.entry(second).or_default();
        match values {
            Published::Values(values) => {
                for &(v, n) in values {
                    point.values.merge(&Summary {
                        count: n,
                        sum: v * n as f64,
                        min: v,
                        max: v,
                    });
                    point.histogram.record_n(v, n);
                }
            }
            Published::Statistics {
                count,
                sum,
                min,
                max,
            } => point.values.merge(&Summary {
                count: *count,
                sum: *sum,
                min: *min,
                max: *max,
            }),
        }
        let oldest = second - self.retention_secs;
        if point_count_over_custom(&series.points, oldest) {
            series.points = series.points.split_off(&oldest);
        }
    }

    /// Datapoints of a published metric, as [`Metrics::query`] gives Lambda's; its unit.
    pub fn query_custom(
        &self,
        key: &CustomKey,
        start: i64,
        end: i64,
        period: i64,
    ) -> (Vec<(i64, Aggregate)>, Option<String>) {
        let custom = self.custom.lock().expect("metrics lock");
        let Some(series) = custom.get(key) else {
            return (Vec::new(), None);
        };
        let mut buckets: BTreeMap<i64, CustomSecond> = BTreeMap::new();
        for (second, point) in series.points.range(start..end) {
            let bucket = start + (second - start) / period * period;
            let into = buckets.entry(bucket).or_default();
            into.values.merge(&point.values);
            into.histogram.merge(&point.histogram);
        }
        let points = buckets
            .into_iter()
            .filter(|(_, s)| s.values.count > 0)
            .map(|(t, s)| {
                let complete = s.histogram.len() == s.values.count;
                (
                    t,
                    Aggregate {
                        sample_count: s.values.count as f64,
                        sum: s.values.sum,
                        minimum: s.values.min,
                        maximum: s.values.max,
                        histogram: complete.then_some(s.histogram),
                    },
                )
            })
            .collect();
        (points, series.unit.clone())
    }

    /// The published metrics, for ListMetrics.
    pub fn custom_keys(&self) -> Vec<CustomKey> {
        let custom = self.custom.lock().expect("metrics lock");
        let mut keys: Vec<CustomKey> = custom.keys().cloned().collect();
        keys.sort_by(|a, b| {
            (&a.namespace, &a.name, &a.dimensions).cmp(&(&b.namespace, &b.name, &b.dimensions))
        });
        keys
    }

    /// The (function, resource, executed) keys matching a dimension set, or none if the set
    /// is not one Lambda publishes.
    fn matches(key: &SeriesKey, dims: &BTreeMap<String, String>) -> bool {
        let function = dims.get("FunctionName");
        let resource = dims.get("Resource");
        let executed = dims.get("ExecutedVersion");
        if dims.len()
            != usize::from(function.is_some())
                + usize::from(resource.is_some())
                + usize::from(executed.is_some())
        {
            return false;
        }
        match (function, resource, executed) {
            (None, None, None) => true,
            (Some(f), None, None) => *key.function == **f,
            (Some(f), Some(r), None) => {
                *key.function == **f && key.resource.as_deref() == Some(r.as_str())
            }
            (Some(f), Some(r), Some(v)) => {
                *key.function == **f
                    && key.resource.as_deref() == Some(r.as_str())
                    && key.executed.as_deref() == Some(v.as_str())
            }
            _ => false,
        }
    }

    /// Datapoints of `metric` over `[start, end)` (epoch seconds) in buckets of `period`
    /// seconds aligned to `start`; buckets with no data are left out.
    pub fn query(
        &self,
        metric: &str,
        dims: &BTreeMap<String, String>,
        start: i64,
        end: i64,
        period: i64,
    ) -> Vec<(i64, Aggregate)> {
        let series = self.series.lock().expect("metrics lock");
        let mut buckets: BTreeMap<i64, Second> = BTreeMap::new();
        for (_, s) in series.iter().filter(|(k, _)| Self::matches(k, dims)) {
            for (second, point) in s.points.range(start..end) {
                let bucket = start + (second - start) / period * period;
                buckets.entry(bucket).or_default().merge(point);
            }
        }
        buckets
            .into_iter()
            .filter_map(|(t, s)| Aggregate::of(metric, &s).map(|a| (t, a)))
            .collect()
    }

    /// The dimension sets that have data, for ListMetrics.
    pub fn dimension_sets(&self) -> Vec<BTreeMap<String, String>> {
        let series = self.series.lock().expect("metrics lock");
        let mut sets: Vec<BTreeMap<String, String>> = Vec::new();
        for key in series.keys() {
            let mut set = BTreeMap::from([("FunctionName".to_string(), key.function.to_string())]);
            sets.push(set.clone());
            if let Some(r) = &key.resource {
                set.insert("Resource".into(), r.to_string());
                sets.push(set.clone());
                if let Some(v) = &key.executed {
                    set.insert("ExecutedVersion".into(), v.to_string());
                    sets.push(set);
                }
            }
        }
        sets.sort();
        sets.dedup();
        sets
    }
}

fn point_count_over_custom(points: &BTreeMap<i64, CustomSecond>, oldest: i64) -> bool {
    points.len() > 1
        && points
            .first_key_value()
            .is_some_and(|(first, _)| *first < oldest)
}

fn point_count_over(points: &BTreeMap<i64, Second>, oldest: i64) -> bool {
    points
        .first_key_value()
        .is_some_and(|(first, _)| *first < oldest)
}

/// One bucket of one metric: its datapoint values, ready for any statistic.
#[derive(Clone, Debug)]
pub struct Aggregate {
    pub sample_count: f64,
    pub sum: f64,
    pub minimum: f64,
    pub maximum: f64,
    histogram: Option<LatencyHistogram>,
}

impl Aggregate {
    /// The datapoints of `metric` within a bucket, or `None` when it has none (a second with
    /// only throttles has no Invocations datapoint, and so on).
    fn of(metric: &str, s: &Second) -> Option<Aggregate> {
        let counter = |n: u64, count: u64| Aggregate {
            sample_count: count as f64,
            sum: n as f64,
            minimum: if n == count { 1.0 } else { 0.0 },
            maximum: if n > 0 { 1.0 } else { 0.0 },
            histogram: None,
        };
        let summary = |x: &Summary, h: Option<&LatencyHistogram>| Aggregate {
            sample_count: x.count as f64,
            sum: x.sum,
            minimum: x.min,
            maximum: x.max,
            histogram: h.cloned(),
        };
        let agg = match metric {
            "Invocations" if s.invocations > 0 => counter(s.invocations, s.invocations),
            "Errors" if s.invocations > 0 => counter(s.errors, s.invocations),
            "Throttles" if s.throttles > 0 => counter(s.throttles, s.throttles),
            "Duration" if s.duration.count > 0 => summary(&s.duration, Some(&s.durations)),
            "ConcurrentExecutions" if s.concurrency.count > 0 => summary(&s.concurrency, None),
            "AsyncEventsReceived" if s.async_received > 0 => {
                counter(s.async_received, s.async_received)
            }
            "AsyncEventsDropped" if s.async_dropped > 0 => {
                counter(s.async_dropped, s.async_dropped)
            }
            "AsyncEventAge" if s.async_age.count > 0 => summary(&s.async_age, None),
            "DestinationDeliveryFailures" if s.destination_failures > 0 => {
                counter(s.destination_failures, s.destination_failures)
            }
            _ => return None,
        };
        Some(agg)
    }

    pub fn value(&self, stat: Statistic) -> Option<f64> {
        Some(match stat {
            Statistic::Sum => self.sum,
            Statistic::SampleCount => self.sample_count,
            Statistic::Average => self.sum / self.sample_count.max(1.0),
            Statistic::Minimum => self.minimum,
            Statistic::Maximum => self.maximum,
            Statistic::Percentile(p) => self
                .histogram
                .as_ref()?
                .quantile(p / 100.0)?
                .min(self.maximum)
                .max(self.minimum),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(resource: Option<&str>, executed: Option<&str>) -> SeriesKey {
        SeriesKey {
            function: "f".into(),
            resource: resource.map(Into::into),
            executed: executed.map(Into::into),
        }
    }

    fn dims(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sample(at_ms: u64, error: bool) -> Sample {
        Sample {
            at_ms,
            ran: true,
            error,
            duration_ms: 10.0,
            concurrency: 1,
        }
    }

    #[test]
    fn a_split_alias_is_counted_per_version_and_as_a_whole() {
        let m = Metrics::new(3600);
        for i in 0..10 {
            m.record(key(Some("f:live"), Some("1")), sample(1_000_000 + i, false));
        }
        for i in 0..3 {
            m.record(
                key(Some("f:live"), Some("2")),
                sample(1_000_000 + i, i == 0),
            );
        }
        let q = |metric, d: &[(&str, &str)]| -> Vec<f64> {
            m.query(metric, &dims(d), 990, 1010, 60)
                .iter()
                .map(|(_, a)| a.value(Statistic::Sum).unwrap())
                .collect()
        };
        assert_eq!(
            q(
                "Invocations",
                &[
                    ("FunctionName", "f"),
                    ("Resource", "f:live"),
                    ("ExecutedVersion", "2")
                ]
            ),
            vec![3.0]
        );
        assert_eq!(
            q(
                "Errors",
                &[
                    ("FunctionName", "f"),
                    ("Resource", "f:live"),
                    ("ExecutedVersion", "2")
                ]
            ),
            vec![1.0]
        );
        assert_eq!(
            q(
                "Invocations",
                &[("FunctionName", "f"), ("Resource", "f:live")]
            ),
            vec![13.0]
        );
        assert_eq!(q("Invocations", &[("FunctionName", "f")]), vec![13.0]);
        assert_eq!(q("Invocations", &[]), vec![13.0]);
        assert!(
            q("Invocations", &[("Resource", "f:live")]).is_empty(),
            "not a published set"
        );
        assert!(q("Invocations", &[("FunctionName", "f"), ("Resource", "f:2")]).is_empty());
    }

    #[test]
    fn seconds_without_invocations_have_no_datapoints() {
        let m = Metrics::new(3600);
        m.record(key(None, None), sample(5_000, false));
        m.record(key(None, None), sample(9_000, true));
        let points = m.query("Errors", &dims(&[("FunctionName", "f")]), 0, 20, 1);
        let got: Vec<(i64, f64, f64)> = points
            .iter()
            .map(|(t, a)| (*t, a.sum, a.sample_count))
            .collect();
        assert_eq!(got, vec![(5, 0.0, 1.0), (9, 1.0, 1.0)]);
    }

    #[test]
    fn statistics_parse() {
        assert_eq!(Statistic::parse("p99"), Some(Statistic::Percentile(99.0)));
        assert_eq!(Statistic::parse("p99.9"), Some(Statistic::Percentile(99.9)));
        assert_eq!(Statistic::parse("Median"), None);
        assert_eq!(Statistic::parse("p101"), None);
    }
}
