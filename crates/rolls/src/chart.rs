//! The odds chart: a bar chart of an exact distribution as a PNG (`/odds`, `GET
//! /api/rolls/odds?format=png`).
//!
//! One bar per outcome, in order, its height proportional to its chance (any
//! possible outcome is at least one pixel high, so every outcome is seen). For a
//! comparison (`1d20+5 >= 15`) the outcomes that pass are drawn in [`PASS`] and the
//! others in [`BAR`]; otherwise every bar is [`BAR`]. The x axis is labelled with the
//! outcomes (every few, so the labels never overlap) and titled "outcome", the y axis
//! with chances at 0, 25, 50, 75 and 100 % of the tallest bar and titled "chance";
//! the title is the expression and, for a comparison, the pass chance.
//!
//! Drawn with `tiny-skia` (rectangles, PNG encoding) and the 8x8 bitmap font of
//! `font8x8` (ASCII; anything else is drawn as `?`), so no font files are needed.
//!
//! Which outcomes pass is read from the check the dice crate reports (`CheckOdds`:
//! the comparison as written, ending in an operator and a whole number) and is only
//! used when the shaded bars add up to the reported pass chance; a check it cannot
//! read that way (a `then` chain, dice on the right) is drawn unshaded with the pass
//! chance in the title. Only exact distributions are drawn (the dice crate lists at
//! most 1,000 outcomes); at most [`MAX_BARS`] of them.

use chrono::{DateTime, Utc};
use tiny_skia::{Color, Paint, Pixmap, Rect, Transform};

use crate::RollsError;
use crate::ops::{Env, OddsModel, Operation, Plan};

/// Most bars in one chart (each is then at least two pixels wide).
pub const MAX_BARS: usize = 390;
/// Image size in pixels.
pub const WIDTH: u32 = 900;
pub const HEIGHT: u32 = 480;
/// The plot area: left edge, top edge, width and height (the x axis is at
/// `PLOT_TOP + PLOT_HEIGHT`).
pub const PLOT_LEFT: u32 = 120;
pub const PLOT_TOP: u32 = 56;
pub const PLOT_WIDTH: u32 = 760;
pub const PLOT_HEIGHT: u32 = 340;
/// The colour of a bar, and of a bar whose outcome passes the comparison.
pub const BAR: [u8; 3] = [88, 101, 242];
pub const PASS: [u8; 3] = [46, 160, 67];
const BACKGROUND: [u8; 3] = [255, 255, 255];
const INK: [u8; 3] = [32, 34, 37];
const GRID: [u8; 3] = [222, 222, 228];
/// Pixels of one font dot.
const SCALE: u32 = 2;
const GLYPH: u32 = 8 * SCALE;

/// Why no chart could be drawn.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartError {
    #[error(
        "a chart needs the exact distribution, and the odds of `{0}` were estimated (or have more than 1,000 outcomes)"
    )]
    NotExact(String),
    #[error("`{expression}` has {outcomes} outcomes; a chart shows at most {MAX_BARS}")]
    TooManyOutcomes { expression: String, outcomes: usize },
    #[error("the chart could not be encoded as PNG: {0}")]
    Encode(String),
}

/// A drawn chart.
#[derive(Debug, Clone)]
pub struct Chart {
    pub png: Vec<u8>,
    /// How many bars, and how many of them are shaded as passing.
    pub bars: usize,
    pub shaded: usize,
    /// Alt text: what the chart shows, in words.
    pub description: String,
}

/// `/odds` and `GET /api/rolls/odds?format=png`: the odds and their chart, worked out
/// in one job of the dice pool's odds lane (so a chart never queues again behind other
/// odds). Counted as `odds`.
#[derive(Debug, Clone)]
pub struct ChartedOddsOp {
    pub expression: String,
}

/// The odds, and their chart or why there is none.
#[derive(Debug, Clone)]
pub struct ChartedOdds {
    pub odds: OddsModel,
    pub chart: Result<Chart, ChartError>,
}

