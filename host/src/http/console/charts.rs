//! Charts drawn on the server as SVG by plotters (its SVG backend only, no
//! font files: labels stay SVG text the browser sets): a line over days (calls,
//! fuel) and stacked bars of run outcomes per day. The SVG goes into the page
//! as markup, which the console's Content-Security-Policy allows (it is not
//! script, and plotters writes presentation attributes, not inline styles).

use plotters::prelude::*;

const WIDTH: u32 = 520;
const HEIGHT: u32 = 220;

/// Colours of the series, in order (outcomes: ok first).
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 122, 58),
    RGBColor(179, 38, 30),
    RGBColor(204, 122, 0),
    RGBColor(47, 91, 211),
    RGBColor(120, 80, 170),
    RGBColor(91, 100, 117),
];

/// A line of `values` over `days` (labels, oldest first), titled; `None`
/// when there is nothing to draw or drawing failed (the page then says so).
pub(super) fn line(title: &str, days: &[String], values: &[f64]) -> Option<String> {
    if days.is_empty() || days.len() != values.len() {
        return None;
    }
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let top = values.iter().copied().fold(0.0_f64, f64::max).max(1.0) * 1.1;
        let n = days.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(60)
            .build_cartesian_2d(0..n.saturating_sub(1).max(1), 0.0..top)
            .ok()?;
        chart
            .configure_mesh()
            .x_labels(6)
            .x_label_formatter(&|i| days.get(*i).map(|d| short(d)).unwrap_or_default())
            .y_label_formatter(&|v| compact(*v))
            .light_line_style(RGBColor(238, 240, 244).stroke_width(1))
            .draw()
            .ok()?;
        chart
            .draw_series(LineSeries::new(
                values.iter().enumerate().map(|(i, v)| (i, *v)),
                PALETTE[3].stroke_width(2),
            ))
            .ok()?;
        chart
            .draw_series(
                values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| Circle::new((i, *v), 2, PALETTE[3].filled())),
            )
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

/// Stacked bars: for each day, one bar per series stacked (`series`: name
/// and one count per day).
pub(super) fn stacked(
    title: &str,
    days: &[String],
    series: &[(String, Vec<u64>)],
) -> Option<String> {
    if days.is_empty() || series.iter().any(|(_, v)| v.len() != days.len()) {
        return None;
    }
    let totals: Vec<u64> = (0..days.len())
        .map(|i| series.iter().map(|(_, v)| v[i]).sum())
        .collect();
    let top = totals.iter().copied().max().unwrap_or(0).max(1) as f64 * 1.15;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let n = days.len();
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(28)
            .y_label_area_size(50)
            .build_cartesian_2d(0f64..n as f64, 0f64..top)
            .ok()?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n.min(7))
            .x_label_formatter(&|x| {
                let i = x.floor() as usize;
                days.get(i).map(|d| short(d)).unwrap_or_default()
            })
            .y_label_formatter(&|v| compact(*v))
            .light_line_style(RGBColor(238, 240, 244).stroke_width(1))
            .draw()
            .ok()?;
        let mut base = vec![0u64; n];
        for (k, (name, counts)) in series.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let bars: Vec<_> = counts
                .iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, c)| {
                    let (from, to) = (base[i] as f64, (base[i] + c) as f64);
                    Rectangle::new(
                        [(i as f64 + 0.15, from), (i as f64 + 0.85, to)],
                        colour.filled(),
                    )
                })
                .collect();
            for (i, c) in counts.iter().enumerate() {
                base[i] += c;
            }
            chart
                .draw_series(bars)
                .ok()?
                .label(name.as_str())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 4), (x + 10, y + 4)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9).filled())
            .border_style(RGBColor(217, 221, 229).stroke_width(1))
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .ok()?;
        root.present().ok()?;
    }
    Some(svg)
}

/// `2026-12-07` as `12-07`.
fn short(day: &str) -> String {
    day.get(5..).unwrap_or(day).to_owned()
}

/// A number in a few characters: 1200 → 1.2k, 3400000 → 3.4M.
fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_chart_is_svg_with_its_title_and_day_labels() {
        let days: Vec<String> = (1..=5).map(|d| format!("2026-12-0{d}")).collect();
        let svg = line("Plugin calls per day", &days, &[1.0, 4.0, 2.0, 8.0, 5.0]).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("Plugin calls per day"));
        assert!(svg.contains("12-01"));
        assert!(
            !svg.contains("style="),
            "no inline styles under the console's CSP"
        );
        assert!(line("x", &[], &[]).is_none());
    }

    #[test]
    fn stacked_bars_draw_one_rectangle_per_non_zero_count_and_a_legend() {
        let days = vec!["2026-12-06".to_owned(), "2026-12-07".to_owned()];
        let series = vec![
            ("ok".to_owned(), vec![3, 0]),
            ("out_of_fuel".to_owned(), vec![1, 2]),
        ];
        let svg = stacked("Outcomes per day", &days, &series).unwrap();
        assert!(svg.contains("out_of_fuel"));
        assert!(svg.matches("<rect").count() >= 3);
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(compact(1200.0), "1.2k");
        assert_eq!(compact(3_400_000.0), "3.4M");
        assert_eq!(compact(7.0), "7");
    }
}
