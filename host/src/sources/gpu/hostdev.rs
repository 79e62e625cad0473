//! Who holds which GPU on a hypervisor: the `<hostdev>` devices of a
//! domain's XML (PCI passthrough, and mediated devices such as NVIDIA vGPUs,
//! whose card and share come from sysfs).

use std::path::Path;

use super::bus_id::BusId;

/// How a VM holds a GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The whole card, by PCI passthrough (`<hostdev type='pci'>`).
    Passthrough,
    /// A mediated device: a time-sliced vGPU (`<hostdev type='mdev'>`).
    Vgpu,
    /// A MIG-backed vGPU (`<hostdev type='mdev'>` of a type `A100-3-20C`:
    /// 3 of the card's compute slices).
    Mig,
}

impl Mode {
    /// As the WIT's `gpu-mode` and the `mode` label write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passthrough => "passthrough",
            Self::Vgpu => "vgpu",
            Self::Mig => "mig",
        }
    }
}

/// A device a domain holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Holding {
    /// The card.
    pub bus_id: BusId,
    /// How.
    pub mode: Mode,
    /// The part of the card held: 1 for passthrough; for a vGPU, 1 /
    /// `max_instance` of its type's description; for a MIG-backed vGPU,
    /// its compute slices / the card's.
    pub share: f64,
    /// The vGPU type's name (`GRID P40-4C`), for a vGPU.
    pub profile: Option<String>,
}

/// A `<hostdev>` that cannot be placed on a card.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HostdevError {
    /// The domain XML does not parse.
    #[error("domain XML: {0}")]
    Xml(String),
    /// A mediated device that sysfs does not know (gone, or another root).
    #[error(
        "mediated device {uuid}: {reason} under {root}/bus/mdev/devices (is [gpu] sysfs_root right?)"
    )]
    Mdev {
        /// The mdev's uuid.
        uuid: String,
        /// sysfs' root.
        root: String,
        /// What is missing.
        reason: String,
    },
}

/// The GPU-like PCI and mdev devices `xml` (a domain's XML) holds. PCI
/// passthrough devices are all listed (a NIC handed through looks the same:
/// the caller keeps those its GPU meter knows, or [`is_display`] says are
/// GPUs); each mdev is resolved through `sysfs_root` (`/sys`), and a
/// MIG-backed type's card has `card_slices(card's address, type name)`
/// compute slices (`[gpu] mig_slices`).
pub fn holdings(
    xml: &str,
    sysfs_root: &Path,
    card_slices: &dyn Fn(BusId, &str) -> u32,
) -> Result<Vec<Holding>, HostdevError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| HostdevError::Xml(e.to_string()))?;
    let mut found = Vec::new();
    for hostdev in doc
        .descendants()
        .filter(|n| n.has_tag_name("hostdev") && n.attribute("mode") == Some("subsystem"))
    {
        let Some(address) = hostdev
            .children()
            .find(|n| n.has_tag_name("source"))
            .and_then(|s| s.children().find(|n| n.has_tag_name("address")))
        else {
            continue;
        };
        match hostdev.attribute("type") {
            Some("pci") => {
                let attr = |name| address.attribute(name).unwrap_or("0");
                if let Some(bus_id) =
                    BusId::from_parts(attr("domain"), attr("bus"), attr("slot"), attr("function"))
                {
                    found.push(Holding {
                        bus_id,
                        mode: Mode::Passthrough,
                        share: 1.0,
                        profile: None,
                    });
                }
            }
            Some("mdev") => {
                if let Some(uuid) = address.attribute("uuid") {
                    found.push(mdev(uuid, sysfs_root, card_slices)?);
                }
            }
            _ => {}
        }
    }
    Ok(found)
}