impl serde::Serialize for ChartedOdds {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.odds.serialize(s)
    }
}

impl Operation for ChartedOddsOp {
    type Model = ChartedOdds;
    const COMMAND: &'static str = "odds";

    async fn plan(&self, env: Env<'_>, _: DateTime<Utc>) -> Result<Plan<ChartedOdds>, RollsError> {
        let expression = self.expression.clone();
        let model = env
            .dice
            .odds(move || {
                let odds = OddsModel::of(&expression)?;
                let chart = draw(&odds.odds);
                Ok::<_, RollsError>(ChartedOdds { odds, chart })
            })
            .await??;
        Ok(Plan::read_only(model))
    }
}

/// The chart of `odds`.
pub fn draw(odds: &dice::Odds) -> Result<Chart, ChartError> {
    let outcomes = &odds.distribution;
    if outcomes.is_empty() {
        return Err(ChartError::NotExact(odds.expression.clone()));
    }
    if outcomes.len() > MAX_BARS {
        return Err(ChartError::TooManyOutcomes {
            expression: odds.expression.clone(),
            outcomes: outcomes.len(),
        });
    }
    let passes = pass_region(odds);
    let mut canvas = Canvas::new()?;
    let tallest = outcomes
        .iter()
        .map(|c| c.probability)
        .fold(0.0_f64, f64::max);
    let baseline = PLOT_TOP + PLOT_HEIGHT;

    // Grid lines and y labels at quarters of the tallest bar.
    for quarter in 0..=4u32 {
        let y = baseline - PLOT_HEIGHT * quarter / 4;
        if quarter > 0 {
            canvas.rect(PLOT_LEFT, y, PLOT_WIDTH, 1, GRID);
        }
        let label = percent(tallest * f64::from(quarter) / 4.0);
        let x = PLOT_LEFT.saturating_sub(12 + text_width(&label));
        canvas.text(x, y.saturating_sub(GLYPH / 2), &label, INK);
    }

    // Bars.
    let n = outcomes.len() as u32;
    let mut shaded = 0;
    for (i, chance) in (0u32..).zip(outcomes) {
        let (x0, x1) = slot(i, n);
        let gap = u32::from(x1 - x0 >= 3);
        let height = if chance.probability > 0.0 && tallest > 0.0 {
            ((chance.probability / tallest * f64::from(PLOT_HEIGHT)).round() as u32)
                .clamp(1, PLOT_HEIGHT)
        } else {
            0
        };
        let pass = passes.as_ref().is_some_and(|p| p.contains(chance.value));
        shaded += usize::from(pass);
        let colour = if pass { PASS } else { BAR };
        canvas.rect(x0, baseline - height, x1 - x0 - gap, height, colour);
    }

    // Axes.
    canvas.rect(PLOT_LEFT - 2, PLOT_TOP, 2, PLOT_HEIGHT + 2, INK);
    canvas.rect(PLOT_LEFT - 2, baseline, PLOT_WIDTH + 2, 2, INK);

    // X labels: every `step`-th outcome, centred under its bar.
    let widest = outcomes
        .iter()
        .map(|c| text_width(&c.value.to_string()))
        .max()
        .unwrap_or(GLYPH);
    let room = (widest + GLYPH).max(1);
    let step = ((n * room).div_ceil(PLOT_WIDTH)).max(1);
    for (i, chance) in (0u32..).zip(outcomes) {
        if i % step != 0 {
            continue;
        }
        let (x0, x1) = slot(i, n);
        let label = chance.value.to_string();
        let x = ((x0 + x1) / 2).saturating_sub(text_width(&label) / 2);
        canvas.text(x, baseline + 8, &label, INK);
    }
    canvas.text(
        PLOT_LEFT + PLOT_WIDTH / 2 - text_width("outcome") / 2,
        baseline + 14 + GLYPH,
        "outcome",
        INK,
    );
    canvas.text(8, PLOT_TOP - GLYPH - 8, "chance", INK);

    // Title.
    let check = odds.check.as_ref();
    let title = match check {
        Some(check) => format!("{}: passes {}", odds.expression, percent(check.probability)),
        None => odds.expression.clone(),
    };
    let fits = ((WIDTH - 16) / GLYPH) as usize;
    let title = if title.chars().count() > fits {
        title
            .chars()
            .take(fits.saturating_sub(3))
            .collect::<String>()
            + "..."
    } else {
        title
    };
    canvas.text(8, 8, &title, INK);

    let description = match (check, &passes) {
        (Some(check), Some(_)) => format!(
            "Bar chart of the {} outcomes of {} ({} to {}); the {shaded} that pass are green, together {}.",
            outcomes.len(),
            odds.subject,
            first_value(outcomes),
            last_value(outcomes),
            percent(check.probability)
        ),
        (Some(check), None) => format!(
            "Bar chart of the {} outcomes of {} ({} to {}); it passes {}.",
            outcomes.len(),
            odds.subject,
            first_value(outcomes),
            last_value(outcomes),
            percent(check.probability)
        ),
        (None, _) => format!(
            "Bar chart of the {} outcomes of {} ({} to {}).",
            outcomes.len(),
            odds.subject,
            first_value(outcomes),
            last_value(outcomes)
        ),
    };
    Ok(Chart {
        png: canvas.encode()?,
        bars: outcomes.len(),
        shaded,
        description,
    })
}

