//! The SVG chart (`--chart FILE.svg`): per size, round-trip percentiles and
//! streaming throughput of every transport, drawn with `plotters`.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::{BenchError, Result};
use crate::harness::{Kind, Mode};
use crate::report::{Record, fmt_ns, fmt_rate};

const FONT: &str = "sans-serif";
const ROW_PX: u32 = 24;
const PANEL_W: u32 = 480;
const BLOCKING: RGBColor = RGBColor(31, 119, 180);
const SPINNING: RGBColor = RGBColor(255, 127, 14);
const LIMIT: RGBColor = RGBColor(140, 140, 140);

fn kind_color(kind: Kind) -> RGBColor {
    match kind {
        Kind::Blocking => BLOCKING,
        Kind::Spinning => SPINNING,
        Kind::Limit => LIMIT,
    }
}

fn chart_err(e: impl std::fmt::Display) -> BenchError {
    BenchError::other(format!("chart: {e}"))
}

/// The records of one mode and size that have figures, limits first, then
/// in run order; reversed, because plotters counts rows from the bottom.
fn rows(records: &[Record], mode: Mode, size: usize) -> Vec<&Record> {
    let mut rows: Vec<(usize, &Record)> =
        records.iter().enumerate().filter(|(_, r)| r.mode == mode && r.size == size && r.error.is_none()).collect();
    rows.sort_by_key(|(i, r)| (r.kind != Kind::Limit, *i));
    rows.into_iter().rev().map(|(_, r)| r).collect()
}

/// Writes the chart to `path` (SVG).
pub fn write_chart(records: &[Record], path: &Path) -> Result<()> {
    let mut sizes: Vec<usize> = records.iter().map(|r| r.size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    if sizes.is_empty() {
        return Err(BenchError::other("chart: nothing to draw"));
    }
    let most = |mode| sizes.iter().map(|&s| rows(records, mode, s).len()).max().unwrap_or(0) as u32;
    let rtt_h = 90 + ROW_PX * most(Mode::Rtt);
    let stream_h = 90 + ROW_PX * most(Mode::Stream);
    let width = PANEL_W * sizes.len() as u32;
    let root = SVGBackend::new(path, (width, 50 + rtt_h + stream_h)).into_drawing_area();
    root.fill(&WHITE).map_err(chart_err)?;
    let root = root
        .titled("shmlane bench: blue blocking, orange spinning, grey limits of the machine", (FONT, 16))
        .map_err(chart_err)?;
    let (top, bottom) = root.split_vertically(rtt_h);
    for (&size, area) in sizes.iter().zip(top.split_evenly((1, sizes.len()))) {
        rtt_panel(&area, &rows(records, Mode::Rtt, size), size)?;
    }
    for (&size, area) in sizes.iter().zip(bottom.split_evenly((1, sizes.len()))) {
        stream_panel(&area, &rows(records, Mode::Stream, size), size)?;
    }
    root.present().map_err(chart_err)
}

fn log_bounds(values: impl Iterator<Item = f64>, headroom: f64) -> (f64, f64) {
    let (lo, hi) = values.filter(|v| *v > 0.0).fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if hi <= 0.0 { (1.0, 10.0) } else { (lo / 2.0, hi * headroom) }
}

fn rtt_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, rows: &[&Record], size: usize) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let (lo, hi) = log_bounds(rows.iter().flat_map(|r| [r.p50_ns, r.p999_ns]).flatten().map(|v| v as f64), 3.0);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("round trip, {size} B: bar p50, ● p99, ▲ p99.9 (log)"), (FONT, 15))
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(110)
        .build_cartesian_2d((lo..hi).log_scale(), (0..rows.len()).into_segmented())
        .map_err(chart_err)?;
    let names: Vec<&str> = rows.iter().map(|r| r.transport.as_str()).collect();
    let y_fmt = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => names.get(*i).map_or_else(String::new, |n| (*n).to_owned()),
        _ => String::new(),
    };
    let x_fmt = |v: &f64| fmt_ns(*v);
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows.len())
        .y_label_formatter(&y_fmt)
        .x_label_formatter(&x_fmt)
        .x_labels(6)
        .label_style((FONT, 12))
        .draw()
        .map_err(chart_err)?;
    chart
        .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
            let p50 = r.p50_ns? as f64;
            let mut bar = Rectangle::new(
                [(lo, SegmentValue::Exact(i)), (p50, SegmentValue::Exact(i + 1))],
                kind_color(r.kind).filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            Some(bar)
        }))
        .map_err(chart_err)?;
    chart
        .draw_series(
            rows.iter().enumerate().filter_map(|(i, r)| {
                Some(Circle::new((r.p99_ns? as f64, SegmentValue::CenterOf(i)), 4, BLACK.filled()))
            }),
        )
        .map_err(chart_err)?;
    chart
        .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
            Some(TriangleMarker::new((r.p999_ns? as f64, SegmentValue::CenterOf(i)), 6, RED.filled()))
        }))
        .map_err(chart_err)?;
    Ok(())
}

fn stream_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, rows: &[&Record], size: usize) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let (lo, hi) = log_bounds(rows.iter().filter_map(|r| r.bytes_per_s), 12.0);
    let mut chart = ChartBuilder::on(area)
        .caption(format!("streaming, {size} B: bytes/s (log), label msgs/s"), (FONT, 15))
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(110)
        .build_cartesian_2d((lo..hi).log_scale(), (0..rows.len()).into_segmented())
        .map_err(chart_err)?;
    let names: Vec<&str> = rows.iter().map(|r| r.transport.as_str()).collect();
    let y_fmt = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => names.get(*i).map_or_else(String::new, |n| (*n).to_owned()),
        _ => String::new(),
    };
    let x_fmt = |v: &f64| fmt_rate(*v, "B/s");
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(rows.len())
        .y_label_formatter(&y_fmt)
        .x_label_formatter(&x_fmt)
        .x_labels(6)
        .label_style((FONT, 12))
        .draw()
        .map_err(chart_err)?;
    chart
        .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
            let mut bar = Rectangle::new(
                [(lo, SegmentValue::Exact(i)), (r.bytes_per_s?, SegmentValue::Exact(i + 1))],
                kind_color(r.kind).filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            Some(bar)
        }))
        .map_err(chart_err)?;
    chart
        .draw_series(rows.iter().enumerate().filter_map(|(i, r)| {
            Some(Text::new(
                format!(" {}", fmt_rate(r.msgs_per_s?, "/s")),
                (r.bytes_per_s?, SegmentValue::CenterOf(i)),
                (FONT, 11).into_font().color(&BLACK).pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Left,
                    plotters::style::text_anchor::VPos::Center,
                )),
            ))
        }))
        .map_err(chart_err)?;
    Ok(())
}
