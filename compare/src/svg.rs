//! A small SVG line-chart writer: axes with ticks, linear or log-10 scales, a few series with
//! markers and error bars (the spread of each point), a legend, vertical marks with a label
//! (where a series stopped), a caption (date and machine), and a placeholder text for a chart
//! without data.

use std::fmt::Write as _;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Stroke colour (any SVG colour).
    pub color: &'static str,
    /// Points, in data units; drawn in x order.
    pub points: Vec<(f64, f64)>,
    /// Error bars, drawn from lowest to highest at x.
    pub spread: Vec<Bar>,
}

/// An error bar: (x, lowest, highest), in data units.
pub type Bar = (f64, f64, f64);

/// A vertical mark across the plot at `x`, with a label beside it.
#[derive(Debug, Clone)]
pub struct Marker {
    /// Where, in data units.
    pub x: f64,
    /// Line and text colour.
    pub color: &'static str,
    /// What it marks (wrapped over a few lines).
    pub label: String,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// Log-10 x axis.
    pub log_x: bool,
    /// Log-10 y axis.
    pub log_y: bool,
    /// Formats a y tick (data units).
    pub y_format: fn(f64) -> String,
    /// Linear y ticks fall on 1, 2 or 5 times a power of ten times this (1024 for bytes).
    pub y_unit: f64,
    /// The lines.
    pub series: Vec<Series>,
    /// Shown in the plot area instead of data when there is none (or always, if set and no
    /// series has a point).
    pub placeholder: Option<String>,
    /// Vertical marks (where a series stopped).
    pub markers: Vec<Marker>,
    /// Lines of small text under the plot: when and where it was measured, what the bars mean.
    pub caption: Vec<String>,
}

const W: f64 = 720.0;
const H: f64 = 440.0;
const LEFT: f64 = 90.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 72.0;
const BOTTOM: f64 = 70.0;
/// Height of one caption line.
const CAPTION_LINE: f64 = 16.0;

/// A mapping from data to pixels along one axis.
struct Axis {
    log: bool,
    unit: f64,
    lo: f64,
    hi: f64,
    px_lo: f64,
    px_hi: f64,
}

impl Axis {
    fn new(
        log: bool,
        unit: f64,
        values: impl Iterator<Item = f64>,
        px_lo: f64,
        px_hi: f64,
    ) -> Axis {
        let vals: Vec<f64> = values
            .filter(|v| v.is_finite() && (!log || *v > 0.0))
            .collect();
        let (mut lo, mut hi) = vals
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if vals.is_empty() {
            (lo, hi) = if log { (1.0, 10.0) } else { (0.0, 1.0) };
        }
        if log {
            lo = 10f64.powf(lo.log10().floor());
            hi = 10f64.powf(hi.log10().ceil());
            if hi <= lo {
                hi = lo * 10.0;
            }
        } else {
            lo = lo.min(0.0);
            if hi <= lo {
                hi = lo + 1.0;
            }
            let step = nice_step((hi - lo) / 5.0, unit);
            hi = (hi / step).ceil() * step;
        }
        Axis {
            log,
            unit,
            lo,
            hi,
            px_lo,
            px_hi,
        }
    }

    fn map(&self, v: f64) -> f64 {
        let t = if self.log {
            (v.log10() - self.lo.log10()) / (self.hi.log10() - self.lo.log10())
        } else {
            (v - self.lo) / (self.hi - self.lo)
        };
        self.px_lo + t * (self.px_hi - self.px_lo)
    }

    fn ticks(&self) -> Vec<f64> {
        if self.log {
            let (a, b) = (
                self.lo.log10().round() as i32,
                self.hi.log10().round() as i32,
            );
            (a..=b).map(|e| 10f64.powi(e)).collect()
        } else {
            let step = nice_step((self.hi - self.lo) / 5.0, self.unit);
            let mut t = (self.lo / step).ceil() * step;
            let mut out = Vec::new();
            while t <= self.hi + step * 1e-9 {
                out.push(t);
                t += step;
            }
            out
        }
    }
}

/// 1, 2 or 5 times a power of ten times `unit` (or a power of 1024 times `unit` when that is 1024,
/// so byte ticks read 512 KiB, 1 MiB), at least `raw`.
fn nice_step(raw: f64, unit: f64) -> f64 {
    let unit = if unit > 0.0 && unit.is_finite() {
        unit
    } else {
        1.0
    };
    if raw <= 0.0 || !raw.is_finite() {
        return unit;
    }
    let mut unit = unit;
    if unit == 1024.0 {
        while raw / unit >= 1024.0 {
            unit *= 1024.0;
        }
    }
    let r = raw / unit;
    let p = 10f64.powf(r.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|s| *s >= r)
        .unwrap_or(10.0 * p)
        * unit
}

