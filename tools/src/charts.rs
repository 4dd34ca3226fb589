//! Charts for `tricolor plot` and `tricolor bench --svg`, drawn with plotters as SVG (text as
//! SVG `<text>`, so no font is needed to write them; a viewer supplies one).

use crate::plot::Cycle;
use plotters::prelude::*;
use std::error::Error;

type Result = std::result::Result<(), Box<dyn Error>>;

/// Colours for series, in order (the first is Tricolor's in the bench charts).
const PALETTE: [RGBColor; 6] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(127, 127, 127),
];

/// Draws the chart's legend (its labelled series) at `pos`, boxed on a light background.
fn legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    pos: SeriesLabelPosition,
) -> Result
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(pos)
        .draw()?;
    Ok(())
}

/// The collector over time (`plot` module docs).
pub(crate) fn gc_trace(path: &str, cycles: &[Cycle], limit_mb: Option<f64>) -> Result {
    let root = SVGBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, bottom) = root.split_vertically(440);
    let t_end = cycles.iter().map(|c| c.at).fold(0.0, f64::max).max(1e-3) * 1.02;
    let mb_max = cycles
        .iter()
        .map(|c| c.heap_start_mb.max(c.heap_end_mb).max(c.goal_mb))
        .chain(limit_mb)
        .fold(1.0, f64::max)
        * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .caption("heap per GC cycle", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_end, 0.0..mb_max)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("MB")
        .draw()?;
    type Series = (&'static str, fn(&Cycle) -> f64, RGBColor);
    let series: [Series; 4] = [
        ("heap at cycle start", |c| c.heap_start_mb, PALETTE[1]),
        ("heap at mark termination", |c| c.heap_end_mb, PALETTE[3]),
        ("live (marked)", |c| c.live_mb, PALETTE[2]),
        ("goal", |c| c.goal_mb, PALETTE[4]),
    ];
    for (name, f, color) in series {
        chart
            .draw_series(LineSeries::new(
                cycles.iter().map(|c| (c.at, f(c))),
                color.stroke_width(2),
            ))?
            .label(name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color));
        chart.draw_series(
            cycles
                .iter()
                .map(|c| Circle::new((c.at, f(c)), 2, color.filled())),
        )?;
    }
    if let Some(l) = limit_mb {
        chart
            .draw_series(LineSeries::new(
                [(0.0, l), (t_end, l)],
                PALETTE[0].stroke_width(2),
            ))?
            .label("memory limit")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 18, y)], PALETTE[0]));
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;

    let pauses: Vec<(f64, f64)> = cycles
        .iter()
        .flat_map(|c| c.pauses_ms.map(|p| (c.at, p.max(1e-4))))
        .collect();
    let p_min = pauses.iter().map(|p| p.1).fold(f64::MAX, f64::min) / 2.0;
    let p_max = pauses.iter().map(|p| p.1).fold(0.0, f64::max) * 2.0;
    let mut chart = ChartBuilder::on(&bottom)
        .caption("stop-the-world pauses (two per cycle)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_end, (p_min..p_max).log_scale())?;
    chart
        .configure_mesh()
        .y_labels(6)
        .light_line_style(WHITE)
        .x_desc("seconds")
        .y_desc("ms (log)")
        .draw()?;
    chart.draw_series(
        pauses
            .iter()
            .map(|&(t, p)| Circle::new((t, p), 3, PALETTE[0].filled())),
    )?;
    root.present()?;
    Ok(())
}

/// The name of group `i` at `i + 0.5` on a group axis (asked for labels every 0.5), else
/// nothing.
fn label_at(x: f64, names: &[&str]) -> String {
    if (x - x.floor() - 0.5).abs() > 0.01 {
        return String::new();
    }
    names
        .get(x.floor() as usize)
        .map_or(String::new(), |n| n.to_string())
}

