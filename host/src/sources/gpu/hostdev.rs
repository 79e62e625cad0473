//! Who holds which GPU on a hypervisor: the `<hostdev>` devices of a
//! domain's XML (PCI passthrough, and mediated devices such as NVIDIA vGPUs,
//! whose card and share come from sysfs).

use std::path::Path;

use super::bus_id::BusId;

/// How a VM holds a GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The whole card, by PCI passthrough (`<hostdev type='pci'>`).
    Passthrough,
    /// A mediated device: a time-sliced vGPU (`<hostdev type='mdev'>`).
    Vgpu,
}

/// A device a domain holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Holding {
    /// The card.
    pub bus_id: BusId,
    /// How.
    pub mode: Mode,
    /// The part of the card held: 1 for passthrough; for a vGPU, 1 /
    /// `max_instance` of its type's description.
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
/// the caller keeps those its GPU meter knows); each mdev is resolved
/// through `sysfs_root` (`/sys`).
pub fn holdings(xml: &str, sysfs_root: &Path) -> Result<Vec<Holding>, HostdevError> {
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
                    found.push(mdev(uuid, sysfs_root)?);
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
fn mdev(uuid: &str, sysfs_root: &Path) -> Result<Holding, HostdevError> {
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
    Ok(Holding {
        bus_id: card,
        mode: Mode::Vgpu,
        share: 1.0 / f64::from(max_instance),
        profile: read("name"),
    })
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
        let card = root.join("devices/pci0000:d7/0000:d7:00.0/0000:d8:00.0");
        let device = card.join("c2177883-f1bb-47f0-914d-32a22e3a8804");
        let kind = card.join("mdev_supported_types/nvidia-50");
        std::fs::create_dir_all(&device).unwrap();
        std::fs::create_dir_all(&kind).unwrap();
        std::fs::write(kind.join("name"), "GRID P40-4C\n").unwrap();
        std::fs::write(
            kind.join("description"),
            "num_heads=1, frl_config=60, framebuffer=4096M, max_resolution=4096x2160, max_instance=6\n",
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
        let held = holdings(DOMAIN, root.path()).unwrap();
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
        let err = holdings(DOMAIN, root.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("mediated device c2177883-f1bb-47f0-914d-32a22e3a8804"),
            "{err}"
        );
    }
}
