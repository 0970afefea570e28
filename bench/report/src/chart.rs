//! The SVG chart: for each N, throughput per case (top) and p50/p99 latency per case on a
//! log scale (bottom), as horizontal bars so the case names fit.

use crate::summary::Report;
use plotters::prelude::*;
use std::path::Path;

const P50: RGBColor = RGBColor(70, 130, 180);
const P99: RGBColor = RGBColor(220, 120, 50);
const RATE: RGBColor = RGBColor(60, 150, 90);

/// Draws the chart of `report` into `path`.
pub fn draw(report: &Report, path: &Path) -> Result<(), String> {
    let cases = report.cases();
    let cols = report.concurrencies.len().max(1);
    let row_height = 80 + 34 * cases.len() as u32;
    let root = SVGBackend::new(path, (620 * cols as u32, 2 * row_height)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let panels = root.split_evenly((2, cols));
    for (col, &n) in report.concurrencies.iter().enumerate() {
        let rates: Vec<f64> = cases
            .iter()
            .map(|(c, _)| report.median(c, n, "calls_per_sec"))
            .collect();
        bars(
            &panels[col],
            &format!("throughput, N={n} (calls/s, median)"),
            &cases,
            &[(&rates, RATE, "calls/s")],
            false,
        )?;
        let p50: Vec<f64> = cases
            .iter()
            .map(|(c, _)| report.median(c, n, "p50_us"))
            .collect();
        let p99: Vec<f64> = cases
            .iter()
            .map(|(c, _)| report.median(c, n, "p99_us"))
            .collect();
        bars(
            &panels[cols + col],
            &format!("latency, N={n} (µs, log scale, median of rounds)"),
            &cases,
            &[(&p50, P50, "p50"), (&p99, P99, "p99")],
            true,
        )?;
    }
    root.present().map_err(err)
}

fn err(e: impl std::fmt::Display) -> String {
    format!("drawing the chart: {e}")
}

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// One panel: for each case a group of horizontal bars (one per series).
fn bars(
    area: &Area<'_>,
    title: &str,
    cases: &[(String, String)],
    series: &[(&Vec<f64>, RGBColor, &str)],
    log: bool,
) -> Result<(), String> {
    let k = cases.len() as f64;
    let max = series
        .iter()
        .flat_map(|(v, ..)| v.iter().copied())
        .filter(|v| v.is_finite())
        .fold(1.0f64, f64::max);
    let labels: Vec<String> = cases.iter().map(|(id, _)| id.clone()).collect();
    let label_of = move |y: &f64| -> String {
        let i = y.round();
        if (y - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels.len() {
            labels[i as usize].clone()
        } else {
            String::new()
        }
    };
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(110);
    // Each case occupies [i - 0.5, i + 0.5]; its series share that band.
    let band = 0.8 / series.len() as f64;
    if log {
        let mut chart = builder
            .build_cartesian_2d((1.0f64..max * 2.0).log_scale(), -0.5f64..k - 0.5)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(cases.len() + 1)
            .y_label_formatter(&label_of)
            .draw()
            .map_err(err)?;
        for (s, (values, color, name)) in series.iter().enumerate() {
            chart
                .draw_series(
                    values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(i, v)| {
                            let y0 = i as f64 - 0.4 + band * s as f64;
                            Rectangle::new(
                                [(1.0, y0), (v.max(1.0), y0 + band * 0.9)],
                                color.filled(),
                            )
                        }),
                )
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled())
                });
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err)?;
    } else {
        let mut chart = builder
            .build_cartesian_2d(0.0f64..max * 1.1, -0.5f64..k - 0.5)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(cases.len() + 1)
            .y_label_formatter(&label_of)
            .x_label_formatter(&|x| format!("{:.0}k", x / 1000.0))
            .draw()
            .map_err(err)?;
        for (s, (values, color, _)) in series.iter().enumerate() {
            chart
                .draw_series(
                    values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_finite())
                        .map(|(i, v)| {
                            let y0 = i as f64 - 0.4 + band * s as f64;
                            Rectangle::new([(0.0, y0), (*v, y0 + band * 0.9)], color.filled())
                        }),
                )
                .map_err(err)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::{Machine, Report};

    #[test]
    fn chart_is_an_svg_naming_every_case() {
        let runs = r#"{"case":"raw","n":1,"round":1,"result":{"calls_per_sec":20000,"p50_us":40,"p99_us":90}}
{"case":"ours","n":1,"round":1,"result":{"calls_per_sec":15000,"p50_us":60,"p99_us":120}}
{"case":"ours","n":64,"round":1,"result":{"calls_per_sec":150000,"p50_us":400,"p99_us":900}}"#;
        let machine = Machine {
            nproc: 2,
            cpu: "cpu".into(),
            kernel: "k".into(),
            conditions: vec![],
        };
        let report = Report::from_runs(runs, machine).unwrap();
        let dir = std::env::temp_dir().join(format!("bench-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chart.svg");
        draw(&report, &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(80)]);
        for needle in ["raw", "ours", "throughput, N=1", "throughput, N=64", "p99"] {
            assert!(svg.contains(needle), "the chart lacks {needle}");
        }
    }
}
