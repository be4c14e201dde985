//! The comparison's charts, as SVG: one horizontal bar per run, on a log
//! scale, so that a coroutine's nanoseconds and a blocked process's tens of
//! microseconds fit on one page.

use std::path::Path;

use plotters::prelude::*;

/// One bar: its label and its value.
pub type Bar = (String, f64);

/// Draws `bars` (the first at the top) into `path` as a horizontal bar chart.
pub fn bars(path: &Path, title: &str, unit: &str, bars: &[Bar]) -> Result<(), String> {
    if bars.is_empty() {
        return Ok(());
    }
    let positive = bars.iter().map(|b| b.1).filter(|v| *v > 0.0);
    let lo = positive.clone().fold(f64::INFINITY, f64::min).max(0.1) / 2.0;
    let hi = positive.fold(0.0, f64::max).max(lo * 4.0) * 2.0;
    let n = bars.len();
    let height = 80 + 24 * n as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    let err = |e: &dyn std::fmt::Display| format!("cannot draw {}: {e}", path.display());
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(330)
        .build_cartesian_2d((lo..hi).log_scale(), (0..n).into_segmented())
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc(unit)
        .y_labels(n)
        // Row 0 of the input is drawn at the top.
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(i) if *i < n => bars[n - 1 - i].0.clone(),
            _ => String::new(),
        })
        .x_label_formatter(&|x| crate::report::human_ns(*x))
        .disable_y_mesh()
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            let row = n - 1 - i;
            let mut rect = Rectangle::new(
                [
                    (lo, SegmentValue::Exact(row)),
                    (v.max(lo), SegmentValue::Exact(row + 1)),
                ],
                BLUE.mix(0.6).filled(),
            );
            rect.set_margin(3, 3, 0, 0);
            rect
        }))
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}
