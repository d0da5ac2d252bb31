//! How candle's errors and zoo's shape checks meet: every candle failure becomes
//! [`Error::Backend`], and ops validate their inputs up front so that bad shapes surface as
//! [`Error::Shape`] naming the op, as in every zoo backend.

use zoo_core::{Error, Result};

use crate::tensor::CandleTensor;

/// The backend name used in errors raised by candle itself.
const BACKEND: &str = "candle";

/// Converts candle's `Result` into zoo's.
pub(crate) trait CandleResult<T> {
    /// The value, or candle's error as [`Error::Backend`].
    fn zoo(self) -> Result<T>;
}

impl<T> CandleResult<T> for candle_core::Result<T> {
    fn zoo(self) -> Result<T> {
        self.map_err(|e| Error::Backend { backend: BACKEND.to_string(), message: crate::first_line(&e) })
    }
}

pub(crate) use zoo_core::checks::shape_error;

/// `(rows, cols)` of a 2-D tensor, or a shape error naming `op`.
pub(crate) fn dims2(x: &CandleTensor, op: &'static str) -> Result<(usize, usize)> {
    zoo_core::checks::dims2(x.dims(), op)
}

/// Fails unless `a` and `b` have one shape.
pub(crate) fn same_shape(a: &CandleTensor, b: &CandleTensor, op: &'static str) -> Result<()> {
    if a.dims() != b.dims() {
        return Err(shape_error(op, format!("shape {:?}", a.dims()), b.dims()));
    }
    Ok(())
}

/// `p` as a vector of `dim` elements (a norm's weight or bias), or a shape error naming `op`.
pub(crate) fn as_vector(p: &CandleTensor, dim: usize, op: &'static str) -> Result<candle_core::Tensor> {
    if p.dims().iter().product::<usize>() != dim {
        return Err(shape_error(op, format!("{dim} elements"), p.dims()));
    }
    p.inner().reshape(dim).zoo()
}
