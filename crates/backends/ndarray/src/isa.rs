//! Which instruction set the CPU kernels use: detected once at run time, capped by the
//! `ZOO_CPU_KERNELS` environment variable (`portable`, `avx2`, `avx512` or `avx512vnni`) so that
//! tests on an AVX-512 VNNI machine can run the AVX-512 (without VNNI), AVX2 and portable paths
//! too. A cap above what the CPU has is ignored (the detected set is used), never an illegal
//! instruction: a CPU with AVX-512 but not VNNI gets [`Isa::Avx512`], whose block kernels are
//! the AVX2 ones.

use std::sync::OnceLock;

/// The kernel families, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust loops (any CPU).
    Portable,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// x86-64 AVX-512F and AVX-512BW (on top of AVX2).
    Avx512,
    /// [`Isa::Avx512`] plus AVX-512VL and AVX512-VNNI (`vpdpwssd`), which the block kernels use.
    Avx512Vnni,
}

/// The environment variable that caps [`isa`].
pub const ENV: &str = "ZOO_CPU_KERNELS";

/// The instruction set the kernels use in this process (detected and capped once).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let cap = std::env::var(ENV).ok().and_then(|v| parse(&v)).unwrap_or(Isa::Avx512Vnni);
        detected().min(cap)
    })
}

/// `portable`, `avx2`, `avx512` or `avx512vnni` (any case); `None` for anything else.
pub fn parse(value: &str) -> Option<Isa> {
    match value.trim().to_ascii_lowercase().as_str() {
        "portable" => Some(Isa::Portable),
        "avx2" => Some(Isa::Avx2),
        "avx512" => Some(Isa::Avx512),
        "avx512vnni" => Some(Isa::Avx512Vnni),
        _ => None,
    }
}

/// The best set this CPU has, whatever `ZOO_CPU_KERNELS` says.
pub fn detected() -> Isa {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::is_x86_feature_detected as has;
        let avx2 = has!("avx2") && has!("fma") && has!("f16c");
        if avx2 && has!("avx512f") && has!("avx512bw") {
            if has!("avx512vl") && has!("avx512vnni") {
                return Isa::Avx512Vnni;
            }
            return Isa::Avx512;
        }
        if avx2 {
            return Isa::Avx2;
        }
    }
    Isa::Portable
}

/// Whether the CPU carries out each 512-bit vector operation as two 256-bit halves: AMD's
/// family 19h (Zen 3 and Zen 4; Zen 3 has no AVX-512, so in practice Zen 4). There zoo's
/// AVX-512 GEMM gains less over the row-streaming kernels than on CPUs with full-width 512-bit
/// units (Intel's), which moves the point where block-quantised products switch to the GEMM
/// (`matmul::block_gemv_max_rows`). Asked once: `cpuid` traps to the hypervisor in a virtual
/// machine (called per product, it took 8% of a decode step).
pub fn splits_512_bit_ops() -> bool {
    static SPLITS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SPLITS.get_or_init(amd_family_19h)
}

/// Whether `cpuid` names an AMD CPU of family 19h.
fn amd_family_19h() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        let vendor = __cpuid(0);
        let amd = [vendor.ebx, vendor.edx, vendor.ecx] == [0x6874_7541, 0x6974_6E65, 0x444D_4163];
        let eax = __cpuid(1).eax;
        let (base, extended) = ((eax >> 8) & 0xF, (eax >> 20) & 0xFF);
        let family = if base == 0xF { base + extended } else { base };
        amd && family == 0x19
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_order() {
        assert_eq!(parse("AVX2"), Some(Isa::Avx2));
        assert_eq!(parse(" portable "), Some(Isa::Portable));
        assert_eq!(parse("avx512"), Some(Isa::Avx512));
        assert_eq!(parse("AVX512VNNI"), Some(Isa::Avx512Vnni));
        assert_eq!(parse("sse"), None);
        assert!(Isa::Portable < Isa::Avx2 && Isa::Avx2 < Isa::Avx512 && Isa::Avx512 < Isa::Avx512Vnni);
        assert!(isa() <= detected());
    }
}
