//! The digest's chart — a PNG drawn in-process with plotters: mean MTTR per severity as stacked bars, one
//! segment per phase (minutes), the previous period's bar (lighter) next to the current one, with a title,
//! labelled axes, a legend and each bar's total. The text is drawn with DejaVu Sans, compiled into the binary
//! (`assets/fonts/`), so no system font is needed.

use std::sync::Once;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::stats::{Digest, Figures};
use crate::domain::duration::format_duration;
use crate::domain::severity::Severity;

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";
pub const WIDTH: u32 = 1100;
pub const HEIGHT: u32 = 640;
/// Room on the right for the legend.
const LEGEND_WIDTH: u32 = 210;

/// The stacked segments: the four phases, then the part of imported incidents whose phases are unknown.
const SEGMENTS: [(&str, RGBColor); 5] = [
    ("Detection", RGBColor(0x44, 0x77, 0xAA)),
    ("Triage", RGBColor(0xEE, 0x66, 0x77)),
    ("Remediation", RGBColor(0x22, 0x88, 0x33)),
    ("Verification", RGBColor(0xCC, 0xBB, 0x44)),
    ("Unknown (imported)", RGBColor(0xBB, 0xBB, 0xBB)),
];

#[derive(Debug, thiserror::Error)]
#[error("chart: {0}")]
pub struct ChartError(String);

fn err(e: impl std::fmt::Debug) -> ChartError {
    ChartError(format!("{e:?}"))
}

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            tracing::warn!("the bundled chart font could not be loaded");
        }
    });
}

/// Whether there is anything to draw (a resolved incident in either period).
pub fn has_data(d: &Digest) -> bool {
    d.current.resolved + d.previous.resolved > 0
}

/// One bar: its label, segments in minutes, and how many incidents it averages.
struct Bar {
    label: String,
    minutes: [f64; 5],
    resolved: usize,
    previous: bool,
}

fn bars(d: &Digest, labels: (&str, &str)) -> Vec<Bar> {
    let mut out = Vec::new();
    for sev in Severity::ALL {
        for (f, label, previous) in [(&d.previous, labels.0, true), (&d.current, labels.1, false)] {
            let m = means(f, sev);
            out.push(Bar {
                label: format!("{} · {label}", sev.as_str()),
                minutes: m.0,
                resolved: m.1,
                previous,
            });
        }
    }
    out
}

fn means(f: &Figures, sev: Severity) -> ([f64; 5], usize) {
    match f.phase_means.iter().find(|p| p.severity == sev) {
        Some(p) => (
            p.segments.map(|d| d.num_milliseconds() as f64 / 60_000.0),
            p.resolved,
        ),
        None => ([0.0; 5], 0),
    }
}

/// Draws the chart; `labels` name the previous and current period under the bars (e.g. `("7 days before",
/// "last 7 days")`).
pub fn render_png(d: &Digest, title: &str, labels: (&str, &str)) -> Result<Vec<u8>, ChartError> {
    register_font();
    let bars = bars(d, labels);
    let top = bars
        .iter()
        .map(|b| b.minutes.iter().sum::<f64>())
        .fold(0.0f64, f64::max);
    let ymax = (top * 1.18).max(10.0);
    let mut rgb = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let body = root
            .margin(14, 0, 0, 0)
            .titled(title, (FAMILY, 22).into_font())
            .map_err(err)?;
        let (plot, side) = body.split_horizontally(WIDTH - LEGEND_WIDTH);
        let n = bars.len() as u32;
        let mut chart = ChartBuilder::on(&plot)
            .margin(18)
            .x_label_area_size(64)
            .y_label_area_size(84)
            .build_cartesian_2d((0u32..n - 1).into_segmented(), 0f64..ymax)
            .map_err(err)?;
        let names: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
        let x_label = move |v: &SegmentValue<u32>| match v {
            SegmentValue::CenterOf(i) => names.get(*i as usize).cloned().unwrap_or_default(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE.mix(0.0))
            .bold_line_style(BLACK.mix(0.12))
            .x_labels(bars.len())
            .x_label_formatter(&x_label)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .y_desc("Mean time per incident (minutes)")
            .x_desc("Severity · period")
            .label_style((FAMILY, 14))
            .axis_desc_style((FAMILY, 16))
            .draw()
            .map_err(err)?;
        for (seg, (_, color)) in SEGMENTS.iter().enumerate() {
            let color = *color;
            let rects = bars.iter().enumerate().filter_map(|(i, b)| {
                let y0: f64 = b.minutes[..seg].iter().sum();
                let y1 = y0 + b.minutes[seg];
                (b.minutes[seg] > 0.0).then(|| {
                    let style = if b.previous {
                        color.mix(0.45).filled()
                    } else {
                        color.filled()
                    };
                    let mut r = Rectangle::new(
                        [
                            (SegmentValue::Exact(i as u32), y0),
                            (SegmentValue::Exact(i as u32 + 1), y1),
                        ],
                        style,
                    );
                    r.set_margin(0, 0, 16, 16);
                    r
                })
            });
            chart.draw_series(rects).map_err(err)?;
        }
        let total_style = TextStyle::from((FAMILY, 14).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Bottom));
        chart
            .draw_series(bars.iter().enumerate().map(|(i, b)| {
                let total: f64 = b.minutes.iter().sum();
                let text = if b.resolved == 0 {
                    "none".to_string()
                } else {
                    let d = chrono::Duration::milliseconds((total * 60_000.0) as i64);
                    format!("{} · n={}", format_duration(d), b.resolved)
                };
                Text::new(
                    text,
                    (SegmentValue::CenterOf(i as u32), total + ymax * 0.01),
                    total_style.clone(),
                )
            }))
            .map_err(err)?;
        legend(&side, labels).map_err(err)?;
        root.present().map_err(err)?;
    }
    encode(&rgb)
}

