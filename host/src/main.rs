//! The `wattson` command.

fn main() -> std::process::ExitCode {
    return_large_blocks();
    wattson::cli::main()
}

/// glibc raises its mmap threshold (up to 32 MiB) each time a large block
/// is freed; from then on blocks of that size (a chunk of records, a
/// rendered payload) come from the heap and stay resident once freed. With
/// fixed thresholds they are mapped and given back: an extract of 100,000
/// VMs peaked at 127 MiB instead of 143-155 MiB (`docs/BENCHMARKS.md`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_blocks() {
    // SAFETY: mallopt only sets allocator parameters (glibc's defaults,
    // fixed); it runs before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_blocks() {}
