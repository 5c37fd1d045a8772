//! `fledge simulate --svg`: a typical run's weight and cumulative failed requests over time,
//! and the distributions of failed requests and time to outcome over all runs. Plain SVG,
//! written by hand: no chart library, nothing to fetch.

use std::fmt::Write;

use fledge_core::sim::{Batch, SimReport};

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 640.0;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A chart area: where it sits and how values map into it.
struct Area {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Area {
    fn px(&self, fraction: f64) -> f64 {
        self.x + fraction.clamp(0.0, 1.0) * self.w
    }

    fn py(&self, fraction: f64) -> f64 {
        self.y + self.h - fraction.clamp(0.0, 1.0) * self.h
    }

    fn frame(&self, out: &mut String, title: &str) {
        let _ = writeln!(
            out,
            r##"<rect x="{}" y="{}" width="{}" height="{}" fill="none" stroke="#999"/>"##,
            self.x, self.y, self.w, self.h
        );
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{}" font-size="14" font-weight="bold">{}</text>"##,
            self.x,
            self.y - 10.0,
            esc(title)
        );
    }
}

/// Draws the report; `title` says what was simulated.
pub fn render(title: &str, batch: &Batch) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif">"##
    );
    let _ = writeln!(out, r##"<rect width="100%" height="100%" fill="white"/>"##);
    let _ = writeln!(
        out,
        r##"<text x="20" y="26" font-size="16">{}</text>"##,
        esc(title)
    );
    if let Some(run) = &batch.typical {
        typical_run(&mut out, run);
    }
    histogram(
        &mut out,
        Area {
            x: 70.0,
            y: 400.0,
            w: 370.0,
            h: 190.0,
        },
        "failed requests served by the canary, all runs",
        &batch
            .failures_by_run
            .iter()
            .map(|v| *v as f64)
            .collect::<Vec<_>>(),
        "#c0392b",
    );
    histogram(
        &mut out,
        Area {
            x: 540.0,
            y: 400.0,
            w: 370.0,
            h: 190.0,
        },
        "time to the outcome (s), all runs",
        &batch.seconds_by_run,
        "#2c7fb8",
    );
    out.push_str("</svg>\n");
    out
}

fn typical_run(out: &mut String, run: &SimReport) {
    let area = Area {
        x: 70.0,
        y: 70.0,
        w: 820.0,
        h: 250.0,
    };
    let outcome = run
        .outcome
        .map_or("unfinished".to_string(), |o| o.to_string());
    area.frame(out, &format!("a typical run ({outcome} after {:.0} s, {} failed requests): weight (blue) and failed requests so far (red)", run.duration.as_secs_f64(), run.canary_failures));
    let end_ms = (run.duration.as_millis() as f64).max(1.0);
    let max_failures = run
        .failures
        .iter()
        .map(|(_, f)| *f)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut weight_points = String::new();
    let mut last = 0.0;
    for (t, w) in &run.weights {
        let x = area.px(*t as f64 / end_ms);
        let _ = write!(
            weight_points,
            "{x:.1},{:.1} {x:.1},{:.1} ",
            area.py(last),
            area.py(*w)
        );
        last = *w;
    }
    let _ = write!(weight_points, "{:.1},{:.1}", area.px(1.0), area.py(last));
    let _ = writeln!(
        out,
        r##"<polyline points="{weight_points}" fill="none" stroke="#2c7fb8" stroke-width="2"/>"##
    );
    let mut failure_points = String::new();
    let mut last_f = 0.0;
    for (t, f) in &run.failures {
        let x = area.px(*t as f64 / end_ms);
        let y = area.py(*f as f64 / max_failures);
        let _ = write!(
            failure_points,
            "{x:.1},{:.1} {x:.1},{y:.1} ",
            area.py(last_f / max_failures)
        );
        last_f = *f as f64;
    }
    let _ = write!(
        failure_points,
        "{:.1},{:.1}",
        area.px(1.0),
        area.py(last_f / max_failures)
    );
    let _ = writeln!(
        out,
        r##"<polyline points="{failure_points}" fill="none" stroke="#c0392b" stroke-width="2"/>"##
    );
    for (fraction, label) in [(0.0, "0%"), (0.5, "50%"), (1.0, "100%")] {
        let _ = writeln!(
            out,
            r##"<text x="{}" y="{:.1}" font-size="11" text-anchor="end" fill="#2c7fb8">{label}</text>"##,
            area.x - 6.0,
            area.py(fraction) + 4.0
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{:.1}" font-size="11" fill="#c0392b">{max_failures:.0}</text>"##,
        area.x + area.w + 6.0,
        area.py(1.0) + 4.0
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{:.1}" font-size="11" fill="#c0392b">0</text>"##,
        area.x + area.w + 6.0,
        area.py(0.0) + 4.0
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" font-size="11">0 s</text>"##,
        area.x,
        area.y + area.h + 16.0
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" font-size="11" text-anchor="end">{:.0} s</text>"##,
        area.x + area.w,
        area.y + area.h + 16.0,
        end_ms / 1000.0
    );
}

fn histogram(out: &mut String, area: Area, title: &str, values: &[f64], colour: &str) {
    area.frame(out, title);
    if values.is_empty() {
        return;
    }
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let bins = 20usize;
    let width = ((hi - lo) / bins as f64).max(1e-9);
    let mut counts = vec![0u32; bins];
    for v in values {
        let i = (((v - lo) / width) as usize).min(bins - 1);
        counts[i] += 1;
    }
    let top = f64::from(*counts.iter().max().unwrap_or(&1)).max(1.0);
    let bar = area.w / bins as f64;
    for (i, c) in counts.iter().enumerate() {
        let h = f64::from(*c) / top * area.h;
        let _ = writeln!(
            out,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{colour}" opacity="0.8"/>"##,
            area.x + i as f64 * bar + 1.0,
            area.y + area.h - h,
            (bar - 2.0).max(1.0)
        );
    }
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" font-size="11">{lo:.0}</text>"##,
        area.x,
        area.y + area.h + 16.0
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" font-size="11" text-anchor="end">{hi:.0}</text>"##,
        area.x + area.w,
        area.y + area.h + 16.0
    );
    let _ = writeln!(
        out,
        r##"<text x="{}" y="{}" font-size="11" text-anchor="end">{top:.0} runs</text>"##,
        area.x - 6.0,
        area.y + 10.0
    );
}
