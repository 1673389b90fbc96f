//! SVG chart: for every (case, threads), each system's cost relative to tokio
//! on a log axis; bars grow right of 1 when worse than tokio, left when better.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::report::{Report, Status};
use crate::systems::BASELINE;

const PALETTE: [RGBColor; 4] = [
    RGBColor(0xd6, 0x27, 0x28), // erlang
    RGBColor(0x1f, 0x77, 0xb4), // troupe
    RGBColor(0x2c, 0xa0, 0x2c), // wasmtime-floor
    RGBColor(0x94, 0x67, 0xbd),
];

pub fn write_svg(report: &Report, path: &Path) -> Result<()> {
    // Systems other than the baseline that have at least one ratio, in row order.
    let mut systems: Vec<&str> = Vec::new();
    for r in &report.rows {
        if r.system != BASELINE && r.ratio_vs_tokio.is_some() && !systems.contains(&r.system) {
            systems.push(r.system);
        }
    }
    // Categories: (case, threads) having at least one ratio.
    let mut cats: Vec<(String, usize)> = Vec::new();
    for r in report
        .rows
        .iter()
        .filter(|r| r.system != BASELINE && r.ratio_vs_tokio.is_some())
    {
        let key = (r.case.clone(), r.threads);
        if !cats.contains(&key) {
            cats.push(key);
        }
    }
    let ratios: Vec<f64> = report
        .rows
        .iter()
        .filter_map(|r| r.ratio_vs_tokio)
        .collect();
    let lo = ratios.iter().copied().fold(1.0f64, f64::min) / 1.5;
    let hi = ratios.iter().copied().fold(1.0f64, f64::max) * 1.5;

    let slot = 14u32;
    let group = slot * systems.len().max(1) as u32 + 12;
    let height = 110 + group * cats.len().max(1) as u32;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let title = format!(
        "Cost relative to tokio (median, log scale; >1 = worse) — {}",
        if report.quick {
            "quick run"
        } else {
            "full run"
        }
    );
    let n = cats.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(300)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..n)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(0)
        .x_desc("ratio vs tokio")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;

    // Category labels, left of the plot; category 0 at the top.
    let label_style = ("sans-serif", 12).into_font().color(&BLACK);
    for (i, (case, threads)) in cats.iter().enumerate() {
        let y = n - i as f64 - 0.5;
        let against_plain = report
            .rows
            .iter()
            .any(|r| &r.case == case && r.threads == *threads && r.ratio_against.is_some());
        let text = if against_plain {
            format!("{case} [{threads}T] (vs tokio idle)")
        } else {
            format!("{case} [{threads}T]")
        };
        chart
            .draw_series(std::iter::once(
                EmptyElement::at((lo, y)) + Text::new(text, (-290, -6), label_style.clone()),
            ))
            .map_err(|e| anyhow!("{e}"))?;
    }
    // The tokio line.
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, 0.0), (1.0, n)],
            BLACK.stroke_width(2),
        )))
        .map_err(|e| anyhow!("{e}"))?;

    let band = 0.8 / systems.len().max(1) as f64;
    for (s, sys) in systems.iter().enumerate() {
        let color = PALETTE[s % PALETTE.len()];
        let bars: Vec<_> = report
            .rows
            .iter()
            .filter(|r| r.system == *sys && r.status == Status::Ok)
            .filter_map(|r| {
                let ratio = r.ratio_vs_tokio?;
                let i = cats
                    .iter()
                    .position(|c| c.0 == r.case && c.1 == r.threads)?;
                let top = n - i as f64 - 0.1 - band * s as f64;
                Some(Rectangle::new(
                    [(1.0, top), (ratio, top - band * 0.9)],
                    color.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(|e| anyhow!("{e}"))?
            .label(*sys)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