/// The legend, in its own column: a swatch per segment, then how the previous period is drawn.
fn legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    labels: (&str, &str),
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let font = TextStyle::from((FAMILY, 15).into_font()).color(&BLACK);
    let grey = BLACK.mix(0.7);
    let small = TextStyle::from((FAMILY, 13).into_font()).color(&grey);
    let (x, mut y) = (8, 40);
    area.draw(&Text::new("Phase", (x, y - 24), font.clone()))?;
    for (name, color) in SEGMENTS {
        area.draw(&Rectangle::new([(x, y), (x + 16, y + 16)], color.filled()))?;
        area.draw(&Text::new(name, (x + 24, y), font.clone()))?;
        y += 26;
    }
    y += 14;
    area.draw(&Rectangle::new(
        [(x, y), (x + 16, y + 16)],
        SEGMENTS[0].1.mix(0.45).filled(),
    ))?;
    area.draw(&Text::new(
        format!("lighter: {}", labels.0),
        (x + 24, y),
        small.clone(),
    ))?;
    y += 22;
    area.draw(&Rectangle::new(
        [(x, y), (x + 16, y + 16)],
        SEGMENTS[0].1.filled(),
    ))?;
    area.draw(&Text::new(
        format!("solid: {}", labels.1),
        (x + 24, y),
        small.clone(),
    ))?;
    y += 34;
    for line in [
        "Segments add up to",
        "the mean MTTR of the",
        "resolved incidents (n).",
    ] {
        area.draw(&Text::new(line, (x, y), small.clone()))?;
        y += 18;
    }
    Ok(())
}

fn encode(rgb: &[u8]) -> Result<Vec<u8>, ChartError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, WIDTH, HEIGHT);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(err)?;
        w.write_image_data(rgb).map_err(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::stats::{compute, IncidentRow, Origin, Period};
    use crate::domain::phase::{Milestone, Timeline};
    use crate::domain::severity::DetectionMethod;
    use chrono::{Duration, TimeZone, Utc};

    fn digest() -> Digest {
        let end = Utc.with_ymd_and_hms(2026, 11, 23, 9, 0, 0).unwrap();
        let mut rows = Vec::new();
        for (n, (sev, day, p)) in [
            (Severity::P1, 2, [5, 25, 40, 10]),
            (Severity::P1, 9, [10, 45, 60, 15]),
            (Severity::P2, 3, [15, 30, 20, 20]),
            (Severity::P2, 10, [20, 60, 30, 10]),
            (Severity::P3, 4, [30, 90, 60, 30]),
        ]
        .into_iter()
        .enumerate()
        {
            let start = end - Duration::days(day);
            let mut tl = Timeline::new(start, start);
            let mut t = start;
            for (m, d) in Milestone::ALL.iter().zip(p) {
                t += Duration::minutes(d);
                tl.record(*m, t, None).expect("in order");
            }
            rows.push(IncidentRow {
                id: n.to_string(),
                number: n as i64,
                title: "x".into(),
                severity: sev,
                service: None,
                team: None,
                detection: Some(DetectionMethod::Alert),
                origin: Origin::Slack,
                timeline: tl,
                deploy_before: false,
                channel_id: None,
            });
        }
        // An imported P2 acknowledged after 20 minutes and resolved after 3 hours.
        let start = end - Duration::days(1);
        rows.push(IncidentRow {
            id: "pd".into(),
            number: 99,
            title: "imported".into(),
            severity: Severity::P2,
            service: None,
            team: None,
            detection: None,
            origin: Origin::Baseline,
            timeline: Timeline {
                acknowledged: Some(crate::domain::phase::Stamp::explicit(
                    start + Duration::minutes(20),
                    None,
                )),
                resolved: Some(crate::domain::phase::Stamp::explicit(
                    start + Duration::hours(3),
                    None,
                )),
                ..Timeline::new(start, start)
            },
            deploy_before: false,
            channel_id: None,
        });
        compute(&rows, Period::days_before(end, 7), chrono_tz::UTC, end)
    }

    #[test]
    fn the_chart_is_a_png_of_the_expected_size() {
        let png = render_png(
            &digest(),
            "MTTR per phase · 16 Nov – 23 Nov 2026 vs the 7 days before",
            ("7 days before", "last 7 days"),
        )
        .expect("renders");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian.
        assert_eq!(
            u32::from_be_bytes([png[16], png[17], png[18], png[19]]),
            WIDTH
        );
        assert_eq!(
            u32::from_be_bytes([png[20], png[21], png[22], png[23]]),
            HEIGHT
        );
        if let Ok(path) = std::env::var("DIGEST_CHART_OUT") {
            std::fs::write(path, &png).expect("write the chart");
        }
    }
}
