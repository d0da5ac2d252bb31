//! Text without fonts: ASCII drawn pixel by pixel from font8x8's 8×8 glyphs (public domain,
//! compiled in), scaled by an integer factor. plotters' own text needs a font library and the
//! system's fonts, which a fresh machine may not have.

use plotters::prelude::*;

/// Pixels of a glyph cell at scale 1.
pub const CELL: i32 = 8;

/// Where `(x, y)` is in the text's box.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Anchor {
    /// `(x, y)` is the top left corner.
    TopLeft,
    /// `(x, y)` is the middle of the top edge.
    TopCenter,
    /// `(x, y)` is the middle of the right edge.
    RightMiddle,
}

/// The width in pixels of `text` at `scale`.
pub fn width(text: &str, scale: i32) -> i32 {
    text.chars().count() as i32 * CELL * scale
}

/// Draws `text` (ASCII; anything else as a blank) at `(x, y)` per `anchor`.
pub fn draw<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    text: &str,
    (x, y): (i32, i32),
    anchor: Anchor,
    scale: i32,
    color: &RGBColor,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let (left, top) = match anchor {
        Anchor::TopLeft => (x, y),
        Anchor::TopCenter => (x - width(text, scale) / 2, y),
        Anchor::RightMiddle => (x - width(text, scale), y - CELL * scale / 2),
    };
    for (i, c) in text.chars().enumerate() {
        let glyph = font8x8::legacy::BASIC_LEGACY.get(c as usize).copied().unwrap_or_default();
        let cell_left = left + i as i32 * CELL * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for column in 0..8 {
                if bits >> column & 1 == 1 {
                    let (px, py) = (cell_left + column * scale, top + row as i32 * scale);
                    area.draw(&Rectangle::new([(px, py), (px + scale - 1, py + scale - 1)], color.filled()))?;
                }
            }
        }
    }
    Ok(())
}