/// `1000` as `1k`, `1e6` as `1M`: for counts on an axis.
pub fn short_count(v: f64) -> String {
    let a = v.abs();
    let (d, s) = if a >= 1e9 {
        (1e9, "G")
    } else if a >= 1e6 {
        (1e6, "M")
    } else if a >= 1e3 {
        (1e3, "k")
    } else {
        (1.0, "")
    };
    let x = v / d;
    if (x - x.round()).abs() < 1e-9 {
        format!("{}{s}", x.round())
    } else {
        format!("{x:.1}{s}")
    }
}

/// A tick label from a figure formatter, without trailing zeros: `150.00 µs` reads `150 µs`,
/// `2.50 KiB` reads `2.5 KiB`, zero reads `0`.
pub fn tick_label(v: f64, format: fn(f64) -> String) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let s = format(v);
    let (num, rest) = s.split_at(
        s.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ',' || c == '-'))
            .unwrap_or(s.len()),
    );
    let num = if num.contains('.') {
        num.trim_end_matches('0').trim_end_matches('.')
    } else {
        num
    };
    format!("{num}{rest}")
}

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Chart {
    /// Whether any series has a point to draw.
    pub fn has_data(&self) -> bool {
        self.series.iter().any(|s| !self.drawable(s).is_empty())
    }

    fn drawable(&self, s: &Series) -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|&(x, y)| {
                x.is_finite()
                    && y.is_finite()
                    && (!self.log_x || x > 0.0)
                    && (!self.log_y || y > 0.0)
            })
            .collect();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        pts
    }

    /// The error bars of `s` that can be drawn on this chart's axes.
    fn drawable_spread(&self, s: &Series) -> Vec<Bar> {
        let ok = |v: f64, log: bool| v.is_finite() && (!log || v > 0.0);
        s.spread
            .iter()
            .copied()
            .filter(|&(x, lo, hi)| ok(x, self.log_x) && ok(lo, self.log_y) && ok(hi, self.log_y))
            .collect()
    }

    /// The chart as a standalone SVG document.
    pub fn render(&self) -> String {
        let drawn: Vec<(&Series, Vec<(f64, f64)>)> =
            self.series.iter().map(|s| (s, self.drawable(s))).collect();
        let data = self.has_data();
        let bars: Vec<(&Series, Vec<Bar>)> = if data {
            self.series
                .iter()
                .map(|s| (s, self.drawable_spread(s)))
                .collect()
        } else {
            Vec::new()
        };
        let marks = self.markers.iter().filter(|m| data && m.x.is_finite());
        let xs = drawn.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
        let xs = xs.chain(marks.clone().map(|m| m.x));
        let ys = drawn.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
        let ys = ys.chain(
            bars.iter()
                .flat_map(|(_, b)| b.iter().flat_map(|q| [q.1, q.2])),
        );
        let x = Axis::new(self.log_x, 1.0, xs, LEFT, W - RIGHT);
        let y = Axis::new(self.log_y, self.y_unit, ys, H - BOTTOM, TOP);
        let height = H + CAPTION_LINE * self.caption.len() as f64;

        let mut o = String::new();
        let _ = writeln!(
            o,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(o, r#"<rect width="{W}" height="{height}" fill="white"/>"#);
        let _ = writeln!(
            o,
            r#"<text x="{}" y="28" text-anchor="middle" font-size="16" font-weight="bold">{}</text>"#,
            W / 2.0,
            esc(&self.title)
        );

        // Grid and ticks (none without data: they would mean nothing).
        let (xt, yt) = if data {
            (x.ticks(), y.ticks())
        } else {
            (Vec::new(), Vec::new())
        };
        for t in xt {
            let px = x.map(t);
            let _ = writeln!(
                o,
                r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="#e4e4e4"/>"##,
                H - BOTTOM
            );
            let _ = writeln!(
                o,
                r#"<text x="{px:.1}" y="{}" text-anchor="middle">{}</text>"#,
                H - BOTTOM + 18.0,
                esc(&short_count(t))
            );
        }
        for t in yt {
            let py = y.map(t);
            let _ = writeln!(
                o,
                r##"<line x1="{LEFT}" y1="{py:.1}" x2="{}" y2="{py:.1}" stroke="#e4e4e4"/>"##,
                W - RIGHT
            );
            let _ = writeln!(
                o,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 8.0,
                py + 4.0,
                esc(&tick_label(t, self.y_format))
            );
        }
        // Axes.
        let _ = writeln!(
            o,
            r#"<line x1="{LEFT}" y1="{}" x2="{}" y2="{}" stroke="black"/>"#,
            H - BOTTOM,
            W - RIGHT,
            H - BOTTOM
        );
        let _ = writeln!(
            o,
            r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}" stroke="black"/>"#,
            H - BOTTOM
        );
        let _ = writeln!(
            o,
            r#"<text x="{}" y="{}" text-anchor="middle">{}{}</text>"#,
            (LEFT + W - RIGHT) / 2.0,
            H - 25.0,
            esc(&self.x_label),
            if self.log_x { " (log scale)" } else { "" }
        );
        let (cx, cy) = (22.0, (TOP + H - BOTTOM) / 2.0);
        let _ = writeln!(
            o,
            r#"<text x="{cx}" y="{cy}" text-anchor="middle" transform="rotate(-90 {cx} {cy})">{}{}</text>"#,
            esc(&self.y_label),
            if self.log_y { " (log scale)" } else { "" }
        );

        if !data {
            let text = self.placeholder.as_deref().unwrap_or("no data");
            let _ = writeln!(
                o,
                r##"<text x="{}" y="{}" text-anchor="middle" font-size="15" fill="#777">{}</text>"##,
                (LEFT + W - RIGHT) / 2.0,
                (TOP + H - BOTTOM) / 2.0,
                esc(text)
            );
        }

        // Series.
        for (s, pts) in &drawn {
            if pts.is_empty() {
                continue;
            }
            let path: Vec<String> = pts
                .iter()
                .map(|&(a, b)| format!("{:.1},{:.1}", x.map(a), y.map(b)))
                .collect();
            let _ = writeln!(
                o,
                r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2.5"/>"#,
                path.join(" "),
                s.color
            );
            for &(a, b) in pts {
                let _ = writeln!(
                    o,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{}"/>"#,
                    x.map(a),
                    y.map(b),
                    s.color
                );
            }
        }

        // Error bars: a vertical line from the lowest to the highest figure, capped at both ends.
        for (s, spread) in &bars {
            for &(a, lo, hi) in spread {
                let (px, p_lo, p_hi) = (x.map(a), y.map(lo), y.map(hi));
                let _ = writeln!(
                    o,
                    r#"<path class="spread" d="M{px:.1},{p_lo:.1} V{p_hi:.1} M{:.1},{p_lo:.1} H{:.1} M{:.1},{p_hi:.1} H{:.1}" stroke="{}" stroke-width="1.5" fill="none"/>"#,
                    px - 5.0,
                    px + 5.0,
                    px - 5.0,
                    px + 5.0,
                    s.color
                );
            }
        }

        // Marks: a dashed vertical line, the label beside it (on the side with more room).
        for m in marks {
            let px = x.map(m.x);
            let _ = writeln!(
                o,
                r#"<line class="stop" x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{}" stroke="{}" stroke-width="1.5" stroke-dasharray="6 4"/>"#,
                H - BOTTOM,
                m.color
            );
            let right = px < (LEFT + W - RIGHT) / 2.0;
            let (tx, anchor) = if right {
                (px + 6.0, "start")
            } else {
                (px - 6.0, "end")
            };
            for (i, line) in crate::workloads::table::wrap(&m.label, 40)
                .iter()
                .enumerate()
            {
                let _ = writeln!(
                    o,
                    r#"<text x="{tx:.1}" y="{:.1}" text-anchor="{anchor}" font-size="11" fill="{}">{}</text>"#,
                    TOP + 14.0 + 13.0 * i as f64,
                    m.color,
                    esc(line)
                );
            }
        }

        // Caption under the x label.
        for (i, line) in self.caption.iter().enumerate() {
            let _ = writeln!(
                o,
                r##"<text class="caption" x="{}" y="{:.1}" text-anchor="middle" font-size="11" fill="#555">{}</text>"##,
                W / 2.0,
                H - 4.0 + CAPTION_LINE * i as f64,
                esc(line)
            );
        }

        // Legend, one line between the title and the plot, left to right.
        let ly = TOP - 18.0;
        let mut lx = LEFT;
        for s in &self.series {
            let _ = writeln!(
                o,
                r#"<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="3"/>"#,
                ly - 4.0,
                lx + 22.0,
                ly - 4.0,
                s.color
            );
            let _ = writeln!(
                o,
                r#"<text x="{}" y="{ly}">{}</text>"#,
                lx + 28.0,
                esc(&s.name)
            );
            // About 7 px per character at this font size.
            lx += 28.0 + 7.0 * s.name.chars().count() as f64 + 24.0;
        }
        o.push_str("</svg>\n");
        o
    }
}