/// A mediated device by its uuid: `<root>/bus/mdev/devices/<uuid>` links to
/// `…/<card's PCI address>/<uuid>`, and its `mdev_type/` says the type's
/// `name` and `description` (NVIDIA's: `…, max_instance=6`).
fn mdev(
    uuid: &str,
    sysfs_root: &Path,
    card_slices: &dyn Fn(BusId, &str) -> u32,
) -> Result<Holding, HostdevError> {
    let error = |reason: String| HostdevError::Mdev {
        uuid: uuid.to_owned(),
        root: sysfs_root.display().to_string(),
        reason,
    };
    let device = sysfs_root.join("bus/mdev/devices").join(uuid);
    let real = std::fs::canonicalize(&device).map_err(|e| error(format!("no device ({e})")))?;
    let card = real
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse::<BusId>().ok())
        .ok_or_else(|| error(format!("{} is not under a PCI card", real.display())))?;
    let read = |file: &str| {
        std::fs::read_to_string(real.join("mdev_type").join(file))
            .map(|t| t.trim().to_owned())
            .ok()
    };
    let max_instance = read("description")
        .and_then(|d| {
            d.split(',')
                .filter_map(|kv| kv.trim().split_once('='))
                .find(|(k, _)| *k == "max_instance")
                .and_then(|(_, v)| v.trim().parse::<u32>().ok())
        })
        .filter(|&n| n > 0)
        .ok_or_else(|| error("its type's description gives no max_instance".into()))?;
    let profile = read("name");
    let mig = profile
        .as_deref()
        .and_then(|name| Some((mig_slices(name)?, card_slices(card, name))))
        .filter(|&(g, of)| of > 0 && g <= of);
    Ok(match mig {
        Some((slices, of)) => Holding {
            bus_id: card,
            mode: Mode::Mig,
            share: f64::from(slices) / f64::from(of),
            profile,
        },
        None => Holding {
            bus_id: card,
            mode: Mode::Vgpu,
            share: 1.0 / f64::from(max_instance),
            profile,
        },
    })
}

/// The compute slices of a MIG-backed vGPU type (`GRID A100-3-20C`,
/// `NVIDIA H100-1-10C`: `<card>-<slices>-<framebuffer GB><series>`); none for
/// a time-sliced type (`GRID P40-4C`, `A100-40C`).
fn mig_slices(type_name: &str) -> Option<u32> {
    let last = type_name.split_whitespace().last()?;
    let parts: Vec<&str> = last.split('-').collect();
    let [.., slices, framebuffer] = parts.as_slice() else {
        return None;
    };
    let digits = framebuffer.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let series_ok = digits.len() < framebuffer.len()
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit());
    (parts.len() >= 3 && series_ok)
        .then(|| slices.parse::<u32>().ok())
        .flatten()
        .filter(|g| (1..=8).contains(g))
}