fn first_value(outcomes: &[dice::Chance]) -> i64 {
    outcomes.first().map_or(0, |c| c.value)
}

fn last_value(outcomes: &[dice::Chance]) -> i64 {
    outcomes.last().map_or(0, |c| c.value)
}

/// The horizontal pixels of bar `i` of `n`: `[x0, x1)`.
fn slot(i: u32, n: u32) -> (u32, u32) {
    let at = |k: u32| PLOT_LEFT + (u64::from(k) * u64::from(PLOT_WIDTH) / u64::from(n)) as u32;
    (at(i), at(i + 1))
}

/// `p` as a percentage: two decimals below 10 %, else one.
fn percent(p: f64) -> String {
    if p < 0.1 {
        format!("{:.2}%", p * 100.0)
    } else {
        format!("{:.1}%", p * 100.0)
    }
}

fn text_width(text: &str) -> u32 {
    text.chars().count() as u32 * GLYPH
}

/// The outcomes that pass: `value OP threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassRegion {
    op: dice::CompareOp,
    threshold: i64,
}

impl PassRegion {
    pub fn contains(&self, value: i64) -> bool {
        use dice::CompareOp::*;
        match self.op {
            Eq => value == self.threshold,
            Ne => value != self.threshold,
            Gt => value > self.threshold,
            Ge => value >= self.threshold,
            Lt => value < self.threshold,
            Le => value <= self.threshold,
        }
    }
}

/// Which outcomes pass `odds`' comparison, when its check reads as `... OP number`
/// and the outcomes so chosen add up to the reported pass chance (else `None`).
pub fn pass_region(odds: &dice::Odds) -> Option<PassRegion> {
    let check = odds.check.as_ref()?;
    let region = read_comparison(&check.description)?;
    let total: f64 = odds
        .distribution
        .iter()
        .filter(|c| region.contains(c.value))
        .map(|c| c.probability)
        .sum();
    ((total - check.probability).abs() < 1e-6).then_some(region)
}

