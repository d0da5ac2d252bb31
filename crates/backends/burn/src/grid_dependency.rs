//! Programmatic dependent launch for kernels replayed as CUDA graphs (compute capability 9.0 and
//! up): the CUDA source of a kernel patched so that it waits for the kernel before it at the
//! point its `inputs_ready` marker (`cube::first_round`) names (at the top of its body
//! without one), and lets the next kernel start from there. Pure text, so it is tested without a
//! GPU.
#![cfg_attr(not(feature = "cuda"), allow(dead_code))]

/// The text of the marker `cube::first_round::inputs_ready` leaves in a kernel's generated
/// source, as a line comment (`// zoo: inputs ready`).
pub(crate) const INPUTS_READY: &str = "zoo: inputs ready";

/// What a marker becomes in a kernel replayed with programmatic dependent launch: wait until the
/// kernels before have finished and their writes are visible, then let the next kernel's cubes
/// be scheduled (they run up to their own wait, loading their weights meanwhile).
const GRID_DEPENDENCY: &str = "asm volatile(\"griddepcontrol.wait;\" ::: \"memory\");\n\
                               asm volatile(\"griddepcontrol.launch_dependents;\" ::: \"memory\");\n";

/// `source`, the CUDA C++ of one kernel as CubeCL writes it, with grid dependency control for
/// programmatic dependent launch (compute capability 9.0 and up): each [`INPUTS_READY`] marker
/// becomes a wait for the kernels this one depends on followed by the signal that its
/// dependents may start; a kernel without a marker gets both at the top of its body, so none of
/// its reads or writes can overtake the kernel before. `None` unless `source` holds exactly one
/// kernel entry whose body can be found. Launched without the attribute, both instructions do
/// nothing.
pub(crate) fn with_grid_dependency(source: &str) -> Option<String> {
    let marker = format!("// {INPUTS_READY}\n");
    if source.matches("__global__").count() != 1 {
        return None;
    }
    if source.contains(&marker) {
        return Some(source.replace(&marker, GRID_DEPENDENCY));
    }
    let entry = source.find("__global__")?;
    let body = entry + source[entry..].find(") {\n")? + ") {\n".len();
    Some([&source[..body], GRID_DEPENDENCY, &source[body..]].concat())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KERNEL: &str = "typedef unsigned int uint;\n\nextern \"C\" __global__ void __launch_bounds__(256) k (\n\
                          float* a\n) {\nuint x = threadIdx.x;\n";

    #[test]
    fn a_marker_becomes_the_wait_and_the_signal() {
        let source = format!("{KERNEL}float w = a[x];\n// {INPUTS_READY}\na[x] = w + 1.0f;\n}}");
        let patched = with_grid_dependency(&source).unwrap();
        let wait = patched.find("griddepcontrol.wait").unwrap();
        assert!(patched.find("w = a[x]").unwrap() < wait);
        assert!(wait < patched.find("griddepcontrol.launch_dependents").unwrap());
        assert!(patched.find("griddepcontrol.launch_dependents").unwrap() < patched.find("a[x] = w").unwrap());
        assert!(!patched.contains(INPUTS_READY));
    }

    #[test]
    fn without_a_marker_the_body_starts_with_the_wait() {
        let source = format!("{KERNEL}a[x] = 1.0f;\n}}");
        let patched = with_grid_dependency(&source).unwrap();
        let wait = patched.find("griddepcontrol.wait").unwrap();
        assert!(patched.find(") {\n").unwrap() < wait);
        assert!(wait < patched.find("uint x").unwrap());
    }

    #[test]
    fn sources_without_one_kernel_are_left_alone() {
        assert_eq!(with_grid_dependency("int f() { return 0; }"), None);
        let two = format!("{KERNEL}}}\n{KERNEL}}}");
        assert_eq!(with_grid_dependency(&two), None);
    }
}
