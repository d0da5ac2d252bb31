//! LayerNorm and RMSNorm over the last dimension (statistics accumulated in f64).

use zoo_core::{Error, Result};

use crate::tensor::NdTensor;

pub fn layer_norm(x: &NdTensor, weight: &NdTensor, bias: &NdTensor, eps: f32) -> Result<NdTensor> {
    let dim = x.last_dim();
    check_param(weight, dim, "layer_norm weight")?;
    check_param(bias, dim, "layer_norm bias")?;
    let (w, b) = (weight.values(), bias.values());
    let mut out = x.values().to_vec();
    for row in out.chunks_exact_mut(dim) {
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / dim as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / dim as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for ((v, &wi), &bi) in row.iter_mut().zip(w).zip(b) {
            *v = ((*v as f64 - mean) * inv) as f32 * wi + bi;
        }
    }
    NdTensor::new(out, x.shape_vec())
}

pub fn rms_norm(x: &NdTensor, weight: Option<&NdTensor>, eps: f32) -> Result<NdTensor> {
    let dim = x.last_dim();
    if let Some(w) = weight {
        check_param(w, dim, "rms_norm weight")?;
    }
    let mut out = x.values().to_vec();
    for row in out.chunks_exact_mut(dim) {
        let mean_sq = row.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / dim as f64;
        let inv = (1.0 / (mean_sq + eps as f64).sqrt()) as f32;
        row.iter_mut().for_each(|v| *v *= inv);
        if let Some(w) = weight {
            row.iter_mut().zip(w.values()).for_each(|(v, &wi)| *v *= wi);
        }
    }
    NdTensor::new(out, x.shape_vec())
}

fn check_param(p: &NdTensor, dim: usize, op: &'static str) -> Result<()> {
    if p.values().len() != dim {
        return Err(Error::Shape { op, expected: format!("{dim} elements"), got: p.shape_vec() });
    }
    Ok(())
}