/// Whether sysfs says the PCI device at `bus_id` is a display controller
/// (class `0x03…`: a GPU, whichever driver holds it, vfio-pci included).
pub fn is_display(sysfs_root: &Path, bus_id: BusId) -> bool {
    let address = format!(
        "{:04x}:{:02x}:{:02x}.{:x}",
        bus_id.domain, bus_id.bus, bus_id.slot, bus_id.function
    );
    std::fs::read_to_string(
        sysfs_root
            .join("bus/pci/devices")
            .join(address)
            .join("class"),
    )
    .is_ok_and(|class| class.trim().starts_with("0x03"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = r#"<domain type='kvm'><name>instance-0000002a</name><devices>
      <hostdev mode='subsystem' type='pci' managed='yes'>
        <driver name='vfio'/>
        <source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/></source>
        <address type='pci' domain='0x0000' bus='0x00' slot='0x05' function='0x0'/>
      </hostdev>
      <hostdev mode='subsystem' type='pci' managed='yes'>
        <source><address domain='0x0000' bus='0xaf' slot='0x00' function='0x0'/></source>
      </hostdev>
      <hostdev mode='subsystem' type='mdev' managed='no' model='vfio-pci' display='off'>
        <source><address uuid='c2177883-f1bb-47f0-914d-32a22e3a8804'/></source>
      </hostdev>
      <hostdev mode='capabilities' type='storage'><source><block>/dev/sdf1</block></source></hostdev>
    </devices></domain>"#;

    /// A sysfs tree with one vGPU of type `GRID P40-4C` (6 per card) on 0000:d8:00.0.
    fn sysfs(root: &Path) {
        sysfs_of(root, "GRID P40-4C", 6);
    }

    /// A sysfs tree with one vGPU of type `name` on 0000:d8:00.0.
    fn sysfs_of(root: &Path, name: &str, max_instance: u32) {
        let card = root.join("devices/pci0000:d7/0000:d7:00.0/0000:d8:00.0");
        let device = card.join("c2177883-f1bb-47f0-914d-32a22e3a8804");
        let kind = card.join("mdev_supported_types/nvidia-50");
        std::fs::create_dir_all(&device).unwrap();
        std::fs::create_dir_all(&kind).unwrap();
        std::fs::write(kind.join("name"), format!("{name}\n")).unwrap();
        std::fs::write(
            kind.join("description"),
            format!("num_heads=1, frl_config=60, framebuffer=4096M, max_resolution=4096x2160, max_instance={max_instance}\n"),
        )
        .unwrap();
        std::os::unix::fs::symlink(&kind, device.join("mdev_type")).unwrap();
        std::fs::create_dir_all(root.join("bus/mdev/devices")).unwrap();
        std::os::unix::fs::symlink(
            &device,
            root.join("bus/mdev/devices/c2177883-f1bb-47f0-914d-32a22e3a8804"),
        )
        .unwrap();
    }

    #[test]
    fn passthrough_cards_and_a_vgpu_with_its_share() {
        let root = tempfile::tempdir().unwrap();
        sysfs(root.path());
        let held = holdings(DOMAIN, root.path(), &|_, _| 7).unwrap();
        let ids: Vec<String> = held.iter().map(|h| h.bus_id.to_string()).collect();
        assert_eq!(
            ids,
            ["00000000:3B:00.0", "00000000:AF:00.0", "00000000:D8:00.0"],
            "the host's source addresses, not the guest's"
        );
        assert_eq!(held[0].mode, Mode::Passthrough);
        assert_eq!(held[0].share, 1.0);
        assert_eq!(held[2].mode, Mode::Vgpu);
        assert!((held[2].share - 1.0 / 6.0).abs() < 1e-15);
        assert_eq!(held[2].profile.as_deref(), Some("GRID P40-4C"));
    }

    #[test]
    fn an_mdev_sysfs_does_not_know_is_named() {
        let root = tempfile::tempdir().unwrap();
        let err = holdings(DOMAIN, root.path(), &|_, _| 7).unwrap_err();
        assert!(
            err.to_string()
                .contains("mediated device c2177883-f1bb-47f0-914d-32a22e3a8804"),
            "{err}"
        );
    }

    #[test]
    fn a_mig_backed_vgpu_holds_its_compute_slices_of_the_card() {
        let root = tempfile::tempdir().unwrap();
        sysfs_of(root.path(), "GRID A30-2-12C", 2);
        let slices = |_: BusId, name: &str| if name.contains("A30") { 4 } else { 7 };
        let held = holdings(DOMAIN, root.path(), &slices).unwrap();
        assert_eq!(held[2].mode, Mode::Mig);
        assert_eq!(held[2].share, 2.0 / 4.0);
        assert_eq!(held[2].profile.as_deref(), Some("GRID A30-2-12C"));
        for (name, slices) in [
            ("NVIDIA A100-3-20C", Some(3)),
            ("H100-1-10C", Some(1)),
            ("GRID A100-40C", None),
            ("GRID P40-4C", None),
            ("A100-9-80C", None),
            ("A100-3-20", None),
        ] {
            assert_eq!(mig_slices(name), slices, "{name}");
        }
    }

    #[test]
    fn sysfs_says_which_pci_devices_are_gpus() {
        let root = tempfile::tempdir().unwrap();
        let devices = root.path().join("bus/pci/devices");
        for (address, class) in [("0000:3b:00.0", "0x030200"), ("0000:5e:00.0", "0x020000")] {
            std::fs::create_dir_all(devices.join(address)).unwrap();
            std::fs::write(devices.join(address).join("class"), format!("{class}\n")).unwrap();
        }
        let id = |s: &str| s.parse::<BusId>().unwrap();
        assert!(is_display(root.path(), id("00000000:3B:00.0")));
        assert!(!is_display(root.path(), id("00000000:5E:00.0")), "a NIC");
        assert!(!is_display(root.path(), id("00000000:AF:00.0")), "unknown");
    }
}
