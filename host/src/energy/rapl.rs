//! RAPL zones by name: a zone's kind, which zones a measurement names, and
//! which make up a host's energy when it names none
//! (`docs/ENERGY.md#rapl-zones`): package and dram; psys only on a host
//! without a package zone (psys already contains the package). `core` and
//! `uncore` lie inside the package and never count on their own.

/// The zone kinds a `rapl` measurement reads when it names none.
pub const DEFAULT_KINDS: [&str; 3] = ["package", "dram", "psys"];

/// The kinds whose wrap range matters by default (psys only stands in for
/// a missing package).
pub const DEFAULT_RANGED_KINDS: [&str; 2] = ["package", "dram"];

/// A zone name's kind: `package-1` is a package zone, `dram` a dram one.
pub fn kind(zone: &str) -> &str {
    match zone.rsplit_once('-') {
        Some((kind, index)) if index.parse::<u32>().is_ok() => kind,
        _ => zone,
    }
}

/// A zone name's index, where it has one (`package-1` → `1`).
pub fn index(zone: &str) -> Option<&str> {
    zone.strip_prefix(kind(zone))?.strip_prefix('-')
}

/// Whether zone `name` (`package-0`, `dram`) is what a measurement names:
/// the zone itself, or its kind (`package`: every package zone).
pub fn matches(name: &str, wanted: &str) -> bool {
    name == wanted || kind(name) == wanted && index(name).is_some()
}

/// Whether a zone of `kind` counts in host energy when the measurement
/// names no zones, on a host that has (`host_has_package`) a package zone
/// or not.
pub fn counts_by_default(kind: &str, host_has_package: bool) -> bool {
    match kind {
        "package" | "dram" => true,
        "psys" => !host_has_package,
        _ => false,
    }
}

/// Of one host's zones (by name), those its energy is made of: the ones
/// `wanted` names, or the default ones when it names none.
pub fn host_zones<'a, T>(
    zones: &'a [T],
    name: impl for<'z> Fn(&'z T) -> &'z str,
    wanted: &[String],
) -> Vec<&'a T> {
    if !wanted.is_empty() {
        return zones
            .iter()
            .filter(|z| wanted.iter().any(|w| matches(name(z), w)))
            .collect();
    }
    let has_package = zones.iter().any(|z| kind(name(z)) == "package");
    zones
        .iter()
        .filter(|z| counts_by_default(kind(name(z)), has_package))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_match_by_name_or_kind() {
        assert!(matches("package-0", "package"));
        assert!(matches("package-1", "package-1"));
        assert!(matches("dram", "dram"));
        assert!(!matches("package-0", "dram"));
        assert!(!matches("psys", "package"));
        assert_eq!(kind("package-12"), "package");
        assert_eq!(index("package-12"), Some("12"));
        assert_eq!(index("dram"), None);
    }

    #[test]
    fn host_energy_is_package_and_dram_or_psys_alone() {
        fn name<'a>(z: &'a &str) -> &'a str {
            z
        }
        let server = ["package-0", "package-1", "core", "uncore", "dram", "psys"];
        assert_eq!(
            host_zones(&server, name, &[]),
            [&"package-0", &"package-1", &"dram"]
        );
        let laptop = ["psys", "core", "dram"];
        assert_eq!(host_zones(&laptop, name, &[]), [&"psys", &"dram"]);
        assert_eq!(
            host_zones(&server, name, &["package".to_owned()]),
            [&"package-0", &"package-1"]
        );
    }
}
