//! Shape checks every backend runs before an op, written once so that each backend refuses the
//! same inputs with the same [`Error::Shape`] (or [`Error::ContextFull`]) message. They read
//! only shapes and the host-side specs, never tensor data, so they cost nothing next to the op.

use crate::{AttentionSpec, Error, KvSpec, Result, RopeSpec, SeqSpan};

/// `(rows, cols)` of a 2-D shape, or a shape error naming `op`.
pub fn dims2(shape: &[usize], op: &'static str) -> Result<(usize, usize)> {
    match *shape {
        [rows, cols] => Ok((rows, cols)),
        _ => Err(shape_error(op, "a 2-D tensor", shape)),
    }
}

/// Checks a RoPE input of shape `x` for `positions` rows: whole heads of an even `head_dim`,
/// one position per row. Returns `(rows, cols)`.
pub fn rope(x: &[usize], positions: usize, spec: &RopeSpec) -> Result<(usize, usize)> {
    let (rows, cols) = dims2(x, "rope")?;
    let d = spec.head_dim;
    if d == 0 || d % 2 != 0 || cols % d != 0 || positions != rows {
        return Err(shape_error("rope", format!("{positions} rows of whole heads of even size {d}"), x));
    }
    if let Some(scaling) = &spec.scaling {
        if scaling.inv_freq.len() != d / 2 {
            let got = [scaling.inv_freq.len()];
            return Err(shape_error("rope", format!("{} scaled frequencies for head size {d}", d / 2), &got));
        }
    }
    Ok((rows, cols))
}

/// Checks attention's inputs (shapes of `q`, `k`, `v`), the spans against the KV buffer's
/// `kv` spec, and that every span fits the slot capacity. Returns the number of rows.
pub fn attention(
    q: &[usize],
    k: &[usize],
    v: &[usize],
    kv: &KvSpec,
    spans: &[SeqSpan],
    spec: &AttentionSpec,
) -> Result<usize> {
    heads(kv, spec)?;
    let (n, q_cols) = dims2(q, "attention")?;
    if q_cols != spec.n_heads * spec.head_dim {
        return Err(shape_error("attention", format!("q with {} columns", spec.n_heads * spec.head_dim), q));
    }
    let kv_cols = spec.n_kv_heads * spec.head_dim;
    for t in [k, v] {
        if t != [n, kv_cols] {
            return Err(shape_error("attention", format!("k/v of shape [{n}, {kv_cols}]"), t));
        }
    }
    span_rows(kv, spans, n)?;
    Ok(n)
}

/// Head counts: query heads a whole multiple of KV heads, and the KV buffer made for them.
fn heads(kv: &KvSpec, spec: &AttentionSpec) -> Result<()> {
    if spec.n_kv_heads == 0 || spec.n_heads % spec.n_kv_heads != 0 {
        return Err(shape_error("attention", "n_heads divisible by n_kv_heads", &[spec.n_heads, spec.n_kv_heads]));
    }
    if spec.n_kv_heads != kv.n_kv_heads || spec.head_dim != kv.head_dim {
        let expected = format!("a KV buffer of {} heads × {}", spec.n_kv_heads, spec.head_dim);
        return Err(shape_error("attention", expected, &[kv.n_kv_heads, kv.head_dim]));
    }
    Ok(())
}

/// Spans: contiguous from row 0, covering all `n` rows, in existing slots, within capacity.
fn span_rows(kv: &KvSpec, spans: &[SeqSpan], n: usize) -> Result<()> {
    let mut next_row = 0;
    for span in spans {
        if span.slot >= kv.slots || span.start != next_row {
            let expected = format!("contiguous spans over slots below {}", kv.slots);
            return Err(shape_error("attention", expected, &[span.slot, span.start]));
        }
        if span.past + span.len > kv.capacity {
            return Err(Error::ContextFull { needed: span.past + span.len, limit: kv.capacity });
        }
        next_row += span.len;
    }
    if next_row != n {
        return Err(shape_error("attention", format!("spans covering all {n} rows"), &[next_row]));
    }
    Ok(())
}

/// An [`Error::Shape`] for `op`.
pub fn shape_error(op: &'static str, expected: impl Into<String>, got: &[usize]) -> Error {
    Error::Shape { op, expected: expected.into(), got: got.to_vec() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RopeConvention;

    const KV: KvSpec = KvSpec { slots: 2, n_kv_heads: 2, head_dim: 4, capacity: 8 };
    const SPEC: AttentionSpec = AttentionSpec { n_heads: 4, n_kv_heads: 2, head_dim: 4, scale: 0.5, window: None };

    fn span(slot: usize, start: usize, len: usize, past: usize) -> SeqSpan {
        SeqSpan { slot, start, len, past }
    }

    fn message(r: Result<usize>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn attention_accepts_contiguous_spans_and_counts_rows() {
        let spans = [span(0, 0, 3, 0), span(1, 3, 1, 7)];
        assert_eq!(attention(&[4, 16], &[4, 8], &[4, 8], &KV, &spans, &SPEC).unwrap(), 4);
    }

    #[test]
    fn attention_names_what_is_wrong() {
        let ok = [span(0, 0, 2, 0)];
        let check = |q: &[usize], k: &[usize], spans: &[SeqSpan], spec: &AttentionSpec| {
            message(attention(q, k, &[2, 8], &KV, spans, spec))
        };
        assert!(check(&[2, 12], &[2, 8], &ok, &SPEC).contains("q with 16 columns"));
        assert!(check(&[2, 16], &[2, 16], &ok, &SPEC).contains("k/v of shape [2, 8]"));
        assert!(check(&[2, 16], &[2, 8], &[span(2, 0, 2, 0)], &SPEC).contains("slots below 2"));
        assert!(check(&[2, 16], &[2, 8], &[span(0, 0, 1, 0)], &SPEC).contains("covering all 2 rows"));
        assert!(check(&[2, 16], &[2, 8], &ok, &AttentionSpec { n_heads: 3, ..SPEC }).contains("divisible"));
        let wide = AttentionSpec { n_heads: 8, n_kv_heads: 4, ..SPEC };
        assert!(check(&[2, 32], &[2, 16], &ok, &wide).contains("a KV buffer of 4 heads × 4"));
        let full = attention(&[2, 16], &[2, 8], &[2, 8], &KV, &[span(0, 0, 2, 7)], &SPEC);
        assert!(matches!(full, Err(Error::ContextFull { needed: 9, limit: 8 })), "{full:?}");
    }

    #[test]
    fn rope_wants_whole_even_heads_and_one_position_per_row() {
        let spec = RopeSpec::new(4, 1e4, RopeConvention::HalfSplit);
        assert_eq!(rope(&[3, 8], 3, &spec).unwrap(), (3, 8));
        assert!(rope(&[3, 6], 3, &spec).is_err());
        assert!(rope(&[3, 8], 2, &spec).is_err());
        assert!(rope(&[3, 8], 3, &RopeSpec { head_dim: 3, ..spec.clone() }).is_err());
        assert!(rope(&[24], 3, &spec).is_err());
        let wrong = crate::rope::RopeScaling { inv_freq: vec![1.0; 3].into(), attention_factor: 1.0 };
        assert!(rope(&[3, 8], 3, &RopeSpec { scaling: Some(wrong), ..spec }).is_err());
    }
}