/// `... >= 15` -> `(>=, 15)`: the last comparison operator and the whole number after it.
fn read_comparison(text: &str) -> Option<PassRegion> {
    const OPERATOR: [char; 4] = ['<', '>', '=', '!'];
    let end = text.rfind(OPERATOR)?;
    let threshold: i64 = text.get(end + 1..)?.trim().parse().ok()?;
    let start = text
        .get(..end)?
        .rfind(|c: char| !OPERATOR.contains(&c))
        .map_or(0, |i| i + 1);
    use dice::CompareOp::*;
    let op = match text.get(start..=end)? {
        "=" | "==" => Eq,
        "!=" => Ne,
        ">" => Gt,
        ">=" => Ge,
        "<" => Lt,
        "<=" => Le,
        _ => return None,
    };
    Some(PassRegion { op, threshold })
}

/// An RGB drawing surface.
struct Canvas {
    pixmap: Pixmap,
}

impl Canvas {
    fn new() -> Result<Canvas, ChartError> {
        let mut pixmap = Pixmap::new(WIDTH, HEIGHT)
            .ok_or_else(|| ChartError::Encode("no canvas of that size".to_owned()))?;
        pixmap.fill(colour(BACKGROUND));
        Ok(Canvas { pixmap })
    }

    fn rect(&mut self, x: u32, y: u32, w: u32, h: u32, rgb: [u8; 3]) {
        let Some(rect) = Rect::from_xywh(x as f32, y as f32, w as f32, h as f32) else {
            return; // empty: nothing to draw
        };
        let mut paint = Paint::default();
        paint.set_color(colour(rgb));
        paint.anti_alias = false;
        self.pixmap
            .fill_rect(rect, &paint, Transform::identity(), None);
    }

    fn text(&mut self, x: u32, y: u32, text: &str, rgb: [u8; 3]) {
        for (i, c) in (0u32..).zip(text.chars()) {
            let glyph = font8x8::legacy::BASIC_LEGACY
                .get(if c.is_ascii() {
                    c as usize
                } else {
                    '?' as usize
                })
                .copied()
                .unwrap_or_default();
            let left = x + i * GLYPH;
            for (row, bits) in (0u32..).zip(glyph) {
                for col in 0..8u32 {
                    if bits & (1 << col) != 0 {
                        self.rect(left + col * SCALE, y + row * SCALE, SCALE, SCALE, rgb);
                    }
                }
            }
        }
    }

    fn encode(&self) -> Result<Vec<u8>, ChartError> {
        self.pixmap
            .encode_png()
            .map_err(|e| ChartError::Encode(e.to_string()))
    }
}

fn colour([r, g, b]: [u8; 3]) -> Color {
    Color::from_rgba8(r, g, b, 255)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparisons_are_read_from_the_check() {
        let region = read_comparison("1d20+5 >= 15").expect("read");
        assert!(region.contains(15) && region.contains(20) && !region.contains(14));
        let region = read_comparison("2d6 < -3").expect("read");
        assert!(region.contains(-4) && !region.contains(-3));
        let region = read_comparison("1d6 != 2").expect("read");
        assert!(region.contains(3) && !region.contains(2));
        assert!(read_comparison("1d6 = 2").expect("read").contains(2));
        assert_eq!(read_comparison("1d20 >= 1d20"), None);
        assert_eq!(read_comparison("2d6"), None);
    }

    #[test]
    fn a_comparison_shades_the_passing_bars() {
        let odds = dice::odds("1d20+5 >= 15").expect("odds");
        let chart = draw(&odds).expect("chart");
        assert_eq!(chart.bars, 20);
        assert_eq!(chart.shaded, 11, "15..=25 pass");
        assert!(chart.png.starts_with(b"\x89PNG"));
        let plain = draw(&dice::odds("3d6").expect("odds")).expect("chart");
        assert_eq!((plain.bars, plain.shaded), (16, 0));
    }

    #[test]
    fn charts_refuse_what_they_cannot_draw() {
        let big = dice::odds("1d1000").expect("odds");
        assert!(matches!(
            draw(&big),
            Err(ChartError::TooManyOutcomes { outcomes: 1000, .. })
        ));
    }
}
