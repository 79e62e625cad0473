//! Local GPU meters: `nvidia-smi --query-gpu=…` (or any command printing
//! its CSV), behind [`GpuMeter`] so tests feed their own. Columns are found
//! by the header when there is one, else by the command's `--query-gpu=`
//! list; `[N/A]` and `[Not Supported]` are no value.

use super::bus_id::BusId;

/// The default command: each card's address, uuid, model, energy counter
/// (mJ since the driver loaded) and power.
pub const DEFAULT_COMMAND: [&str; 3] = [
    "nvidia-smi",
    "--query-gpu=pci.bus_id,uuid,name,total_energy_consumption,power.draw",
    "--format=csv,noheader,nounits",
];

/// One card read now.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuSample {
    /// Its PCI address.
    pub bus_id: BusId,
    /// NVML's `GPU-…` uuid, where printed.
    pub gpu_uuid: Option<String>,
    /// Its model (`name`: NVML's, DCGM's `modelName`), where printed.
    pub model: Option<String>,
    /// Energy since the driver loaded, mJ; none where the card or driver
    /// does not count it.
    pub energy_mj: Option<f64>,
    /// Power now, watts.
    pub power_w: Option<f64>,
}

/// Every GPU of this host read now.
pub trait GpuMeter: Send {
    /// One sample per card.
    fn read(&mut self) -> Result<Vec<GpuSample>, String>;
}

/// A command printing nvidia-smi's CSV.
pub struct SmiCommand {
    argv: Vec<String>,
}

impl SmiCommand {
    /// Runs `argv` (no shell) at each reading.
    pub fn new(argv: Vec<String>) -> Self {
        Self { argv }
    }

    /// The `--query-gpu=` fields of the command, in order.
    fn queried(&self) -> Vec<String> {
        self.argv
            .iter()
            .find_map(|a| a.strip_prefix("--query-gpu="))
            .map(|q| q.split(',').map(|f| f.trim().to_owned()).collect())
            .unwrap_or_default()
    }
}

impl GpuMeter for SmiCommand {
    fn read(&mut self) -> Result<Vec<GpuSample>, String> {
        let shown = self.argv.join(" ");
        let out = crate::sources::command::run(&self.argv, "[gpu] command", "nvidia-smi").map_err(
            |e| {
                if e.contains("is not a valid field to query") {
                    format!(
                        "{e}: this driver does not count energy; drop total_energy_consumption \
                         from [gpu] command (power.draw is then integrated instead)"
                    )
                } else {
                    e
                }
            },
        )?;
        parse(&out, &self.queried()).map_err(|e| format!("`{shown}`: {e}"))
    }
}

/// Cards in nvidia-smi's CSV `output`; `queried` gives the columns when
/// there is no header line.
pub fn parse(output: &str, queried: &[String]) -> Result<Vec<GpuSample>, String> {
    let mut lines = output.lines().filter(|l| !l.trim().is_empty()).peekable();
    let split =
        |line: &str| -> Vec<String> { line.split(',').map(|f| f.trim().to_owned()).collect() };
    // A header names its columns (`power.draw [W]`); a data line starts with an address.
    let header: Vec<String> = match lines.peek() {
        Some(first) if split(first)[0].parse::<BusId>().is_err() => {
            let names = split(first);
            lines.next();
            names
                .into_iter()
                .map(|n| n.split(" [").next().unwrap_or_default().to_owned())
                .collect()
        }
        _ => queried.to_vec(),
    };
    let column = |name: &str| header.iter().position(|h| h == name);
    let bus = column("pci.bus_id").ok_or("no pci.bus_id column: add it to --query-gpu")?;
    let (uuid, model, energy, power) = (
        column("uuid"),
        column("name"),
        column("total_energy_consumption"),
        column("power.draw"),
    );
    if energy.is_none() && power.is_none() {
        return Err(
            "neither total_energy_consumption nor power.draw is queried: add one (or both) to \
             its --query-gpu"
                .into(),
        );
    }
    let mut cards = Vec::new();
    for line in lines {
        let fields = split(line);
        let field = |i: Option<usize>| {
            i.and_then(|i| fields.get(i))
                .map(String::as_str)
                .filter(|v| !v.starts_with('[') && *v != "N/A" && !v.is_empty())
        };
        let number = |i: Option<usize>| {
            field(i)
                .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= 0.0)
        };
        let bus_id = field(Some(bus))
            .ok_or_else(|| format!("a line without an address: {line}"))?
            .parse::<BusId>()
            .map_err(|e| e.to_string())?;
        cards.push(GpuSample {
            bus_id,
            gpu_uuid: field(uuid).map(str::to_owned),
            model: field(model).map(str::to_owned),
            energy_mj: number(energy),
            power_w: number(power),
        });
    }
    Ok(cards)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queried() -> Vec<String> {
        SmiCommand::new(DEFAULT_COMMAND.map(String::from).to_vec()).queried()
    }

    #[test]
    fn the_default_commands_output_by_the_queried_columns() {
        let out = "00000000:3B:00.0, GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52, NVIDIA A30, 81234567890, 287.45\n\
                   00000000:AF:00.0, GPU-6043e4b2-feaa-8010-34c7-61d1a01576bb, NVIDIA A100 80GB PCIe, [N/A], 61.02\n";
        let cards = parse(out, &queried()).unwrap();
        assert_eq!(cards.len(), 2);
        assert_eq!(cards[0].model.as_deref(), Some("NVIDIA A30"));
        assert_eq!(cards[0].bus_id.to_string(), "00000000:3B:00.0");
        assert_eq!(cards[0].energy_mj, Some(81_234_567_890.0));
        assert_eq!(cards[0].power_w, Some(287.45));
        assert_eq!(cards[1].energy_mj, None, "[N/A] is no value");
        assert_eq!(
            cards[1].gpu_uuid.as_deref(),
            Some("GPU-6043e4b2-feaa-8010-34c7-61d1a01576bb")
        );
    }

    #[test]
    fn a_header_decides_the_columns() {
        let out = "power.draw [W], pci.bus_id\n[Not Supported], 0000:3b:00.0\n";
        let cards = parse(out, &[]).unwrap();
        assert_eq!(cards[0].bus_id.to_string(), "00000000:3B:00.0");
        assert_eq!((cards[0].power_w, cards[0].energy_mj), (None, None));
        let err = parse("uuid, power.draw [W]\nGPU-1, 3\n", &[]).unwrap_err();
        assert!(err.contains("pci.bus_id"), "{err}");
        let err = parse("pci.bus_id, uuid\n0000:3b:00.0, GPU-1\n", &[]).unwrap_err();
        assert!(
            err.contains("add one (or both) to its --query-gpu"),
            "{err}"
        );
    }

    #[test]
    fn a_driver_without_the_energy_field_is_told_what_to_do() {
        let mut meter = SmiCommand::new(vec![
            "sh".into(),
            "-c".into(),
            "echo 'Field \"total_energy_consumption\" is not a valid field to query.'; exit 2"
                .into(),
        ]);
        let err = meter.read().unwrap_err();
        assert!(err.contains("drop total_energy_consumption"), "{err}");
    }
}
