//! `train/loss.png`: the training loss of every step and the validation loss of every
//! evaluation against the step, drawn with plotters' bitmap backend into a buffer and encoded
//! with `png`. Text (ticks, axis names, legend) comes from [`text`], so no font is needed.

pub mod text;

use std::path::Path;

use plotters::coord::ranged1d::Ranged;
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

use crate::error::{Result, TrainError};
use crate::loss_log::Row;
use text::Anchor;

/// The image's size in pixels.
pub const SIZE: (u32, u32) = (800, 480);
/// The training loss's colour.
pub const TRAIN_COLOR: RGBColor = RGBColor(31, 119, 180);
/// The validation loss's colour.
pub const VALIDATION_COLOR: RGBColor = RGBColor(214, 39, 40);
const GRID: RGBColor = RGBColor(225, 225, 225);
const INK: RGBColor = RGBColor(40, 40, 40);

/// Draws the losses of `rows` into the PNG file `path`.
pub fn loss_png(rows: &[Row], path: &Path) -> Result<()> {
    let fail = |message: String| TrainError::Plot { path: path.to_path_buf(), message };
    let pixels = render(rows).map_err(fail)?;
    let file = std::fs::File::create(path).map_err(|e| TrainError::io(path, e))?;
    let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), SIZE.0, SIZE.1);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| fail(e.to_string()))?;
    writer.write_image_data(&pixels).map_err(|e| fail(e.to_string()))?;
    writer.finish().map_err(|e| fail(e.to_string()))
}

/// The plot as RGB pixels, row by row.
pub fn render(rows: &[Row]) -> std::result::Result<Vec<u8>, String> {
    let train: Vec<(f64, f64)> =
        rows.iter().filter(|r| r.train_loss.is_finite()).map(|r| (r.step as f64, f64::from(r.train_loss))).collect();
    let validation: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| r.validation_loss.filter(|v| v.is_finite()).map(|v| (r.step as f64, f64::from(v))))
        .collect();
    if train.is_empty() && validation.is_empty() {
        return Err("no losses to plot".into());
    }
    let losses = train.iter().chain(&validation).map(|p| p.1);
    let (low, high) = losses.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let pad = ((high - low) * 0.05).max(0.05);
    let last = train.iter().chain(&validation).map(|p| p.0).fold(1.0, f64::max);
    let mut pixels = vec![255u8; SIZE.0 as usize * SIZE.1 as usize * 3];
    draw(&mut pixels, &train, &validation, (0.0..last, (low - pad).max(0.0)..high + pad)).map_err(|e| e.to_string())?;
    Ok(pixels)
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;
type Failure<'a> = DrawingAreaErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

fn draw<'a>(
    pixels: &'a mut [u8],
    train: &[(f64, f64)],
    validation: &[(f64, f64)],
    (x, y): (std::ops::Range<f64>, std::ops::Range<f64>),
) -> std::result::Result<(), Failure<'a>> {
    let root: Area<'a> = BitMapBackend::with_buffer(pixels, SIZE).into_drawing_area();
    let (x_spec, y_spec) = (RangedCoordf64::from(x.clone()), RangedCoordf64::from(y.clone()));
    let mut chart = ChartBuilder::on(&root)
        .margin_top(44)
        .margin_right(24)
        .margin_left(84)
        .margin_bottom(52)
        .build_cartesian_2d(x.clone(), y.clone())?;
    let (xs, ys) = (x_spec.key_points(8usize), y_spec.key_points(6usize));
    for &v in &xs {
        chart.draw_series(std::iter::once(PathElement::new([(v, y.start), (v, y.end)], GRID)))?;
    }
    for &v in &ys {
        chart.draw_series(std::iter::once(PathElement::new([(x.start, v), (x.end, v)], GRID)))?;
    }
    let (left, top) = chart.backend_coord(&(x.start, y.end));
    let (right, bottom) = chart.backend_coord(&(x.end, y.start));
    root.draw(&Rectangle::new([(left, top), (right, bottom)], INK))?;
    chart.draw_series(LineSeries::new(train.iter().copied(), TRAIN_COLOR.stroke_width(1)))?;
    chart.draw_series(LineSeries::new(validation.iter().copied(), VALIDATION_COLOR.stroke_width(2)))?;
    chart.draw_series(validation.iter().map(|&p| Circle::new(p, 3, VALIDATION_COLOR.filled())))?;

    for &v in &xs {
        let (px, _) = chart.backend_coord(&(v, y.start));
        root.draw(&PathElement::new([(px, bottom), (px, bottom + 5)], INK))?;
        text::draw(&root, &label(v, &xs), (px, bottom + 9), Anchor::TopCenter, 1, &INK)?;
    }
    for &v in &ys {
        let (_, py) = chart.backend_coord(&(x.start, v));
        root.draw(&PathElement::new([(left - 5, py), (left, py)], INK))?;
        text::draw(&root, &label(v, &ys), (left - 9, py), Anchor::RightMiddle, 1, &INK)?;
    }
    text::draw(&root, "step", ((left + right) / 2, bottom + 26), Anchor::TopCenter, 2, &INK)?;
    text::draw(&root, "loss", (left, top - 26), Anchor::TopLeft, 2, &INK)?;
    let mut at = right - text::width("train", 2) - text::width("validation", 2) - 100;
    for (name, color) in [("train", TRAIN_COLOR), ("validation", VALIDATION_COLOR)] {
        root.draw(&Rectangle::new([(at, top - 20), (at + 20, top - 16)], color.filled()))?;
        text::draw(&root, name, (at + 26, top - 26), Anchor::TopLeft, 2, &color)?;
        at += 26 + text::width(name, 2) + 24;
    }
    root.present()
}

/// A tick's label, with as many decimals as the ticks' spacing needs.
fn label(value: f64, ticks: &[f64]) -> String {
    let spacing = ticks.windows(2).map(|w| (w[1] - w[0]).abs()).fold(f64::INFINITY, f64::min);
    let exact = |d: i32| {
        let scaled = spacing * 10f64.powi(d);
        (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
    };
    let decimals = if spacing.is_finite() && spacing > 0.0 { (0..6).find(|&d| exact(d)).unwrap_or(6) } else { 0 };
    format!("{value:.*}", decimals as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(n: u64) -> Vec<Row> {
        (1..=n)
            .map(|step| Row {
                step,
                train_loss: 6.0 - (step as f32).ln(),
                validation_loss: (step % 10 == 0).then(|| 6.2 - (step as f32).ln()),
            })
            .collect()
    }

    #[test]
    fn draws_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("loss.png");
        loss_png(&rows(50), &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        let pixels = render(&rows(50)).unwrap();
        let has = |c: RGBColor| pixels.chunks(3).any(|p| p == [c.0, c.1, c.2]);
        assert!(has(TRAIN_COLOR) && has(VALIDATION_COLOR) && has(INK));
    }

    #[test]
    fn one_step_or_nothing() {
        assert!(render(&rows(1)).is_ok());
        assert!(render(&[]).unwrap_err().contains("no losses"));
        let nan = [Row { step: 1, train_loss: f32::NAN, validation_loss: None }];
        assert!(render(&nan).is_err());
    }

    #[test]
    fn labels_follow_the_spacing() {
        assert_eq!(label(100.0, &[0.0, 100.0, 200.0]), "100");
        assert_eq!(label(3.5, &[3.0, 3.5, 4.0]), "3.5");
        assert_eq!(label(3.25, &[3.0, 3.25]), "3.25");
    }
}