/// A ratio per workload and rival (rival / Tricolor), as grouped bars on a log axis with a
/// line at 1: above it Tricolor is faster (or smaller). `series` holds each rival's ratios in
/// `workloads`' order (`None`: the rival failed that cell).
pub(crate) fn ratios(
    path: &str,
    title: &str,
    workloads: &[&str],
    series: &[(&str, Vec<Option<f64>>)],
) -> Result {
    let root = SVGBackend::new(path, (1100, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let all = series.iter().flat_map(|(_, v)| v.iter().flatten().copied());
    let (lo, hi) = all.fold((1.0f64, 1.0f64), |(lo, hi), r| (lo.min(r), hi.max(r)));
    let n = workloads.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n as f64, ((lo * 0.8)..(hi * 1.25)).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * n + 1)
        .x_label_formatter(&|x| label_at(*x, workloads))
        .y_desc("rival / tricolor (log)")
        .draw()?;
    let width = 0.8 / series.len().max(1) as f64;
    for (k, (name, values)) in series.iter().enumerate() {
        let color = PALETTE[(k + 1) % PALETTE.len()];
        chart
            .draw_series(values.iter().enumerate().filter_map(|(i, v)| {
                let x0 = i as f64 + 0.1 + k as f64 * width;
                v.map(|r| Rectangle::new([(x0, 1.0), (x0 + width * 0.9, r)], color.filled()))
            }))?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart.draw_series(LineSeries::new([(0.0, 1.0), (n as f64, 1.0)], BLACK))?;
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

/// Pauses per collector and benchmark: the median and the longest, ms on a log axis.
/// `rows` holds (benchmark, runtime, p50 ms, max ms).
pub(crate) fn pauses(path: &str, rows: &[(String, String, f64, f64)]) -> Result {
    let root = SVGBackend::new(path, (1100, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut benches: Vec<&str> = Vec::new();
    let mut runtimes: Vec<&str> = Vec::new();
    for (b, r, _, _) in rows {
        if !benches.contains(&b.as_str()) {
            benches.push(b);
        }
        if !runtimes.contains(&r.as_str()) {
            runtimes.push(r);
        }
    }
    let vals = rows.iter().flat_map(|r| [r.2, r.3]).filter(|v| *v > 0.0);
    let (lo, hi) = vals.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi > 0.0 {
        (lo / 2.0, hi * 2.0)
    } else {
        (1e-3, 1.0)
    };
    let n = benches.len().max(1);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "GC pauses per collector: median (dot) to longest (bar top)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..n as f64, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(2 * n + 1)
        .x_label_formatter(&|x| label_at(*x, &benches))
        .y_desc("ms (log)")
        .draw()?;
    let width = 0.8 / runtimes.len().max(1) as f64;
    for (k, rt) in runtimes.iter().enumerate() {
        let color = PALETTE[k % PALETTE.len()];
        let mine: Vec<_> = rows
            .iter()
            .filter(|r| r.1 == *rt)
            .filter_map(|r| {
                let i = benches.iter().position(|b| *b == r.0)?;
                Some((
                    i as f64 + 0.1 + (k as f64 + 0.45) * width,
                    r.2.max(lo),
                    r.3.max(lo),
                ))
            })
            .collect();
        chart
            .draw_series(mine.iter().map(|&(x, p50, max)| {
                Rectangle::new(
                    [(x - width * 0.3, p50), (x + width * 0.3, max)],
                    color.mix(0.5).filled(),
                )
            }))?
            .label(*rt)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
        chart.draw_series(
            mine.iter()
                .map(|&(x, p50, _)| Circle::new((x, p50), 4, color.filled())),
        )?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Rasterizes the SVG at `path` (with the system's fonts), writes it beside as PNG for a
    /// person to look at, and returns its pixels (RGBA) and width.
    pub(crate) fn render(path: &str) -> (Vec<u8>, u32) {
        let mut opt = resvg::usvg::Options::default();
        let db = opt.fontdb_mut();
        db.load_system_fonts();
        // fontdb's generic sans-serif is Arial; Debian's is DejaVu Sans (fonts-dejavu-core).
        db.set_sans_serif_family("DejaVu Sans");
        let data = std::fs::read(path).unwrap();
        let tree = resvg::usvg::Tree::from_data(&data, &opt).expect("a valid SVG");
        let size = tree.size().to_int_size();
        let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
        resvg::render(
            &tree,
            resvg::tiny_skia::Transform::default(),
            &mut pixmap.as_mut(),
        );
        pixmap.save_png(format!("{path}.png")).unwrap();
        (pixmap.data().to_vec(), size.width())
    }

    /// Pixels of `color` in rows `rows` (within a small distance: lines are anti-aliased).
    pub(crate) fn count(
        px: &[u8],
        width: u32,
        rows: std::ops::Range<u32>,
        color: RGBColor,
    ) -> usize {
        let near = |a: u8, b: u8| a.abs_diff(b) <= 24;
        rows.flat_map(|y| (0..width).map(move |x| ((y * width + x) * 4) as usize))
            .filter(|&i| {
                near(px[i], color.0) && near(px[i + 1], color.1) && near(px[i + 2], color.2)
            })
            .count()
    }

    /// Dark pixels (text, axes) in rows `rows`.
    pub(crate) fn dark(px: &[u8], width: u32, rows: std::ops::Range<u32>) -> usize {
        rows.flat_map(|y| (0..width).map(move |x| ((y * width + x) * 4) as usize))
            .filter(|&i| px[i] < 60 && px[i + 1] < 60 && px[i + 2] < 60 && px[i + 3] > 200)
            .count()
    }

    #[test]
    fn a_trace_renders_with_both_panels_and_the_limit() {
        let cycles: Vec<Cycle> = (0..40)
            .map(|i| Cycle {
                n: i + 1,
                at: i as f64 * 0.05,
                pauses_ms: [0.01 + i as f64 * 0.001, 0.002],
                heap_start_mb: 10.0 + (i % 7) as f64,
                heap_end_mb: 11.0 + (i % 7) as f64,
                live_mb: 6.0,
                goal_mb: 12.0,
            })
            .collect();
        let path = std::env::temp_dir()
            .join(format!("tricolor-plot-{}.svg", std::process::id()))
            .to_string_lossy()
            .into_owned();
        gc_trace(&path, &cycles, Some(20.0)).unwrap();
        let (px, w) = render(&path);
        // Top panel (rows 0-440): each series and the limit line drawn; axis labels and
        // captions drawn as text.
        for c in [PALETTE[0], PALETTE[1], PALETTE[2], PALETTE[3], PALETTE[4]] {
            assert!(
                count(&px, w, 0..440, c) > 50,
                "{c:?} missing in the heap panel"
            );
        }
        assert!(dark(&px, w, 0..40) > 100, "no caption text");
        // Bottom panel: the pauses.
        assert!(count(&px, w, 440..700, PALETTE[0]) > 200, "no pauses drawn");
        clean(&path);
    }

    fn temp(name: &str) -> String {
        std::env::temp_dir()
            .join(format!("tricolor-{name}-{}.svg", std::process::id()))
            .to_string_lossy()
            .into_owned()
    }

    fn clean(path: &str) {
        std::fs::remove_file(path).ok();
        if std::env::var_os("TRICOLOR_KEEP_PLOTS").is_none() {
            std::fs::remove_file(format!("{path}.png")).ok();
        }
    }

    #[test]
    fn ratio_and_pause_charts_render_every_series() {
        let path = temp("ratios");
        let names = ["churn", "larson", "rptest"];
        let series = vec![
            ("glibc", vec![Some(1.5), Some(0.7), None]),
            ("jemalloc", vec![Some(0.6), Some(2.0), Some(1.1)]),
        ];
        ratios(&path, "time", &names, &series).unwrap();
        let (px, w) = render(&path);
        assert!(count(&px, w, 0..520, PALETTE[1]) > 500, "glibc's bars");
        assert!(count(&px, w, 0..520, PALETTE[2]) > 500, "jemalloc's bars");
        assert!(dark(&px, w, 470..520) > 50, "workload names under the axis");
        clean(&path);

        let path = temp("pauses");
        let rows = vec![
            ("trees".to_string(), "tricolor".to_string(), 0.004, 0.02),
            ("trees".to_string(), "go".to_string(), 0.05, 0.3),
            ("msgbuf".to_string(), "tricolor".to_string(), 0.003, 0.01),
            ("msgbuf".to_string(), "go".to_string(), 0.06, 0.1),
        ];
        pauses(&path, &rows).unwrap();
        let (px, w) = render(&path);
        assert!(count(&px, w, 0..520, PALETTE[0]) > 100, "tricolor's pauses");
        assert!(count(&px, w, 0..520, PALETTE[1]) > 100, "go's pauses");
        clean(&path);
    }
}
