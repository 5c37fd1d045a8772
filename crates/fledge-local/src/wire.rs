//! Small shared pieces of the wire format: error responses, ids, timestamps.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fledge_core::lambda::LambdaError;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::sync::Mutex;

/// A Lambda error as AWS sends it: status, `X-Amzn-ErrorType`, and the JSON body.
pub struct ApiError(pub LambdaError);

impl From<LambdaError> for ApiError {
    fn from(e: LambdaError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.kind.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut response = (status, axum::Json(self.0.body())).into_response();
        let headers = response.headers_mut();
        headers.insert(
            "x-amzn-errortype",
            HeaderValue::from_static(self.0.kind.wire_name()),
        );
        headers.insert(
            "x-amzn-requestid",
            HeaderValue::from_str(&uuid()).expect("ascii"),
        );
        response
    }
}

static IDS: Mutex<Option<StdRng>> = Mutex::new(None);

/// A random UUID (version 4 form) for request ids and RevisionIds.
pub fn uuid() -> String {
    let mut guard = IDS.lock().expect("id generator");
    let rng = guard.get_or_insert_with(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        StdRng::seed_from_u64(nanos ^ (u64::from(std::process::id()) << 32))
    });
    let a: u64 = rng.random();
    let b: u64 = rng.random();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0x0fff,
        ((b >> 48) & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Lambda's `LastModified` form: `2020-04-10T19:06:32.563+0000`.
pub fn lambda_timestamp(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ms / 1000);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}+0000",
        ms % 1000
    )
}

/// The common log format's time, as function URL events carry it: `12/Mar/2020:19:03:58 +0000`.
pub fn clf_time(ms: u64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s) = civil(ms / 1000);
    let month = MONTHS[(mo as usize).clamp(1, 12) - 1];
    format!("{d:02}/{month}/{y:04}:{h:02}:{mi:02}:{s:02} +0000")
}

/// ISO 8601 in UTC with milliseconds, as the query protocol writes timestamps:
/// `2020-04-10T19:06:32.563Z`.
pub fn iso8601(ms: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(ms / 1000);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        ms % 1000
    )
}

/// `text` escaped for XML content or attributes.
pub fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// Seconds since the epoch as (year, month, day, hour, minute, second), UTC.
fn civil(secs: u64) -> (i64, u32, u32, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rem / 3600, (rem % 3600) / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_lambdas_form() {
        assert_eq!(
            lambda_timestamp(1_586_545_592_563),
            "2020-04-10T19:06:32.563+0000"
        );
        assert_eq!(lambda_timestamp(0), "1970-01-01T00:00:00.000+0000");
        assert_eq!(iso8601(1_586_545_592_563), "2020-04-10T19:06:32.563Z");
    }

    #[test]
    fn xml_text_is_escaped() {
        assert_eq!(
            xml_escape(r#"<a b="c">'&'</a>"#),
            "&lt;a b=&quot;c&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;"
        );
    }

    #[test]
    fn clf_time_is_the_common_log_format() {
        // 2020-03-12T19:03:58Z
        assert_eq!(clf_time(1_584_039_838_000), "12/Mar/2020:19:03:58 +0000");
    }

    #[test]
    fn uuids_look_like_uuids() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, uuid());
    }
}
