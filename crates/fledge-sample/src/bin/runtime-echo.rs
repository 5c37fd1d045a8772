//! The least a function can be: a Runtime API client on the standard library alone that
//! answers every event with itself. The invoke benchmark runs it beside the sample function
//! to tell the platform's own cost per invocation from `lambda_runtime`'s.
//!
//! It speaks just enough HTTP/1.1 for the Runtime API: one keep-alive connection, bodies
//! with a Content-Length.
//!
//! For the response-streaming tests it also streams, as Lambda's streaming runtimes do: an
//! event with `"stream": "a|b|c"` is answered with those pieces as chunks of a streamed
//! response. With `"gate": PATH`, each piece after the first waits until that file exists
//! (so a test can prove the caller had the first piece before the function went on), and
//! with `"error": TYPE` the stream ends in Lambda's error trailers.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::ExitCode;

/// One answer from the Runtime API: its status, the request id header, and the body.
struct Answer {
    status: u16,
    request_id: Option<String>,
    body: Vec<u8>,
}

fn read_answer(reader: &mut impl BufRead) -> Result<Answer, String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP status line: {line:?}"))?;
    let (mut length, mut request_id) = (0usize, None);
    loop {
        line.clear();
        if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err("the Runtime API closed the connection".into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = value.parse().map_err(|_| format!("bad length {value:?}"))?;
        } else if name.eq_ignore_ascii_case("lambda-runtime-aws-request-id") {
            request_id = Some(value.to_string());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(format!("cannot read a {value} body"));
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    Ok(Answer {
        status,
        request_id,
        body,
    })
}

fn serve(api: &str) -> Result<(), String> {
    let stream = TcpStream::connect(api).map_err(|e| format!("{api}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let next = format!("GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {api}\r\n\r\n");
    loop {
        writer
            .write_all(next.as_bytes())
            .map_err(|e| e.to_string())?;
        let event = read_answer(&mut reader)?;
        let id = match (event.status, event.request_id) {
            (200, Some(id)) => id,
            (status, _) => return Err(format!("next invocation: status {status}")),
        };
        let text = String::from_utf8_lossy(&event.body);
        if let Some(pieces) = string_field(&text, "stream") {
            let gate = string_field(&text, "gate");
            let error = string_field(&text, "error");
            stream_response(&mut writer, api, &id, pieces, gate, error)?;
        } else {
            let mut response = format!(
                "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                event.body.len()
            )
            .into_bytes();
            response.extend_from_slice(&event.body);
            writer.write_all(&response).map_err(|e| e.to_string())?;
        }
        let accepted = read_answer(&mut reader)?;
        if accepted.status != 202 {
            return Err(format!("response for {id}: status {}", accepted.status));
        }
    }
}

/// A streamed response: the pieces as chunks, then Lambda's error trailers if `error`.
fn stream_response(
    writer: &mut impl Write,
    api: &str,
    id: &str,
    pieces: &str,
    gate: Option<&str>,
    error: Option<&str>,
) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    write!(
        writer,
        "POST /2018-06-01/runtime/invocation/{id}/response HTTP/1.1\r\nHost: {api}\r\nContent-Type: text/plain\r\nLambda-Runtime-Function-Response-Mode: streaming\r\nTransfer-Encoding: chunked\r\nTrailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n\r\n"
    )
    .map_err(io)?;
    for (i, piece) in pieces.split('|').enumerate() {
        if let (true, Some(gate)) = (i > 0, gate) {
            while !std::path::Path::new(gate).exists() {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        write!(writer, "{:x}\r\n{piece}\r\n", piece.len()).map_err(io)?;
    }
    writer.write_all(b"0\r\n").map_err(io)?;
    if let Some(error) = error {
        let body = format!(
            r#"{{"errorType":"{error}","errorMessage":"the stream broke off after its last piece"}}"#
        );
        write!(
            writer,
            "Lambda-Runtime-Function-Error-Type: {error}\r\nLambda-Runtime-Function-Error-Body: {}\r\n",
            base64(body.as_bytes())
        )
        .map_err(io)?;
    }
    writer.write_all(b"\r\n").map_err(io)
}

/// The text value of `"name": "…"` in a JSON object (no escapes), enough for the test
/// events this function is sent.
fn string_field<'a>(json: &'a str, name: &str) -> Option<&'a str> {
    let after = &json[json.find(&format!("\"{name}\""))? + name.len() + 2..];
    let value = after
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    value.find('"').map(|end| &value[..end])
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= group.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

fn main() -> ExitCode {
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        eprintln!("runtime-echo: AWS_LAMBDA_RUNTIME_API is not set; run it as a function");
        return ExitCode::FAILURE;
    };
    match serve(&api) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("runtime-echo: {e}");
            ExitCode::FAILURE
        }
    }
}
